"""DCGAN (Radford et al. 2016) with the canonical recipe of docs/protocols.md §9."""

from __future__ import annotations

from dataclasses import dataclass

from bench.config.checks import ranged
from bench.registry import variants
from variants.bce import BCEConfig, BCEVariant
from variants.nets import WIDTH, DCGANDiscriminator, DCGANGenerator, dcgan_init


@dataclass(frozen=True)
class DCGANConfig(BCEConfig):
    width: int = ranged(64, WIDTH)  # channels of the widest-resolution layer; 64 * {1, 2, 4, 8} at 64 px


@variants.register("dcgan")
class DCGAN(BCEVariant):
    Config = DCGANConfig

    def build(self):
        c = self.config
        channels, size, _ = self.spec.shape
        G = DCGANGenerator(c.z_dim, channels, size, c.width)
        D = DCGANDiscriminator(self.d_spec.shape[0], size, c.width, norm="batch")
        dcgan_init(G)
        dcgan_init(D)
        return G, D
