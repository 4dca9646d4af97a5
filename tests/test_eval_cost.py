"""Evaluation that costs what it must: what depends only on the reference (its features, FD statistics and
the real-vs-real ceilings) is computed once and read from the metrics cache after, bit for bit the same."""

from __future__ import annotations

import pytest
import torch

from bench import registry
from bench.config.schema import resolve
from bench.metrics import context, diversity, fidelity
from bench.metrics.context import EvalContext

SIZE = 16


def _ctx():
    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": SIZE, "dcgan.width": 8, "device": "cpu"})
    data = registry.datasets.get("digits").load(config.data, SIZE, torch.device("cpu"))
    return EvalContext(config, data, registry.variants.get("dcgan")(config.options, data.spec), torch.device("cpu"))


def test_reference_values_are_computed_once_and_read_back_unchanged(bench_cache, monkeypatch):
    first = _ctx()
    features = first.extractor.features(first.reference[0])  # what every run computed before the cache
    assert torch.equal(first.real_features, features)
    ceiling = first.ceiling("density_coverage", lambda a, b: diversity.density_coverage(a, b, k=5))
    assert ceiling == diversity.density_coverage(*first.real_halves, k=5)
    stats = first.real_fd_statistics
    fresh = fidelity.fd_statistics(features)
    assert all((stats[k] == fresh[k]).all() for k in ("mu", "sigma"))

    second = _ctx()  # a new run's context: nothing is computed again
    monkeypatch.setattr(second.extractor, "run", lambda *a, **k: pytest.fail("features computed again"))
    assert torch.equal(second.real_features, features)
    assert second.ceiling("density_coverage", lambda a, b: pytest.fail("ceiling computed again")) == ceiling
    assert all((second.real_fd_statistics[k] == fresh[k]).all() for k in ("mu", "sigma"))
    fake = features[:300] + 0.5
    assert fidelity.fd_to(fake, second.real_fd_statistics) == fidelity.fd(fake, features)


def test_the_cache_key_names_what_the_values_depend_on(bench_cache):
    ctx = _ctx()
    key = ctx.derived_key
    assert ctx.cache_key in key and ctx.extractor.sha256[:12] in key and f"seed{ctx.eval_seed}" in key
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)  # float sums depend on the thread count: another key
        assert ctx.derived_key != key
    finally:
        torch.set_num_threads(threads)


def test_a_damaged_cached_value_is_computed_again(tmp_path):
    path = tmp_path / "ceiling.json"
    path.write_text("{not json")
    assert context.load_or_compute_values(path, lambda: {"fd": 1.5}) == {"fd": 1.5}
    assert context.load_or_compute_values(path, lambda: pytest.fail("read, not computed")) == {"fd": 1.5}
    (tmp_path / "t.pt").write_bytes(b"garbage")
    assert torch.equal(context.load_or_compute_tensor(tmp_path / "t.pt", lambda: torch.ones(2)), torch.ones(2))
