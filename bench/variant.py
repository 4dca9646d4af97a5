"""The contract every GAN variant implements; no concrete GAN lives here.

A variant is math: it builds G and D for a data shape and returns losses with detached stats.
It never calls backward(), steps an optimizer, moves data between devices or touches a file;
the loop owns all of that, so every variant is trained and measured the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, NamedTuple, Optional

import torch
from torch import Tensor, nn

from bench.config.checks import POSITIVE, Range, ranged
from bench.datasets.core import DataSpec

Stats = dict[str, Tensor]


class Batch(NamedTuple):
    """Real data already on the device: images in [-1, 1] or 2-D points; labels or None."""

    x: Tensor
    y: Optional[Tensor]


@dataclass(frozen=True)
class GANConfig:
    """Options every variant shares; a variant's own options extend this dataclass."""

    z_dim: int = ranged(100, Range(1, 4096))
    lr_g: float = ranged(2e-4, POSITIVE)
    lr_d: float = ranged(2e-4, POSITIVE)
    betas: tuple[float, float] = ranged((0.5, 0.999), Range(0.0, 1.0, hi_open=True))  # Adam needs beta < 1
    d_steps: int = ranged(1, Range(1, 100))  # D (critic) updates per loop step: WGAN uses 5
    g_steps: int = ranged(1, Range(1, 100))  # G updates per loop step: "G updated twice" is 2, each with fresh z
    # Latent prior: N(0, I), or U[-1, 1]^z_dim as in the DCGAN-TensorFlow recipe (PacGAN, TTUR).
    z_dist: Literal["normal", "uniform"] = "normal"


class Variant(ABC):
    """Base class: Adam for both nets, latents from config.z_dist, unconditional generation."""

    Config: type[GANConfig] = GANConfig
    conditional = False  # True when G and D take class labels
    data_kinds: tuple[str, ...] = ("images",)  # which DataSpec kinds build() handles: images, points
    name = "variant"  # set by the registry

    def __init__(self, config: GANConfig, spec: DataSpec):
        self.config = config
        self.spec = spec

    @abstractmethod
    def build(self) -> tuple[nn.Module, nn.Module]:
        """(G, D) for self.spec; D returns one score per sample."""

    def sample_z(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """n latents from the configured prior; every caller (loop, evaluation, samples) draws here."""
        if self.config.z_dist == "uniform":
            return torch.rand(n, self.config.z_dim, device=device, generator=generator).mul_(2).sub_(1)
        return torch.randn(n, self.config.z_dim, device=device, generator=generator)

    def generate(self, G: nn.Module, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Samples in the data's training range; conditional variants use y."""
        return G(z, y) if self.conditional else G(z)

    def discriminate(self, D: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
        """D's score per sample; conditional variants use y."""
        return D(x, y) if self.conditional else D(x)

    @abstractmethod
    def d_loss(self, G: nn.Module, D: nn.Module, batch: Batch, z: Tensor) -> tuple[Tensor, Stats]:
        """D's loss on one real batch and one fake batch from z."""

    @abstractmethod
    def g_loss(self, G: nn.Module, D: nn.Module, batch: Batch, z: Tensor) -> tuple[Tensor, Stats]:
        """G's loss; batch supplies labels for conditional variants."""

    def optimizers(self, G: nn.Module, D: nn.Module,
                   fused: bool = False) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """fused: Adam with fused kernels (the loop passes LoopConfig.fused_optim on CUDA)."""
        c = self.config
        fast = {"fused": True} if fused else {}
        return (
            torch.optim.Adam(G.parameters(), lr=c.lr_g, betas=c.betas, **fast),
            torch.optim.Adam(D.parameters(), lr=c.lr_d, betas=c.betas, **fast),
        )

    def after_d_step(self, D: nn.Module) -> None:
        """Hook run after every D optimizer step (WGAN clips weights here)."""
