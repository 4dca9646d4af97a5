"""Network builders shared by variants: DCGAN conv nets for 16/32/64 px and MLPs.

DCGAN follows docs/protocols.md §9 (the PyTorch example's layout): kernel 4, stride 2, widths 64*{1,2,4,8}
at 64 px with one stage less per halving of the size; G has BN+ReLU and a Tanh output, D has
LeakyReLU 0.2, no norm on its first layer, and returns logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.config.checks import Range

NORMS = ("batch", "layer", "none")
WIDTH = Range(1, 1024)  # DCGAN channels at the widest resolution; the deepest layer has 8x that at 64 px
HIDDEN = Range(1, 8192)  # MLP units per hidden layer


def stages_for(size: int) -> int:
    """Number of stride-2 stages between 4x4 and size x size."""
    if size not in (8, 16, 32, 64, 128):
        raise ValueError(f"image size {size} is not supported; use 8, 16, 32, 64 or 128")
    return int(math.log2(size)) - 2


def _norm(kind: str, channels: int, spatial: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # per-sample normalisation, valid under a gradient penalty
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, size: int, width: int = 64, in_extra: int = 0):
        super().__init__()
        n = stages_for(size)
        widths = [width * 2 ** i for i in reversed(range(n))]  # e.g. 512, 256, 128, 64 at 64 px
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim + in_extra, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """Conv feature extractor `features` and a 4x4 conv head giving one logit per sample."""

    def __init__(self, channels: int, size: int, width: int = 64, norm: str = "batch"):
        super().__init__()
        n = stages_for(size)
        widths = [width * 2 ** i for i in range(n)]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        spatial = size // 2
        for c_in, c_out in zip(widths, widths[1:]):
            spatial //= 2
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm != "batch"), _norm(norm, c_out, spatial),
                       nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.feature_dim = widths[-1]
        self.feature_shape = (widths[-1], 4, 4)  # every stage count ends at 4x4 for the head
        self.head = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()


class Maxout(nn.Module):
    """`out` units, each the max over `pieces` linear maps of the input (Goodfellow et al. 2013)."""

    def __init__(self, in_dim: int, out: int, pieces: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out * pieces)
        self.out, self.pieces = out, pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(-1, self.out, self.pieces).amax(dim=-1)


ACTIVATIONS = {"relu": lambda: nn.ReLU(True), "leaky_relu": lambda: nn.LeakyReLU(0.2, True), "tanh": nn.Tanh}


class MLP(nn.Module):
    """Fully connected net on flattened input, reshaped to `out_shape` at the end.

    `activation` is one of ACTIVATIONS or "maxout" (each hidden layer a Maxout of `pieces`);
    norm "batch" puts BatchNorm1d between each hidden linear map and its activation, and drops that
    map's bias, which the norm's shift replaces (PacGAN's 2-D generator).
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_shape: tuple[int, ...],
                 activation: str = "relu", out_act: nn.Module | None = None, norm: str = "none",
                 pieces: int = 5):
        super().__init__()
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            if activation == "maxout":
                layers.append(Maxout(a, b, pieces))
            elif norm == "batch":
                layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), ACTIVATIONS[activation]()]
            else:
                layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(dims[-1], math.prod(out_shape)))
        if out_act is not None:
            layers.append(out_act)
        self.net = nn.Sequential(*layers)
        self.out_shape = out_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view(-1, *self.out_shape)


class ConditionalGenerator(nn.Module):
    """G(z, y) = base([z, e_y]): a learned class embedding concatenated to z (`embed-concat`).

    `base` must accept z_dim + embed_dim inputs (DCGANGenerator's `in_extra`, or an MLP).
    """

    def __init__(self, base: nn.Module, num_classes: int, embed_dim: int):
        super().__init__()
        self.base = base
        self.embed = nn.Embedding(num_classes, embed_dim)  # N(0, 1) rows: the same scale as z

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.base(torch.cat([z, self.embed(y)], dim=1))


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = psi(phi(x)) + <e_y, phi(x)> (Miyato & Koyama 2018) on a DCGAN critic.

    phi is the flattened 4x4 feature map and psi the DCGAN head, which is a linear map of it, so
    the class term is a per-class linear map of the same features.
    """

    def __init__(self, base: DCGANDiscriminator, num_classes: int):
        super().__init__()
        self.base = base
        self.embed = nn.Embedding(num_classes, math.prod(base.feature_shape))
        nn.init.normal_(self.embed.weight, 0.0, 0.02)  # the head's init scale, so both terms start alike

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.base.features(x)
        return self.base.head(phi).flatten() + (self.embed(y) * phi.flatten(1)).sum(dim=1)


class ConcatDiscriminator(nn.Module):
    """D(x, y) = base([x, maps(e_y)]): class embedding maps as extra input channels (Mirza & Osindero 2014).

    `base` must take the image channels plus embed_dim.
    """

    def __init__(self, base: nn.Module, num_classes: int, embed_dim: int):
        super().__init__()
        self.base = base
        self.embed = nn.Embedding(num_classes, embed_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        maps = self.embed(y)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.base(torch.cat([x, maps.to(x.dtype)], dim=1))


def normal_init(module: nn.Module, std: float) -> None:
    """Linear weights ~ N(0, std) and zero biases; norm layers keep their (1, 0) defaults."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """Linear weights orthogonal times `gain` (W W^T = gain^2 I over the shorter side), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def dcgan_init(module: nn.Module) -> None:
    """Conv/linear weights ~ N(0, 0.02); BN weight ~ N(1, 0.02), bias 0 (docs/protocols.md §9)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
