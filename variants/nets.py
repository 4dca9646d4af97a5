"""Network builders shared by variants: DCGAN conv nets for 16/32/64 px and MLPs.

DCGAN follows PROTOCOLS 9 (the PyTorch example's layout): kernel 4, stride 2, widths 64*{1,2,4,8}
at 64 px with one stage less per halving of the size; G has BN+ReLU and a Tanh output, D has
LeakyReLU 0.2, no norm on its first layer, and returns logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn

NORMS = ("batch", "layer", "none")


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
        self.head = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()


class MLP(nn.Module):
    """Fully connected net on flattened input, reshaped to `out_shape` at the end."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_shape: tuple[int, ...],
                 activation: str = "relu", out_act: nn.Module | None = None):
        super().__init__()
        act = {"relu": lambda: nn.ReLU(True), "leaky_relu": lambda: nn.LeakyReLU(0.2, True)}[activation]
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), act()]
        layers.append(nn.Linear(dims[-1], math.prod(out_shape)))
        if out_act is not None:
            layers.append(out_act)
        self.net = nn.Sequential(*layers)
        self.out_shape = out_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view(-1, *self.out_shape)


def dcgan_init(module: nn.Module) -> None:
    """Conv/linear weights ~ N(0, 0.02); BN weight ~ N(1, 0.02), bias 0 (PROTOCOLS 9)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
