"""Fully connected G and D on flattened data, after the original GAN (Goodfellow et al. 2014)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from bench.registry import variants
from variants.bce import BCEConfig, BCEVariant
from variants.nets import MLP


@dataclass(frozen=True)
class MLPGANConfig(BCEConfig):
    hidden_g: tuple[int, ...] = (400, 400)  # PROTOCOLS 9 defaults for 2-D data
    hidden_d: tuple[int, ...] = (200, 200)


@variants.register("mlp_gan")
class MLPGAN(BCEVariant):
    Config = MLPGANConfig
    data_kinds = ("points", "images")

    def build(self):
        c, shape = self.config, self.spec.shape
        # Images come out through Tanh into [-1, 1]; points are unbounded coordinates.
        out_act = nn.Tanh() if self.spec.kind == "images" else None
        G = MLP(c.z_dim, c.hidden_g, shape, "relu", out_act)
        D = MLP(math.prod(shape), c.hidden_d, (), "leaky_relu")
        return G, D
