"""torch-fidelity's own pipeline end to end (FID, KID, IS) with a locally created random-weights
Inception file, the conditional wrapper, and the exact offline message when weights are missing.
Random weights make the numbers meaningless but exercise every step a real file goes through."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from bench import registry
from bench.config.schema import resolve
from bench.errors import BenchError
from bench.metrics import fidelity
from bench.metrics.context import EvalContext, metrics_cache
from bench.metrics.suite import FINAL, run_protocol
from bench.metrics.latents import eval_latents, generate
from conftest import random_inception

SIZE = 16


def make_folder(root, per_class: int):
    """Two classes of small PNGs: bright discs and blue squares on dark noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for k, name in enumerate(("discs", "squares")):
        (root / name).mkdir()
        for i in range(per_class):
            img = rng.integers(0, 60, (SIZE, SIZE, 3)).astype(np.uint8)
            cx, cy, r = rng.integers(5, 11, 3) % 6 + 4
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2 if k == 0 else (abs(xx - cx) < r) & (abs(yy - cy) < r)
            img[mask] = (230, 200, 40) if k == 0 else (40, 90, 220)
            Image.fromarray(img).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("folder"), 20)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    """Ten images: Inception costs about a second per image on one CPU thread."""
    return make_folder(tmp_path_factory.mktemp("small"), 5)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A state dict of torch-fidelity's Inception with PyTorch's default random init, saved locally."""
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(random_inception().state_dict(), path)
    return path


def natural_ctx(root, variant_name: str, weights: fidelity.Weights) -> EvalContext:
    config = resolve({"variant": variant_name, "dataset": "imagefolder", "data.root": str(root),
                      "image_size": SIZE, "width": 8, "device": "cpu"})
    data = registry.datasets.get("imagefolder").load(config.data, SIZE, torch.device("cpu"))
    variant = registry.variants.get(variant_name)(config.options, data.spec)
    return EvalContext(config, data, variant, torch.device("cpu"), weights)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No weights anywhere: an empty torch hub, no environment variables, downloads off."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    for name in (fidelity.INCEPTION_ENV, fidelity.VGG16_ENV, fidelity.DOWNLOAD_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "torch-home" / "hub" / "checkpoints"


def test_missing_inception_weights_give_one_exact_line(offline):
    with pytest.raises(fidelity.MissingWeights) as err:
        fidelity.inception_weights(fidelity.Weights.from_env())
    expected = (f"Inception weights not found: {offline / fidelity.INCEPTION_FILE} is missing; download "
                "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                "weights-inception-2015-12-05-6726825d.pth to that path, or set BENCH_INCEPTION_WEIGHTS "
                "(or --inception-weights) to the file")
    assert str(err.value) == expected and "\n" not in str(err.value)
    assert isinstance(err.value, BenchError)
    with pytest.raises(fidelity.MissingWeights, match=r"^VGG16 weights not found: .*vgg16-397923af\.pth is missing"):
        fidelity.vgg16_weights(fidelity.Weights.from_env())
    with pytest.raises(fidelity.MissingWeights, match="nowhere.pth is missing"):
        fidelity.inception_weights(fidelity.Weights(inception="nowhere.pth"))
    assert fidelity.inception_weights(fidelity.Weights(download=True)) is None  # the library may download


def test_missing_weights_are_recorded_as_skipped_not_raised(offline, image_folder):
    ctx = natural_ctx(image_folder, "dcgan", fidelity.Weights.from_env())
    G, _ = ctx.variant.build()
    values = run_protocol(ctx, G, FINAL, n=40)
    skipped = {v.name: v for v in values if "skipped" in v.params}
    assert {"fid", "kid", "isc", "precision", "recall", "f_score"} <= set(skipped)
    assert np.isnan(skipped["fid"].value) and skipped["fid"].label == "FID@40/all"
    assert skipped["fid"].params["skipped"].startswith("Inception weights not found:")
    assert {"msssim_gap", "ndb_over_k"} <= {v.name for v in values if "skipped" not in v.params}
    with pytest.raises(fidelity.MissingWeights):  # asked for by name, the reason is raised instead
        run_protocol(ctx, G, FINAL, names=["inception"], n=40)


def test_inception_pipeline_end_to_end_with_a_local_weights_file(small_folder, inception_file, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    ctx = natural_ctx(small_folder, "cgan", fidelity.Weights(inception=str(inception_file)))
    assert ctx.family == "natural" and ctx.conditional
    G, _ = ctx.variant.build()
    values = {v.name: v for v in run_protocol(ctx, G, FINAL, names=["inception"], n=10)}
    assert set(values) == {"fid", "kid", "isc"}
    assert np.isfinite(values["fid"].value) and values["fid"].value > 0
    assert np.isfinite(values["kid"].value) and values["kid"].std_kind == "subsets"
    assert values["isc"].value >= 1.0 - 1e-9 and values["isc"].higher_is_better  # IS >= 1 up to rounding
    params = values["fid"].params
    sha = fidelity.file_sha256(str(inception_file), inception_file.stat().st_size, inception_file.stat().st_mtime_ns)
    assert params["extractor"] == f"inception-v3-compat@{sha[:12]}"
    assert params["n_gen"] == 10 and params["n_ref"] == 10 and params["kid_subset_size"] == 10
    assert values["fid"].label == "FID@10/all" and params["library"] == "torch-fidelity==0.4.0"
    # Reference statistics are cached under a name that carries the data fingerprint and the weights digest.
    cached = sorted(p.name for p in (metrics_cache() / "fidelity").iterdir())
    assert any(ctx.ref_fingerprint[:16] in name and sha[:12] in name and "stat-fid" in name for name in cached)


def test_wrapper_serves_the_evaluation_latents_as_uint8_with_our_labels(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    ctx = natural_ctx(image_folder, "cgan", fidelity.Weights())
    G, _ = ctx.variant.build()
    G.eval()
    z, y = eval_latents(ctx.variant, 12, ctx.device, ctx.spec.num_classes)
    wrapped = fidelity.generator_input(ctx.variant, G, z, y)
    assert wrapped.num_classes == 0 and wrapped.z_size == z.shape[1] and wrapped.z_type == "normal"
    noise = torch.zeros(5, z.shape[1])  # the library's noise only sets the batch size
    first, second = wrapped(noise), wrapped(torch.zeros(7, z.shape[1]))
    assert first.dtype == torch.uint8 and first.shape == (5, 3, SIZE, SIZE)
    expected = fidelity.to_uint8(generate(ctx.variant, G, z, y))
    assert torch.equal(torch.cat([first, second]), expected)
    assert y.tolist()[:4] == [0, 1, 0, 1]  # balanced blocks over the two classes
