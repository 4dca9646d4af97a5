"""The standard GAN objective with BCE-with-logits, and the label tricks every BCE variant shares.

D minimises BCE(D(x), real target) + BCE(D(G(z)), fake target); G minimises the non-saturating
BCE(D(G(z)), 1), or with `g_objective: minimax` the saddle objective itself, log(1 - D(G(z))) =
-BCE(D(G(z)), 0), whose gradient vanishes where D rejects the fakes (Goodfellow et al. 2014; the
unrolled-GAN notebook's G). Never Sigmoid + BCELoss: it loses precision as D saturates
(docs/protocols.md §9).

The label tricks only change D's targets, so they live here as options and every BCE variant
(mlp_gan, dcgan, cgan) gets them without a copy:
- one-sided smoothing: `real_label: 0.9` (Salimans et al. 2016); two-sided adds `fake_label > 0`;
- soft labels: `real_range: [0.7, 1.2]`, `fake_range: [0.0, 0.3]`, a fresh uniform draw per sample
  per D step (null = off, the fixed labels apply);
- noisy labels: `flip_p` swaps the real and fake targets of each sample with that probability.
Random targets come from the global torch RNG, which the checkpoint saves, so a resumed run draws
the same targets it would have drawn uninterrupted. G's targets always stay 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.config.checks import PROBABILITY, Range, ranged
from bench.variant import Batch, GANConfig, Stats, Variant


SOFT = Range(0.0, 1.5)  # soft BCE targets: a target past 1 still has a finite loss and a gradient


@dataclass(frozen=True)
class BCEConfig(GANConfig):
    real_label: float = ranged(1.0, PROBABILITY)  # D's target for real samples; 0.9 is one-sided label smoothing
    fake_label: float = ranged(0.0, PROBABILITY)  # D's target for fakes; > 0 as well is two-sided smoothing
    # Soft targets ~ U[lo, hi], replacing the fixed label; they may pass 1 (Salimans et al.: [0.7, 1.2]).
    real_range: Optional[tuple[float, float]] = ranged(None, SOFT)
    fake_range: Optional[tuple[float, float]] = ranged(None, SOFT)
    flip_p: float = ranged(0.0, PROBABILITY)  # per-sample probability of swapping D's real and fake targets
    g_objective: Literal["non_saturating", "minimax"] = "non_saturating"  # G's loss; see the module docstring

    def __post_init__(self):
        for key in ("real_range", "fake_range"):
            bounds = getattr(self, key)
            if bounds is not None and not bounds[0] <= bounds[1]:
                raise ValueError(f"'{key}' must be [low, high] with low <= high, got {list(bounds)}")


def _targets(n: int, fixed: float, bounds: Optional[tuple[float, float]], device: torch.device) -> Tensor:
    if bounds is None:
        return torch.full((n,), fixed, device=device)
    low, high = bounds
    return low + (high - low) * torch.rand(n, device=device)


class BCEVariant(Variant):
    """Base for every variant trained with the BCE objective; subclasses only build nets."""

    Config = BCEConfig

    def d_targets(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Per-sample targets for the real and fake halves of D's loss, tricks applied.

        Nothing is drawn from the RNG when the tricks are off, so plain runs keep their stream.
        """
        c = self.config
        real = _targets(n, c.real_label, c.real_range, device)
        fake = _targets(n, c.fake_label, c.fake_range, device)
        if c.flip_p > 0:
            flip = torch.rand(n, device=device) < c.flip_p
            real, fake = torch.where(flip, fake, real), torch.where(flip, real, fake)
        return real, fake

    def d_loss(self, G, D, batch: Batch, z: Tensor) -> tuple[Tensor, Stats]:
        with torch.no_grad():
            fake = self.generate(G, z, batch.y)
        real_logits = self.discriminate(D, batch.x, batch.y)
        fake_logits = self.discriminate(D, fake, batch.y)
        real_target, fake_target = self.d_targets(real_logits.shape[0], real_logits.device)
        loss = (F.binary_cross_entropy_with_logits(real_logits.float(), real_target)
                + F.binary_cross_entropy_with_logits(fake_logits.float(), fake_target))
        stats = {"d_real": torch.sigmoid(real_logits.detach().float()).mean(),
                 "d_fake": torch.sigmoid(fake_logits.detach().float()).mean()}
        return loss, stats

    def g_loss(self, G, D, batch: Batch, z: Tensor) -> tuple[Tensor, Stats]:
        logits = self.discriminate(D, self.generate(G, z, batch.y), batch.y).float()
        if self.config.g_objective == "minimax":
            loss = -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        else:
            loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return loss, {"d_fake_g": torch.sigmoid(logits.detach()).mean()}
