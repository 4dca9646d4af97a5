"""The variants' mathematics on tiny tensors whose answers can be worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bench.store import checkpoint

from bench.train import loop

from bench import registry
from bench.config.schema import resolve
from bench.datasets.core import DataSpec
from bench.errors import BenchError
from bench.store.runs import RunDir
from bench.variant import Batch

POINTS = DataSpec(shape=(1,))
IMAGES = DataSpec(shape=(3, 8, 8), num_classes=10)
IMAGES16 = DataSpec(shape=(3, 16, 16), num_classes=10)  # 16 px: the first size whose critic has a norm layer


def make(name: str, spec: DataSpec = POINTS, **options):
    cls = registry.variants.get(name)
    return cls(cls.Config(**options), spec)


class FirstCoordinate(nn.Module):
    """A 'discriminator' whose logit is the input's first coordinate: known logits in, known loss out."""

    def forward(self, x):
        return x.flatten(1)[:, 0]


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b, whose input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor, b: float = 0.5):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x):
        return x.flatten(1) @ self.w.flatten() + self.b


def bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def train_tiny(tmp_path, **keys) -> RunDir:
    config = resolve({"steps": 6, "batch_size": 8, "image_size": 8, "log_every": 3, "ckpt_every": 6,
                      "eval_every": -1, "device": "cpu", **keys})
    run = RunDir(tmp_path, "t", config.run_id)
    assert loop.train(run, config) == "done"
    return run


# ---------------------------------------------------------------- BCE and label tricks

REAL = [2.0, -1.0, 0.5]
FAKE = [0.3, -2.0, 1.0]


@pytest.mark.parametrize("real_label,fake_label", [(1.0, 0.0), (0.9, 0.0), (0.9, 0.1)])
def test_smoothed_bce_equals_formula(real_label, fake_label):
    v = make("mlp_gan", real_label=real_label, fake_label=fake_label)
    batch = Batch(torch.tensor(REAL)[:, None], None)
    loss, stats = v.d_loss(nn.Identity(), FirstCoordinate(), batch, torch.tensor(FAKE)[:, None])
    expected = (sum(bce(a, real_label) for a in REAL) / 3 + sum(bce(a, fake_label) for a in FAKE) / 3)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["d_real"].item() == pytest.approx(sum(1 / (1 + math.exp(-a)) for a in REAL) / 3, rel=1e-6)
    # Smoothing changes D only: G's targets stay 1.
    g_loss, _ = v.g_loss(nn.Identity(), FirstCoordinate(), batch, torch.tensor(FAKE)[:, None])
    assert g_loss.item() == pytest.approx(sum(bce(a, 1.0) for a in FAKE) / 3, rel=1e-6)


def test_minimax_g_objective_is_the_saddle_loss_and_saturates():
    """G's minimax loss is log(1 - sigmoid(l)); its gradient vanishes where D rejects the fakes, the
    non-saturating one's does not (Goodfellow et al. 2014, section 3)."""
    batch = Batch(torch.tensor(REAL)[:, None], None)
    v = make("mlp_gan", g_objective="minimax")
    loss, _ = v.g_loss(nn.Identity(), FirstCoordinate(), batch, torch.tensor(FAKE)[:, None])
    assert loss.item() == pytest.approx(sum(math.log(1 - 1 / (1 + math.exp(-a))) for a in FAKE) / 3, rel=1e-6)
    rejected = torch.tensor([[-8.0]], requires_grad=True)
    grads = {}
    for objective in ("minimax", "non_saturating"):
        loss, _ = make("mlp_gan", g_objective=objective).g_loss(nn.Identity(), FirstCoordinate(), batch, rejected)
        grads[objective] = torch.autograd.grad(loss, rejected)[0].abs().item()
    assert grads["minimax"] < 1e-3 < 0.99 < grads["non_saturating"]
    # D's loss is the same under both objectives.
    d_mm, _ = v.d_loss(nn.Identity(), FirstCoordinate(), batch, torch.tensor(FAKE)[:, None])
    d_ns, _ = make("mlp_gan").d_loss(nn.Identity(), FirstCoordinate(), batch, torch.tensor(FAKE)[:, None])
    assert d_mm.item() == d_ns.item()


