"""DiffAugment (Zhao et al. 2020): random, differentiable transforms of every image D sees.

Real and fake batches go through the same kinds of transform (each call draws its own), inside the
graph, so G's gradient passes through the transform of its samples. Images are in [-1, 1]; each
policy's ranges follow the paper's: brightness +U[-0.5, 0.5], saturation x U[0, 2], contrast
x U[0.5, 1.5]; translation by up to 1/8 of the side with zero padding; cutout of one square of half
the side at a random place. Every draw comes from the global torch RNG (the checkpoint saves it), one
value or offset per sample.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    """One U[low, high] per sample, shaped to broadcast over C x H x W."""
    return low + (high - low) * torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def color(x: Tensor) -> Tensor:
    x = x + _uniform(x, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def _shifted_rows(n: int, size: int, limit: int, device) -> Tensor:
    """Per sample, the source index of each of `size` positions after a shift in [-limit, limit];
    positions shifted in from outside point at `size`, the zero padding."""
    shift = torch.randint(-limit, limit + 1, (n, 1), device=device)
    src = torch.arange(size, device=device)[None, :] - shift
    return torch.where((src >= 0) & (src < size), src, torch.full_like(src, size))


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    n, c, h, w = x.shape
    rows = _shifted_rows(n, h, int(h * ratio + 0.5), x.device)
    cols = _shifted_rows(n, w, int(w * ratio + 0.5), x.device)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))  # index h (or w) reads this zero row (column)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # n x h x w x c
    return out.permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # centre of the square anywhere in the image (it may hang over an edge, as in the paper)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    i = torch.arange(h, device=x.device)[None, :, None]
    j = torch.arange(w, device=x.device)[None, None, :]
    inside = (i >= top) & (i < top + ch) & (j >= left) & (j < left + cw)
    return x * (~inside).to(x.dtype)[:, None]


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, policy: tuple[str, ...] | None) -> Tensor:
    """x through each named transform in order; no policy is the identity and draws nothing."""
    for name in policy or ():
        x = POLICIES[name](x)
    return x
