"""The stacked-MNIST judge: a small CNN fitted by bench/train/classifier.py's fit_classifier on the pool's distinct
digits, cached as tensors and reloaded instead of refitted; MNIST-based stacks declare it, scikit-learn's
8 x 8 stacks keep the SVC. The slow test holds the real judge to the 0.98 floor on the 5,000 offline digits."""

from __future__ import annotations

import pytest
import torch

from bench import registry
from bench.metrics import cnn_judge


def _bars(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten classes anyone can tell apart: class k is a bright 3 x 3 patch at the k-th of ten places 4 px
    apart on a 16 px image of dark noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(10, (n,), generator=g)
    x = torch.randint(0, 30, (n, 1, 16, 16), generator=g, dtype=torch.uint8)
    for i, k in enumerate(y.tolist()):
        r, c = 2 + 4 * (k // 4), 1 + 4 * (k % 4)
        x[i, 0, r:r + 3, c:c + 3] = 230
    return x, y


@pytest.fixture
def small(monkeypatch):
    """The judge's net at 16 px: the same layers, a third of the arithmetic, for the fast tests."""
    monkeypatch.setattr(cnn_judge, "SIZE", 16)


def test_fit_classifier_learns_a_separable_problem_from_a_fixed_seed(small):
    from bench.train.classifier import fit_classifier

    x, y = _bars(600)
    xf = cnn_judge.prepare(x)
    fits = [fit_classifier(cnn_judge.net, xf[:400], y[:400], 60, 64, 3e-3, seed=5) for _ in range(2)]
    with torch.no_grad():
        accuracy = (fits[0](xf[400:]).argmax(1) == y[400:]).float().mean().item()
        assert accuracy > 0.95
        assert torch.equal(fits[0](xf[400:]), fits[1](xf[400:]))  # the same seed, the same net


def test_judge_is_cached_as_tensors_and_reloaded_not_refitted(tmp_path, monkeypatch, small):
    monkeypatch.setattr(cnn_judge, "STEPS", 60)
    channels, digits = _bars(500)
    path = tmp_path / cnn_judge.cache_name(channels, digits, 0)
    judge = cnn_judge.CNNJudge.load_or_fit(path, channels, digits, 0)
    assert judge.heldout_accuracy > 0.95 and path.is_file()
    stacks = torch.cat([channels[:30], channels[30:60], channels[60:90]], dim=1)  # 30 stacks of 3 digits
    assert judge.predict(stacks).tolist() == torch.stack([digits[:30], digits[30:60], digits[60:90]], 1).tolist()

    from bench.train import classifier

    monkeypatch.setattr(classifier, "fit_classifier", lambda *a, **k: pytest.fail("refitted"))
    again = cnn_judge.CNNJudge.load_or_fit(path, channels, digits, 0)
    assert again.record() == judge.record() and again.record()["judge"].startswith("cnn@")
    assert torch.load(path, weights_only=True)["n_fit"] == 350
    assert cnn_judge.cache_name(channels, digits, 1) != path.name  # another seed, another judge


def test_mnist_stacks_declare_the_cnn_and_sklearn_stacks_keep_the_svc():
    assert registry.datasets.get("stacked_mnist5k").judge == "cnn"
    assert registry.datasets.get("stacked_mnist").judge == "cnn"
    assert getattr(registry.datasets.get("stacked_digits"), "judge", "svc") == "svc"


@pytest.mark.slow
def test_cnn_judge_reaches_the_floor_on_the_offline_mnist_digits(tmp_path, monkeypatch):
    """The real fit on stacked_mnist5k's distinct digits at 32 px (the preset's size) clears 0.98."""
    from bench.config.schema import resolve
    from bench.metrics import extractors

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    config = resolve({"variant": "dcgan", "dataset": "stacked_mnist5k", "data.count": 20000})
    data = registry.datasets.get("stacked_mnist5k").load(config.data, 32, torch.device("cpu"))
    channels, digits = extractors.distinct_channels(data.images, extractors.digits_of_modes(data.labels))
    assert len(channels) == 5000
    judge = cnn_judge.CNNJudge.load_or_fit(tmp_path / "judge.pt", channels, digits, 2020)
    assert judge.heldout_accuracy >= extractors.JUDGE_MIN_ACCURACY
    judge.check()