def test_smoothing_moves_the_optimum_of_d():
    """With target t the BCE minimiser is sigmoid(logit) = t: 0.9 caps D's confidence (Salimans et al.)."""
    v = make("mlp_gan", real_label=0.9)
    logits = torch.linspace(-6, 6, 1201)[:, None]
    real_target, _ = v.d_targets(1, torch.device("cpu"))
    losses = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, 0], real_target.expand(len(logits)), reduction="none")
    assert torch.sigmoid(logits[losses.argmin(), 0]).item() == pytest.approx(0.9, abs=0.005)


def test_soft_targets_lie_in_their_ranges():
    v = make("dcgan", IMAGES, real_range=(0.7, 1.2), fake_range=(0.0, 0.3))
    torch.manual_seed(0)
    real, fake = v.d_targets(20_000, torch.device("cpu"))
    assert 0.7 <= real.min().item() and real.max().item() <= 1.2
    assert 0.0 <= fake.min().item() and fake.max().item() <= 0.3
    # uniform: mean at the midpoint, spread over the whole range (std of U[a,b] = (b-a)/sqrt(12))
    assert real.mean().item() == pytest.approx(0.95, abs=0.005)
    assert fake.mean().item() == pytest.approx(0.15, abs=0.005)
    assert real.std().item() == pytest.approx(0.5 / math.sqrt(12), rel=0.03)
    assert real.max().item() > 1.19 and fake.min().item() < 0.01


def test_flips_happen_at_the_set_rate_and_swap_both_targets():
    v = make("dcgan", IMAGES, flip_p=0.05)
    torch.manual_seed(0)
    n = 20_000
    real, fake = v.d_targets(n, torch.device("cpu"))
    flipped = real == 0.0
    assert torch.equal(flipped, fake == 1.0)  # a flip swaps the pair, per sample
    assert set(real.unique().tolist()) == {0.0, 1.0}
    rate = flipped.float().mean().item()
    sigma = math.sqrt(0.05 * 0.95 / n)  # binomial standard error, 0.0015
    assert abs(rate - 0.05) < 4 * sigma, rate


