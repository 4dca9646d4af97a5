"""Spectral norm, the hinge and least-squares losses and DiffAugment: their textbook math, exact
resume with each on, and today's run ids with each off."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bench import registry
from bench.config.schema import resolve
from bench.datasets.core import DataSpec
from bench.errors import BenchError
from bench.store.runs import RunDir
from bench.study.sampling import load_generator
from bench.train import loop
from bench.variant import Batch
from variants.augment import POLICIES, diff_augment

IMAGES = DataSpec(shape=(3, 16, 16), num_classes=10)
REAL = [2.0, -1.0, 0.5, 0.0]
FAKE = [0.3, -2.0, 1.0, 1.5]


def make(name: str, spec: DataSpec = DataSpec(shape=(1,)), **options):
    cls = registry.variants.get(name)
    return cls(cls.Config(**options), spec)


class FirstCoordinate(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, 0]


def losses_on_fixed_logits(**options):
    v = make("mlp_gan", **options)
    batch = Batch(torch.tensor(REAL)[:, None], None)
    fake = torch.tensor(FAKE)[:, None]
    d, stats = v.d_loss(nn.Identity(), FirstCoordinate(), batch, fake)
    g, _ = v.g_loss(nn.Identity(), FirstCoordinate(), batch, fake)
    return d.item(), g.item(), stats


def mean(values):
    return sum(values) / len(values)


# ---------------------------------------------------------------- losses

def test_hinge_losses_equal_their_formulas():
    d, g, stats = losses_on_fixed_logits(loss="hinge")
    assert d == pytest.approx(mean([max(0, 1 - a) for a in REAL]) + mean([max(0, 1 + a) for a in FAKE]), rel=1e-6)
    assert g == pytest.approx(-mean(FAKE), rel=1e-6)
    assert stats["d_real"].item() == pytest.approx(mean(REAL))  # raw scores, not probabilities


@pytest.mark.parametrize("real_label,fake_label", [(1.0, 0.0), (0.9, 0.1)])
def test_least_squares_losses_equal_their_formulas(real_label, fake_label):
    d, g, _ = losses_on_fixed_logits(loss="least_squares", real_label=real_label, fake_label=fake_label)
    expected = 0.5 * mean([(a - real_label) ** 2 for a in REAL]) + 0.5 * mean([(a - fake_label) ** 2 for a in FAKE])
    assert d == pytest.approx(expected, rel=1e-6)
    assert g == pytest.approx(0.5 * mean([(a - 1) ** 2 for a in FAKE]), rel=1e-6)  # G's target stays 1


def test_bce_is_unchanged_by_the_loss_option():
    d, g, _ = losses_on_fixed_logits(loss="bce")
    assert (d, g) == losses_on_fixed_logits()[:2]
    softplus = lambda t: math.log1p(math.exp(t))  # noqa: E731
    assert d == pytest.approx(mean([softplus(-a) for a in REAL]) + mean([softplus(a) for a in FAKE]), rel=1e-6)


def test_a_flipped_label_swaps_the_hinge_margin():
    v = make("mlp_gan", loss="hinge", flip_p=1.0)  # every sample flipped: real scored as fake and back
    batch = Batch(torch.tensor(REAL)[:, None], None)
    d, _ = v.d_loss(nn.Identity(), FirstCoordinate(), batch, torch.tensor(FAKE)[:, None])
    assert d.item() == pytest.approx(mean([max(0, 1 + a) for a in REAL]) + mean([max(0, 1 - a) for a in FAKE]))


@pytest.mark.parametrize("keys,message", [
    ({"loss": "hinge", "real_label": 0.9}, "loss: hinge has no use for 'real_label'"),
    ({"loss": "hinge", "fake_range": [0.0, 0.3]}, "loss: hinge has no use for 'fake_range'"),
    ({"loss": "cross_entropy"}, "'loss' must be one of bce, hinge, least_squares"),
    ({"variant": "wgan", "loss": "hinge"}, "variant 'wgan' has no key 'loss'"),
    ({"augment": ["color", "color"]}, "'augment' lists a policy twice"),
    ({"augment": ["flip"]}, "'augment' must be one of color, translation, cutout"),
    ({"dataset": "ring8", "variant": "mlp_gan", "augment": ["color"]}, "'augment' transforms images"),
])
def test_options_that_mean_nothing_are_one_line_errors(keys, message):
    with pytest.raises(BenchError, match=message) as info:
        resolve({"variant": "dcgan", "dataset": "digits", **keys})
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- spectral norm

def test_spectral_norm_brings_every_layers_largest_singular_value_to_one():
    v = make("dcgan", IMAGES, width=8, spectral_norm_d=True)
    torch.manual_seed(0)
    G, D = v.networks()
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in G.modules())  # G has its own key
    raw = [torch.linalg.matrix_norm(m.parametrizations.weight.original.flatten(1), ord=2).item() for m in layers]
    assert max(raw) > 1.5 or min(raw) < 0.5  # the init's scale is far from 1: SN is what brings it there
    for _ in range(50):  # power iterations, one per training-mode forward (15 ran at init)
        D(torch.randn(4, 3, 16, 16))
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-3)


def test_spectral_norm_on_g_covers_transposed_convolutions():
    G, _ = make("dcgan", IMAGES, width=8, spectral_norm_g=True).networks()
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)


def tiny(**keys):
    return resolve({"variant": "dcgan", "dataset": "digits", "image_size": 8, "dcgan.width": 8, "cgan.width": 8,
                    "steps": 20, "batch_size": 8, "log_every": 5, "ckpt_every": 10, "eval_every": -1,
                    "device": "cpu", **keys})


def test_a_spectrally_normalised_checkpoint_loads_where_g_is_rebuilt(tmp_path):
    config = tiny(spectral_norm_g=True, spectral_norm_d=True, steps=10)
    run = RunDir(tmp_path, "sn", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    _, G, spec = load_generator(run, torch.device("cpu"))[:3]  # what bench sample and bench eval read
    saved = torch.load(run.checkpoint_file, weights_only=True)["G"]
    assert any(k.endswith("parametrizations.weight.original") for k in saved)
    assert G(torch.zeros(2, config.options.z_dim)).shape == (2, *spec.shape)


def test_a_pack_falls_back_to_loop_with_spectral_norm_and_forced_vmap_is_refused():
    from bench.train import packed

    config = tiny(spectral_norm_d=True)
    source = registry.datasets.get("digits").load(config.data, 8, torch.device("cpu"))
    v = registry.variants.get("dcgan")(config.options, source.spec)
    pack = packed.Pack(v, [0, 1], source, torch.device("cpu"), "auto")
    assert pack.record()["mode"] == "loop" and "why_not_vmap" in pack.record()
    with pytest.raises(BenchError, match="pack mode vmap cannot run dcgan's losses") as info:
        packed.Pack(v, [0, 1], source, torch.device("cpu"), "vmap")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- DiffAugment

def test_augment_off_is_the_identity_and_draws_nothing():
    x = torch.randn(4, 3, 8, 8)
    state = torch.get_rng_state()
    assert diff_augment(x, None) is x
    v = make("dcgan", IMAGES, width=8)
    D = FirstCoordinate()
    assert torch.equal(v.discriminate(D, x), D(x))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("policy", [(name,) for name in POLICIES] + [("color", "translation", "cutout")])
def test_each_policy_changes_images_and_passes_gradients(policy):
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, policy)
    assert y.shape == x.shape and not torch.equal(y, x)
    (grad,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    torch.manual_seed(0)
    x2 = torch.randn(8, 3, 16, 16)
    assert torch.equal(diff_augment(x2, policy), y.detach())  # the global RNG decides every draw


def test_translation_moves_pixels_and_cutout_blanks_a_square():
    torch.manual_seed(1)
    x = torch.arange(1, 8 * 16 * 16 + 1, dtype=torch.float32).view(8, 1, 16, 16)
    moved = POLICIES["translation"](x)
    for a, b in zip(x, moved):  # every kept pixel is an input pixel of the same sample; the rest is padding
        kept = b[b != 0]
        assert set(kept.tolist()) <= set(a.flatten().tolist()) and len(kept) >= 14 * 14
    cut = POLICIES["cutout"](torch.ones(64, 1, 16, 16))
    blanked = (cut == 0).sum(dim=(1, 2, 3))
    assert blanked.max().item() == 8 * 8 and blanked.min().item() > 0  # half the side; may hang over an edge


def test_g_gets_a_gradient_through_the_augmented_discriminator():
    v = make("dcgan", IMAGES, width=8, augment=("color", "translation", "cutout"))
    G, D = v.networks()
    loss, _ = v.g_loss(G, D, Batch(torch.zeros(4, 3, 16, 16), None), torch.randn(4, v.config.z_dim))
    loss.backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


# ---------------------------------------------------------------- exact resume, unchanged ids

ON = [{"spectral_norm_d": True, "spectral_norm_g": True}, {"loss": "hinge", "flip_p": 0.1},
      {"loss": "least_squares", "real_label": 0.9}, {"augment": ["color", "translation", "cutout"]},
      {"variant": "cgan", "spectral_norm_d": True, "augment": ["translation"]}]


def _losses(run: RunDir):
    return [(r["step"], r["name"], r["value"]) for r in run.read_metrics() if r["name"] in ("loss_d", "loss_g")]


@pytest.mark.parametrize("keys", ON, ids=lambda k: "-".join(map(str, k)))
def test_a_run_with_the_option_on_resumes_bit_identical(tmp_path, keys):
    config = tiny(**keys)

    def folder(name):
        run = RunDir(tmp_path / name, "g", config.run_id)
        run.write_config(config.flat())
        return run

    straight = folder("straight")
    assert loop.train(straight, config) == "done"

    def stop_at_10(done, total):
        if done == 10:
            raise KeyboardInterrupt

    killed = folder("killed")
    with pytest.raises(KeyboardInterrupt):
        loop.train(killed, config, stop_at_10)
    assert loop.train(killed, config) == "done"
    assert _losses(killed) == _losses(straight) and len(_losses(straight)) == 8
    a, b = (torch.load(r.checkpoint_file, weights_only=True) for r in (straight, killed))
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for key, value in a[net].items():
            assert torch.equal(value, b[net][key]), f"{net}.{key}"


def test_run_ids_are_todays_with_every_option_off_and_new_with_each_on():
    # main's id of this config, from before the options existed (ac5e864)
    assert resolve({"variant": "dcgan", "dataset": "digits", "image_size": 16}).run_id == "fae0b0149726"
    off = {"spectral_norm_d": False, "spectral_norm_g": False, "augment": None, "loss": "bce"}
    assert resolve({"variant": "dcgan", "dataset": "digits", "image_size": 16, **off}).run_id == "fae0b0149726"
    ids = {tiny(**keys).run_id for keys in ON} | {tiny().run_id}
    assert len(ids) == len(ON) + 1
