"""The standard GAN objective with BCE-with-logits, and the label tricks every BCE variant shares.

D minimises BCE(D(x), real target) + BCE(D(G(z)), fake target); G minimises the non-saturating
BCE(D(G(z)), 1). Never Sigmoid + BCELoss: it loses precision as D saturates (PROTOCOLS 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.variant import Batch, GANConfig, Stats, Variant


@dataclass(frozen=True)
class BCEConfig(GANConfig):
    real_label: float = 1.0  # D's target for real samples; 0.9 is one-sided label smoothing
    fake_label: float = 0.0  # D's target for fakes; > 0 as well is two-sided smoothing


class BCEVariant(Variant):
    """Base for every variant trained with the BCE objective; subclasses only build nets."""

    Config = BCEConfig

    def d_targets(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Per-sample targets for the real and fake halves of D's loss."""
        c = self.config
        return torch.full((n,), c.real_label, device=device), torch.full((n,), c.fake_label, device=device)

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
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return loss, {"d_fake_g": torch.sigmoid(logits.detach()).mean()}
