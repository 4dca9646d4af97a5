"""WGAN (Arjovsky et al. 2017) and WGAN-GP (Gulrajani et al. 2017), docs/protocols.md §9.

The critic returns an unbounded score (no sigmoid, no BCE); D minimises E[D(G(z))] - E[D(x)] and
G minimises -E[D(G(z))]. WGAN keeps the critic Lipschitz by clamping every critic parameter after
every critic step (the loop's after_d_step hook); WGAN-GP replaces the clamp by a gradient penalty
and subclasses WGAN, so the two differ only in the options and the penalty term.

Architecture follows the data: DCGAN conv nets for images (critic normalisation is the `norm`
option), MLPs for 2-D points (option names shared with dcgan and mlp_gan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import Tensor, nn

from bench.config.checks import NON_NEGATIVE, POSITIVE, ranged
from bench.registry import variants
from bench.variant import Batch, GANConfig, Stats, Variant
from variants.nets import HIDDEN, MLP, WIDTH, DCGANDiscriminator, DCGANGenerator, dcgan_init


@dataclass(frozen=True)
class WGANConfig(GANConfig):
    lr_g: float = 5e-5
    lr_d: float = 5e-5
    d_steps: int = 5  # n_critic
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"  # adam uses betas; rmsprop ignores them
    # critic parameters clamped to [-clip, clip] after each critic step; null = off
    clip: Optional[float] = ranged(0.01, POSITIVE)
    norm: Literal["batch", "layer", "none"] = "batch"  # critic normalisation (images)
    width: int = ranged(64, WIDTH)  # images: DCGAN nets, as in dcgan
    hidden_g: tuple[int, ...] = ranged((400, 400), HIDDEN)  # points: MLP nets, as in mlp_gan
    hidden_d: tuple[int, ...] = ranged((200, 200), HIDDEN)


@variants.register("wgan")
class WGAN(Variant):
    Config = WGANConfig
    data_kinds = ("images", "points")

    def build(self) -> tuple[nn.Module, nn.Module]:
        c, spec = self.config, self.spec
        if spec.kind == "points":
            return (MLP(c.z_dim, c.hidden_g, spec.shape, "relu"),
                    MLP(math.prod(spec.shape), c.hidden_d, (), "leaky_relu"))
        channels, size, _ = spec.shape
        G = DCGANGenerator(c.z_dim, channels, size, c.width)
        D = DCGANDiscriminator(channels, size, c.width, norm=c.norm)
        dcgan_init(G)
        dcgan_init(D)
        return G, D

    def optimizers(self, G: nn.Module, D: nn.Module, fused: bool = False):
        c = self.config
        if c.optimizer == "adam":
            return super().optimizers(G, D, fused)
        return torch.optim.RMSprop(G.parameters(), lr=c.lr_g), torch.optim.RMSprop(D.parameters(), lr=c.lr_d)

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor, y: Optional[Tensor]) -> tuple[Tensor, Stats]:
        """The critic regulariser added to D's loss; plain WGAN has none (it clips instead)."""
        return real.new_zeros(()), {}

    def d_loss(self, G, D, batch: Batch, z: Tensor) -> tuple[Tensor, Stats]:
        with torch.no_grad():
            fake = self.generate(G, z, batch.y)
        real_score = self.discriminate(D, batch.x, batch.y).float()
        fake_score = self.discriminate(D, fake, batch.y).float()
        reg, reg_stats = self.penalty(D, batch.x, fake, batch.y)
        loss = fake_score.mean() - real_score.mean() + reg
        return loss, {"d_real": real_score.detach().mean(), "d_fake": fake_score.detach().mean(), **reg_stats}

    def g_loss(self, G, D, batch: Batch, z: Tensor) -> tuple[Tensor, Stats]:
        score = self.discriminate(D, self.generate(G, z, batch.y), batch.y).float()
        return -score.mean(), {"d_fake_g": score.detach().mean()}

    @torch.no_grad()
    def after_d_step(self, D: nn.Module) -> None:
        if self.config.clip is not None:
            for p in D.parameters():
                p.clamp_(-self.config.clip, self.config.clip)


@dataclass(frozen=True)
class WGANGPConfig(WGANConfig):
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    optimizer: Literal["rmsprop", "adam"] = "adam"
    clip: Optional[float] = None
    norm: Literal["batch", "layer", "none"] = "layer"  # BN would couple samples and void the per-sample penalty
    gp_lambda: float = ranged(10.0, NON_NEGATIVE)

    def __post_init__(self):
        if self.norm == "batch":
            raise ValueError("wgan_gp cannot use norm: batch (it makes the per-sample gradient penalty "
                             "invalid); use norm: layer or none")


@variants.register("wgan_gp")
class WGANGP(WGAN):
    Config = WGANGPConfig

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor, y: Optional[Tensor]) -> tuple[Tensor, Stats]:
        """gp_lambda * mean((||grad_x D(x_hat)||_2 - 1)^2), x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1]
        per sample. create_graph keeps the penalty differentiable for the loop's backward; fp32 with
        autocast off, so the gradient is never computed from unscaled half-precision outputs."""
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
        x_hat = (eps * real.float() + (1 - eps) * fake.float()).requires_grad_(True)
        with torch.autocast(device_type=real.device.type, enabled=False):
            score = self.discriminate(D, x_hat, y).float()
            (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
        gp = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        return self.config.gp_lambda * gp, {"gp": gp.detach()}
