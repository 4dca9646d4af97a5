"""Fully connected G and D on flattened data, after the original GAN (Goodfellow et al. 2014)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

from torch import nn

from bench.config.checks import POSITIVE, Range, ranged
from bench.registry import variants
from variants.bce import BCEConfig, BCEVariant
from variants.nets import HIDDEN, MLP, normal_init, orthogonal_init


@dataclass(frozen=True)
class MLPGANConfig(BCEConfig):
    hidden_g: tuple[int, ...] = ranged((400, 400), HIDDEN)  # docs/protocols.md §9 defaults for 2-D data
    hidden_d: tuple[int, ...] = ranged((200, 200), HIDDEN)
    # Recipes of the 2-D mode-collapse papers (ablations/reproduce/): PacGAN's G is ReLU with BN and its
    # D three maxout layers of 5 pieces, both initialised N(0, 0.02) with zero biases.
    act_g: Literal["relu", "leaky_relu", "tanh"] = "relu"
    act_d: Literal["relu", "leaky_relu", "tanh", "maxout"] = "leaky_relu"
    maxout_pieces: int = ranged(5, Range(2, 64))  # pieces per hidden unit when act_d is maxout
    norm_g: Literal["none", "batch"] = "none"  # batch: BN before each hidden activation of G
    # N(0, init_std) linear weights and zero biases; null = PyTorch's init
    init_std: Optional[float] = ranged(None, POSITIVE)
    # Orthogonal linear weights scaled by this gain and zero biases, as in the unrolled-GAN notebook
    # (gain 1.4) that VEEGAN ran as its GAN baseline; null = off. Exclusive with init_std.
    orthogonal_gain: Optional[float] = ranged(None, POSITIVE)

    def __post_init__(self):
        super().__post_init__()
        if self.init_std is not None and self.orthogonal_gain is not None:
            raise ValueError("'init_std' and 'orthogonal_gain' are two inits; set one of them")


@variants.register("mlp_gan")
class MLPGAN(BCEVariant):
    Config = MLPGANConfig
    data_kinds = ("points", "images")

    def build(self):
        c, shape = self.config, self.spec.shape
        # Images come out through Tanh into [-1, 1]; points are unbounded coordinates.
        out_act = nn.Tanh() if self.spec.kind == "images" else None
        G = MLP(c.z_dim, c.hidden_g, shape, c.act_g, out_act, norm=c.norm_g)
        D = MLP(math.prod(self.d_spec.shape), c.hidden_d, (), c.act_d, pieces=c.maxout_pieces)
        if c.init_std is not None:
            normal_init(G, c.init_std)
            normal_init(D, c.init_std)
        if c.orthogonal_gain is not None:
            orthogonal_init(G, c.orthogonal_gain)
            orthogonal_init(D, c.orthogonal_gain)
        return G, D
