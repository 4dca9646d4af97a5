"""Conditional DCGAN (`cgan`): G and D see the class label; BCE objective, so every label trick applies.

G gets the class as a learned embedding concatenated to z (`g_cond: embed-concat`). D conditions by
projection (Miyato & Koyama 2018, the default) or by class maps concatenated to its input (Mirza &
Osindero 2014), chosen by `d_cond`; both are recorded in the run config (docs/protocols.md §6). The number of
classes comes from the dataset (10 for digits, 120 for Stanford Dogs). Fakes in D's and G's losses
are drawn for the labels of a real batch, so the class mix follows the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.config.checks import Range, ranged
from bench.errors import BenchError
from bench.registry import variants
from variants.dcgan import DCGANConfig
from variants.bce import BCEVariant
from variants.nets import (ConcatDiscriminator, ConditionalGenerator, DCGANDiscriminator, DCGANGenerator,
                           ProjectionDiscriminator, dcgan_init)


@dataclass(frozen=True)
class CGANConfig(DCGANConfig):
    # class embedding size: G's extra input, and D's extra channels under concat
    embed_dim: int = ranged(32, Range(1, 1024))
    g_cond: Literal["embed-concat"] = "embed-concat"
    d_cond: Literal["projection", "concat"] = "projection"

    def __post_init__(self):
        super().__post_init__()
        # A pack holds m samples with m labels, while D's class term (projection, or the class maps of
        # concat) takes one label per input: there is no sound single label for a pack.
        if self.pac > 1:
            raise ValueError(f"cgan cannot use pac: {self.pac} (D conditions on one label per input and a "
                             "pack has one per sample); use pac: 1 or an unconditional variant")


@variants.register("cgan")
class CGAN(BCEVariant):
    Config = CGANConfig
    conditional = True

    def build(self):
        c, spec = self.config, self.spec
        if spec.num_classes < 2:
            raise BenchError(f"variant '{self.name}' needs a labelled dataset with classes; this one has "
                             f"{spec.num_classes}; use a labelled dataset such as digits")
        channels, size, _ = spec.shape
        base_g = DCGANGenerator(c.z_dim, channels, size, c.width, in_extra=c.embed_dim)
        dcgan_init(base_g)
        G = ConditionalGenerator(base_g, spec.num_classes, c.embed_dim)
        if c.d_cond == "projection":
            base_d = DCGANDiscriminator(channels, size, c.width, norm="batch")
            dcgan_init(base_d)
            D = ProjectionDiscriminator(base_d, spec.num_classes)
        else:
            base_d = DCGANDiscriminator(channels + c.embed_dim, size, c.width, norm="batch")
            dcgan_init(base_d)
            D = ConcatDiscriminator(base_d, spec.num_classes, c.embed_dim)
        return G, D
