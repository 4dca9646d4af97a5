"""The conditional judge on natural images: a linear classifier on Inception pool features of the real
train split, its held-out accuracy as the ceiling, per-class accuracy and KID of generated samples.
Stand-in Inception weights are made locally (random init, batch norm calibrated on a few fixture
images so features keep their scale); offline without weights the values are recorded as skipped."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from bench import registry
from bench.config.schema import resolve
from bench.metrics import fidelity
from bench.metrics.context import EvalContext, metrics_cache
from bench.metrics.suite import FINAL, run_protocol
from conftest import random_inception

SIZE, PER_CLASS, N = 16, 6, 18
COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 30)}  # sorted: labels 0, 1, 2
METRIC = "class_scores_inception"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three classes told apart by colour: a coloured square on dark noise."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir()
        for i in range(PER_CLASS):
            img = rng.integers(0, 50, (SIZE, SIZE, 3)).astype(np.uint8)
            x, y = rng.integers(0, 6, 2)
            img[y:y + 10, x:x + 10] = colour
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def make_ctx(root, weights: fidelity.Weights) -> EvalContext:
    config = resolve({"variant": "cgan", "dataset": "imagefolder", "data.root": str(root),
                      "image_size": SIZE, "width": 8, "device": "cpu"})
    data = registry.datasets.get("imagefolder").load(config.data, SIZE, torch.device("cpu"))
    variant = registry.variants.get("cgan")(config.options, data.spec)
    return EvalContext(config, data, variant, torch.device("cpu"), weights)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory, folder):
    """torch-fidelity's Inception with PyTorch's random init, its batch-norm statistics set from one
    batch of fixture images (random init alone shrinks the pool features towards 1e-8), saved locally."""
    path = tmp_path_factory.mktemp("weights") / "calibrated-inception.pth"
    model = random_inception()
    images = make_ctx(folder, fidelity.Weights()).reference[0][::3]  # two of each class
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative: one batch sets the statistics
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()
    torch.save(model.state_dict(), path)
    return path


class Planted(torch.nn.Module):
    """Real training images of class swap[y] for requested label y: a generator that mixes classes up."""

    def __init__(self, data, swap: dict[int, int]):
        super().__init__()
        self.x, self.y, self.swap = data.images.cpu().float() / 127.5 - 1, data.labels.cpu(), swap

    def forward(self, z, y):
        pick = (z[:, 0].double() * 1e6).abs().long()
        out = torch.empty(len(z), *self.x.shape[1:])
        for i, c in enumerate(y.tolist()):
            pool = (self.y == self.swap.get(c, c)).nonzero().flatten()
            out[i] = self.x[pool[pick[i] % len(pool)]]
        return out


@pytest.fixture(scope="module")
def scored(folder, inception_file, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    ctx = make_ctx(folder, fidelity.Weights(inception=str(inception_file)))
    out = {}
    for name, swap in (("faithful", {}), ("swapped", {1: 2, 2: 1})):
        out[name] = {v.name: v for v in run_protocol(ctx, Planted(ctx.data, swap), FINAL, names=[METRIC], n=N)}
    out["cache"] = sorted(p.name for p in (metrics_cache() / "fidelity").iterdir())
    mp.undo()
    return ctx, out


def test_judge_beats_chance_on_real_held_out_images_and_records_its_protocol(scored, inception_file):
    ctx, out = scored
    assert ctx.family == "natural" and ctx.conditional and ctx.spec.class_names == tuple(sorted(COLOURS))
    faithful = out["faithful"]
    assert set(faithful) == {"class_acc", "class_acc_real", "class_acc_worst", "classes_low_acc",
                             "kid_class_mean", "kid_class_worst10"}
    real = faithful["class_acc_real"]
    assert real.value > 1 / 3 + 0.2 and real.higher_is_better and real.label == "class-acc-real-heldout/all/inception-lr"
    assert faithful["class_acc"].value > 1 / 3 and faithful["class_acc"].label == "class-acc@6/class/all/inception-lr"
    params = real.params
    sha = fidelity.file_sha256(str(inception_file), inception_file.stat().st_size, inception_file.stat().st_mtime_ns)
    assert params["extractor"] == f"inception-v3-compat@{sha[:12]}" and params["extractor_layer"] == "2048"
    assert params["judge_n_fit"] + params["judge_n_heldout"] == params["n_ref"] == 3 * PER_CLASS
    assert params["n_gen"] == N and params["classes"] == 3 and "skipped" not in params
    # Reference features and the judge are cached under the data fingerprint and the weights digest.
    for kind in ("pool2048", "judge-lr"):
        assert any(ctx.ref_fingerprint[:16] in n and sha[:12] in n and kind in n for n in out["cache"]), kind


def test_per_class_scores_put_the_swapped_classes_worst(scored):
    _, out = scored
    faithful, swapped = out["faithful"], out["swapped"]
    worst_kid = [s.split("=")[0] for s in swapped["kid_class_mean"].params["kid_worst_classes"].split(", ")]
    assert set(worst_kid[:2]) == {"green", "red"} and worst_kid[2] == "blue"
    worst_acc = swapped["class_acc"].params["acc_worst_classes"].split(", ")
    assert {s.split("=")[0] for s in worst_acc[:2]} == {"green", "red"}
    assert swapped["class_acc_worst"].value < faithful["class_acc_worst"].value
    assert swapped["class_acc"].value < faithful["class_acc"].value
    assert swapped["kid_class_worst10"].value > faithful["kid_class_worst10"].value
    # The ceiling is the judge's accuracy on held-out real images, whatever G draws.
    for scores in (faithful, swapped):
        assert scores["class_acc_real"].value == pytest.approx(scores["class_acc"].params["judge_heldout_acc"], abs=5e-5)


def test_offline_the_values_are_skipped_with_the_one_line_reason(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    for name in (fidelity.INCEPTION_ENV, fidelity.VGG16_ENV, fidelity.DOWNLOAD_ENV):
        monkeypatch.delenv(name, raising=False)
    ctx = make_ctx(folder, fidelity.Weights.from_env())
    metric = registry.metrics.get(METRIC)()
    assert metric.applies(ctx)
    values = metric.skipped(ctx, FINAL, N, "")  # the declared outputs
    G = Planted(ctx.data, {})
    with pytest.raises(fidelity.MissingWeights):
        run_protocol(ctx, G, FINAL, names=[METRIC], n=N)
    default = {v.name: v for v in run_protocol(ctx, G, FINAL, n=N) if v.label in {w.label for w in values}}
    assert len(default) == len(values)
    for v in default.values():
        assert math.isnan(v.value) and v.params["skipped"].startswith("Inception weights not found:")
        assert "\n" not in v.params["skipped"]


def test_applies_only_to_conditional_runs_on_natural_images(folder):
    config = resolve({"variant": "dcgan", "dataset": "imagefolder", "data.root": str(folder),
                      "image_size": SIZE, "width": 8, "device": "cpu"})
    data = registry.datasets.get("imagefolder").load(config.data, SIZE, torch.device("cpu"))
    variant = registry.variants.get("dcgan")(config.options, data.spec)
    unconditional = EvalContext(config, data, variant, torch.device("cpu"), fidelity.Weights())
    assert not registry.metrics.get(METRIC)().applies(unconditional)
    digits = resolve({"variant": "cgan", "dataset": "digits", "image_size": SIZE, "width": 8, "device": "cpu"})
    labelled = registry.datasets.get("digits").load(digits.data, SIZE, torch.device("cpu"))
    cgan = registry.variants.get("cgan")(digits.options, labelled.spec)
    conditional_builtin = EvalContext(digits, labelled, cgan, torch.device("cpu"), fidelity.Weights())
    assert conditional_builtin.conditional and not registry.metrics.get(METRIC)().applies(conditional_builtin)


def test_intra_class_msssim_needs_no_weights_and_reads_one_for_a_class_collapsed_generator(folder, tmp_path,
                                                                                          monkeypatch):
    """Pixels only, so offline it is computed, not skipped: a G that gives one image per class scores
    MS-SSIM 1 within every class, while real images of the class (and a G that draws them) score lower."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    ctx = make_ctx(folder, fidelity.Weights())
    metric = registry.metrics.get("class_msssim")()
    assert metric.applies(ctx) and metric.families == ("natural",)

    class OnePerClass(Planted):
        def forward(self, z, y):
            return torch.stack([self.x[(self.y == c).nonzero()[0, 0]] for c in y.tolist()])

    faithful = {v.name: v for v in run_protocol(ctx, Planted(ctx.data, {}), FINAL, names=["class_msssim"], n=60)}
    collapsed = {v.name: v for v in run_protocol(ctx, OnePerClass(ctx.data, {}), FINAL, names=["class_msssim"], n=60)}
    assert collapsed["msssim_class_mean"].value == pytest.approx(1.0, abs=1e-5)
    real = faithful["msssim_class_real"].value
    assert real == collapsed["msssim_class_real"].value < 0.9  # the real line does not depend on the generator
    assert faithful["msssim_class_mean"].value < 0.9
    assert collapsed["msssim_class_gap"].value == pytest.approx(1.0 - real, abs=1e-5)
    params = faithful["msssim_class_mean"].params
    assert "skipped" not in params and params["classes_scored"] == 3 and params["pairs_per_class"] == 100
    assert faithful["msssim_class_mean"].label == "MS-SSIM-class@100pairs/class"