def test_flips_of_soft_targets_keep_each_draw_in_one_range():
    v = make("dcgan", IMAGES, real_range=(0.7, 1.2), fake_range=(0.0, 0.3), flip_p=0.5)
    torch.manual_seed(1)
    real, fake = v.d_targets(10_000, torch.device("cpu"))
    swapped = real <= 0.3
    assert torch.all(swapped | (real >= 0.7))
    assert torch.all(swapped == (fake >= 0.7))
    assert swapped.float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_targets_come_from_the_global_rng_and_plain_labels_draw_nothing():
    v = make("dcgan", IMAGES, real_range=(0.7, 1.2), flip_p=0.05)
    torch.manual_seed(3)
    first = v.d_targets(64, torch.device("cpu"))
    torch.manual_seed(3)
    second = v.d_targets(64, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # a restored RNG state replays them
    plain = make("dcgan", IMAGES)
    state = torch.get_rng_state()
    plain.d_targets(64, torch.device("cpu"))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("keys,message", [
    ({"real_range": [1.2, 0.7]}, "'real_range' must be \\[low, high\\]"),
    ({"flip_p": 1.5}, "'flip_p' must be a probability"),
    ({"fake_range": [0.1]}, "'fake_range' must be a list of 2 values"),
])
def test_bad_label_options_are_one_line_errors(keys, message):
    with pytest.raises(BenchError, match=message):
        resolve({"variant": "dcgan", "dataset": "digits", **keys})


# ---------------------------------------------------------------- update counts

def test_g_steps_two_steps_g_twice_per_d_step(tmp_path):
    run = train_tiny(tmp_path, variant="mlp_gan", dataset="ring8", g_steps=2)
    state = checkpoint.load(run.checkpoint_file, torch.device("cpu"))
    g_counts = {int(s["step"]) for s in state["opt_g"]["state"].values()}
    d_counts = {int(s["step"]) for s in state["opt_d"]["state"].values()}
    assert (g_counts, d_counts) == ({12}, {6})


def test_wgan_takes_five_critic_steps_per_g_step(tmp_path):
    run = train_tiny(tmp_path, variant="wgan", dataset="ring8")
    state = checkpoint.load(run.checkpoint_file, torch.device("cpu"))
    assert {int(s["step"]) for s in state["opt_d"]["state"].values()} == {30}
    assert {int(s["step"]) for s in state["opt_g"]["state"].values()} == {6}
    assert "square_avg" in next(iter(state["opt_d"]["state"].values()))  # RMSprop, as in the paper


# ---------------------------------------------------------------- WGAN

def test_wgan_losses_are_mean_score_differences():
    v = make("wgan")
    critic = LinearCritic(torch.tensor([2.0]), b=0.5)
    real, z = torch.tensor([[1.0], [3.0]]), torch.tensor([[-1.0], [0.0]])
    loss, stats = v.d_loss(nn.Identity(), critic, Batch(real, None), z)
    assert loss.item() == pytest.approx((-2 + 0) / 2 - (2 + 6) / 2)  # biases cancel
    assert stats["d_real"].item() == pytest.approx(4.5)
    g_loss, _ = v.g_loss(nn.Identity(), critic, Batch(real, None), z)
    assert g_loss.item() == pytest.approx(-((-2 + 0.5) + (0 + 0.5)) / 2)


def test_after_d_step_clamps_every_critic_parameter():
    v = make("wgan")
    critic = LinearCritic(torch.tensor([-1.0, 0.005, 0.5]), b=-0.3)
    v.after_d_step(critic)
    assert critic.w.tolist() == pytest.approx([-0.01, 0.005, 0.01])
    assert critic.b.item() == pytest.approx(-0.01)


def test_critic_weights_within_clip_after_training(tmp_path):
    torch.manual_seed(0)
    fresh_critic = make("wgan", IMAGES16).build()[1]
    assert max(p.abs().max().item() for p in fresh_critic.parameters()) > 0.5  # BN weights start near 1
    run = train_tiny(tmp_path, variant="wgan", dataset="digits", steps=1, log_every=1, ckpt_every=1,
                     image_size=16)
    saved = checkpoint.load(run.checkpoint_file, torch.device("cpu"))["D"]
    params = [saved[name] for name, _ in fresh_critic.named_parameters()]
    assert max(p.abs().max().item() for p in params) == pytest.approx(0.01)
    assert all(p.abs().max().item() <= 0.01 for p in params)


# ---------------------------------------------------------------- WGAN-GP

@pytest.mark.parametrize("w,norm", [([3.0, 4.0], 5.0), ([0.6, 0.8], 1.0), ([0.0, 0.5], 0.5)])
def test_gradient_penalty_of_a_linear_critic(w, norm):
    v = make("wgan_gp", DataSpec(shape=(2,)))
    critic = LinearCritic(torch.tensor(w))
    real, z = torch.randn(16, 2), torch.randn(16, 2)
    loss, stats = v.d_loss(nn.Identity(), critic, Batch(real, None), z)
    gp = (norm - 1) ** 2
    assert stats["gp"].item() == pytest.approx(gp, abs=1e-5)
    wass = (z @ critic.w).mean() - (real @ critic.w).mean()
    assert loss.item() == pytest.approx(wass.item() + 10 * gp, abs=1e-4)
    # create_graph: the penalty is differentiable in the critic's weights, 2*lambda*(|w|-1)*w/|w| + ...
    (grad_w,) = torch.autograd.grad(loss, critic.w)
    expected = z.mean(0) - real.mean(0) + 2 * 10 * (norm - 1) * torch.tensor(w) / norm
    assert torch.allclose(grad_w, expected, atol=1e-4)


def test_gradient_penalty_on_images_uses_the_norm_over_all_pixels():
    v = make("wgan_gp", IMAGES, gp_lambda=2.0)
    w = torch.full((3 * 8 * 8,), 0.25)  # ||w|| = 0.25 * sqrt(192)
    penalty, stats = v.penalty(LinearCritic(w), torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), None)
    expected = (0.25 * math.sqrt(192) - 1) ** 2
    assert stats["gp"].item() == pytest.approx(expected, rel=1e-5)
    assert penalty.item() == pytest.approx(2.0 * expected, rel=1e-5)


def test_wgan_gp_recipe_and_critic_without_batch_norm():
    v = make("wgan_gp", IMAGES16)
    c = v.config
    assert (c.lr_d, c.betas, c.d_steps, c.gp_lambda, c.clip, c.norm) == (1e-4, (0.0, 0.9), 5, 10.0, None, "layer")
    G, D = v.build()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in D.modules())
    opt_g, opt_d = v.optimizers(G, D)
    assert isinstance(opt_d, torch.optim.Adam) and opt_d.defaults["betas"] == (0.0, 0.9)
    with pytest.raises(BenchError, match="cannot use norm: batch"):
        resolve({"variant": "wgan_gp", "dataset": "digits", "norm": "batch"})
