"""Metric math on small offline data: FD/KID, mode scores, MS-SSIM, density/coverage, NDB, schedules.

The domain extractor fitted on the 1,797 scikit-learn digits is the feature space (no download);
it is fitted once per test session into a shared cache folder.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench import registry
from bench.config.schema import LoopConfig, resolve
from bench.datasets.builtin import grid_centres, load_digit_pool, resize_square, ring_centres
from bench.metrics.evaluator import eval_steps
from bench.metrics import diversity, fidelity, modes
from bench.metrics.context import EvalContext

SIZE = 16


@pytest.fixture(scope="module")
def digits_ctx(bench_cache):
    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": SIZE, "dcgan.width": 8,
                      "device": "cpu"})
    data = registry.datasets.get("digits").load(config.data, SIZE, torch.device("cpu"))
    variant = registry.variants.get("dcgan")(config.options, data.spec)
    return EvalContext(config, data, variant, torch.device("cpu"))


def noisy(images: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (images.float() + sigma * torch.randn(images.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)


# ------------------------------------------------------------------ FD and KID

def test_domain_extractor_reads_digits(digits_ctx):
    ex = digits_ctx.extractor
    assert ex.heldout_accuracy >= 0.97
    feats, logits = ex.run(digits_ctx.reference[0][:100])
    assert feats.shape == (100, 128) and logits.shape == (100, 10)
    assert ex.id.startswith("bench-domain:digits-mlp@") and len(ex.sha256) == 64


def test_fd_and_kid_of_a_set_against_itself_are_zero(digits_ctx):
    real = digits_ctx.real_features
    assert abs(fidelity.fd(real, real)) < 1e-6 * fidelity.fd(digits_ctx.extractor.features(noisy(digits_ctx.reference[0], 32)), real)
    mean, std, size = fidelity.kid(real, real, seed=2020, subset_size=300)
    assert size == 300 and abs(mean) <= 3 * std


def test_fd_and_kid_grow_monotonically_with_noise(digits_ctx):
    images, real = digits_ctx.reference[0], digits_ctx.real_features
    fds, kids = [], []
    for sigma in (0, 8, 24, 48, 96):
        feats = digits_ctx.extractor.features(noisy(images, sigma, seed=5))
        fds.append(fidelity.fd(feats, real))
        kids.append(fidelity.kid(feats, real, seed=2020, subset_size=300)[0])
    assert fds[0] < 1e-6 and all(a < b for a, b in zip(fds, fds[1:])), fds
    assert all(a < b for a, b in zip(kids, kids[1:])), kids


def test_kid_of_two_samples_of_one_distribution_is_zero_within_its_std():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(1500, 32, generator=g), torch.randn(1500, 32, generator=g)
    mean, std, _ = fidelity.kid(a, b, seed=2020, subset_size=300)
    assert abs(mean) <= 2 * std
    shifted, _, _ = fidelity.kid(a + 0.5, b, seed=2020, subset_size=300)
    assert shifted > 20 * std


def test_fd_is_symmetric_and_torch_fidelity_pipeline_agrees(digits_ctx):
    import torch_fidelity

    from bench.metrics.extractors import TF_NAME, register_with_fidelity

    images = digits_ctx.reference[0]
    fake = noisy(images, 40)
    ours = fidelity.fd(digits_ctx.extractor.features(fake), digits_ctx.real_features)
    assert ours == pytest.approx(fidelity.fd(digits_ctx.real_features, digits_ctx.extractor.features(fake)), rel=1e-6)
    register_with_fidelity()
    theirs = torch_fidelity.calculate_metrics(
        input1=fidelity.UInt8Images(fake), input2=fidelity.UInt8Images(images), fid=True, cuda=False,
        feature_extractor=TF_NAME, feature_extractor_weights_path=str(digits_ctx.extractor.path),
        cache=False, verbose=False, save_cpu_ram=True)["frechet_inception_distance"]
    assert theirs == pytest.approx(ours, rel=1e-4)


@pytest.mark.parametrize("n1,n2,expected", [(10_000, 50_000, 1000), (10_000, 1797, 1000), (937, 5000, 930),
                                            (55, 80, 50), (7, 9, 7)])
def test_kid_subset_size_adapts_to_small_sets(n1, n2, expected):
    assert fidelity.kid_subset_size(n1, n2) == expected


def test_uint8_conversion_maps_the_tanh_range():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 5)
    out = fidelity.to_uint8(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 1, 5)
    assert out[0, 0, 0].tolist() == [0, 0, 128, 255, 255]


# ------------------------------------------------------------------ mode scores

@pytest.mark.parametrize("centres,std", [(ring_centres(8, 1.0), 0.01), (grid_centres([-4.0, -2.0, 0.0, 2.0, 4.0]), 0.05)])
def test_mode_scorer_on_true_and_collapsed_mixtures(centres, std):
    g = torch.Generator().manual_seed(0)
    k = len(centres)
    true = centres[torch.randint(k, (2500,), generator=g)] + std * torch.randn(2500, 2, generator=g)
    scores = modes.mixture_scores(true, centres, std)
    assert scores["modes_covered"] == k
    assert scores["hq_fraction"] > 0.98
    assert scores["kl_modes"] < 0.02 and scores["jsd_modes"] < 0.01
    collapsed = centres[3] + std * torch.randn(2500, 2, generator=g)
    scores = modes.mixture_scores(collapsed, centres, std)
    assert scores["modes_covered"] == 1
    assert scores["kl_modes"] == pytest.approx(math.log(k))
    far = torch.full((100, 2), 50.0)
    assert math.isnan(modes.mixture_scores(far, centres, std)["kl_modes"])


# ------------------------------------------------------------------ diversity

@pytest.mark.parametrize("size,window,scales", [(8, 7, 1), (16, 7, 2), (32, 7, 3), (64, 7, 4), (128, 7, 5), (256, 11, 5)])
def test_msssim_settings_fit_the_image_size(size, window, scales):
    s = diversity.msssim_settings(size)
    assert (s.window, s.scales) == (window, scales)
    assert float(s.weights.sum()) == pytest.approx(1.0)


def test_msssim_of_identical_pairs_is_one_and_lower_otherwise():
    images = torch.from_numpy(resize_square(load_digit_pool()[0][:64], 32)).unsqueeze(1).expand(-1, 3, -1, -1)
    same = diversity.msssim_pairs(images, images)
    assert torch.allclose(same, torch.ones(64), atol=1e-6)
    other = diversity.msssim_pairs(images, images.roll(1, dims=0))
    assert float(other.max()) < 0.999 and float(other.mean()) < 0.7
    assert torch.allclose(other, diversity.msssim_pairs(images.roll(1, dims=0), images), atol=1e-5)
    collapsed = images[:1].expand(64, -1, -1, -1)
    assert diversity.mean_msssim(collapsed, 200, torch.Generator().manual_seed(0)) == pytest.approx(1.0, abs=1e-6)


def test_density_and_coverage_of_a_set_and_of_a_distant_one():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(800, 16, generator=g)
    same = diversity.density_coverage(real, real, k=5)
    assert same["coverage"] == 1.0 and same["density"] == pytest.approx(1.0, abs=0.05)
    other = diversity.density_coverage(real, torch.randn(800, 16, generator=g), k=5)
    assert 0.9 < other["coverage"] < 1.0 and 0.7 < other["density"] < 1.3
    far = diversity.density_coverage(real, real + 10.0, k=5)
    assert far == {"density": 0.0, "coverage": 0.0}


def test_ndb_finds_few_bins_on_a_second_real_sample_and_many_on_a_shifted_one():
    pixels, _ = load_digit_pool()
    images = torch.from_numpy(resize_square(pixels, SIZE)).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    first, second = images[perm[:900]], images[perm[900:]]
    bins = diversity.NDBBins.fit(first, k=100, seed=2020)
    same = bins.score(second)
    shifted = bins.score(second.roll(2, dims=3))
    assert same["ndb_over_k"] <= 0.08 and same["ndb_jsd"] < 0.05
    assert shifted["ndb_over_k"] >= 0.5 and shifted["ndb_jsd"] > 10 * same["ndb_jsd"]


def test_ndb_z_test_matches_its_formula():
    train, sample = torch.tensor([500, 300, 200]), torch.tensor([50, 20, 30])
    out = diversity.ndb_test(train, sample, alpha=0.05)
    # bin 0: equal shares, z = 0; bin 1: pooled 0.2909, z = 2.10; bin 2: pooled 0.2091, z = -2.35
    assert out["ndb_over_k"] == pytest.approx(2 / 3)
    assert diversity.ndb_test(train, torch.tensor([50, 28, 22]))["ndb_over_k"] == 0.0  # |z| < 1.96 everywhere
    assert out["ndb_jsd"] == pytest.approx(modes.jsd(np.array([0.5, 0.3, 0.2]), np.array([0.5, 0.2, 0.3])))


# ------------------------------------------------------------------ schedule

@pytest.mark.parametrize("keys,expected", [
    ({"steps": 200, "log_every": 50}, {50, 100, 150, 200}),
    ({"steps": 200, "log_every": 50, "eval_every": 100}, {100, 200}),
    ({"steps": 210, "log_every": 50, "eval_every": 100}, {100, 200, 210}),
    ({"steps": 200, "log_every": 50, "eval_every": -1}, set()),
])
def test_eval_schedule(keys, expected):
    assert eval_steps(LoopConfig(**keys)) == expected


def test_auto_schedule_has_about_twenty_evals_log_spaced_early():
    steps = eval_steps(LoopConfig(steps=100_000, log_every=100))
    assert 18 <= len(steps) <= 20 and 100_000 in steps
    early = sorted(s for s in steps if s <= 10_000)
    assert early[0] == 1000 and len(early) >= 5  # the first eval at 1% of training
    assert all(s % 100 == 0 for s in steps)
