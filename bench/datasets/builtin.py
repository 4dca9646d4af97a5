"""Offline datasets whose truth is known: 2-D Gaussian mixtures and scikit-learn's 8x8 digits.

Definitions follow docs/protocols.md §3 (rings and grids) and §4 / §10.5 (digits).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from bench.config.checks import POSITIVE, ranged
from bench.datasets.core import DataOptions, DataSpec, Dataset, ImageData, MixtureData
from bench.registry import datasets


def ring_centres(k: int, radius: float) -> torch.Tensor:
    # 2*pi*j/k with j < k: linspace(0, 2*pi, k) would repeat the first centre (docs/protocols.md §3, trap a).
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1).float()


def grid_centres(values: list[float]) -> torch.Tensor:
    return torch.tensor([[x, y] for x in values for y in values], dtype=torch.float32)


# Mixture sizes are finite and > 0: a zero std makes every sigma-normalised distance infinite.
@dataclass(frozen=True)
class RingOptions(DataOptions):
    radius: float = ranged(1.0, POSITIVE)  # of the circle the 8 centres sit on (docs/protocols.md §3)
    std: float = ranged(0.01, POSITIVE)  # of each component; the "within 3 std" rule uses it


@dataclass(frozen=True)
class GridOptions(DataOptions):
    spacing: float = ranged(2.0, POSITIVE)  # between neighbouring centres: {-2s, -s, 0, s, 2s}^2
    std: float = ranged(0.05, POSITIVE)


class _Mixture(Dataset):
    """Isotropic Gaussians with uniform weights; the geometry comes from the options, so a preset can
    carry each paper's own radius, spacing and std (Unrolled GAN's ring is radius 2, std 0.02)."""

    kind = "points"
    feature_family = "points"  # scored against the known centres, no extractor

    @classmethod
    def geometry(cls, options) -> tuple[torch.Tensor, dict]:
        """The centres and the protocol facts that place them (radius or spacing)."""
        raise NotImplementedError

    @classmethod
    def load(cls, options, image_size: int, device: torch.device) -> MixtureData:
        centres, placement = cls.geometry(options)
        spec = DataSpec(shape=(2,), num_classes=0)
        # radius / spacing beside std: the "within 3 std" rule and the mode count mean nothing without both.
        info = {"name": cls.name, "modes": len(centres), **placement, "std": options.std,
                "sampling": "fresh draw per batch", "fingerprint": _digest(centres.numpy(), options.std)}
        return MixtureData(centres, options.std, spec, info, device)


@datasets.register("ring8")
class Ring8(_Mixture):
    """8 Gaussians on a circle, by default radius 1 and std 0.01 (PacGAN / VEEGAN settings)."""

    Options = RingOptions

    @classmethod
    def geometry(cls, options: RingOptions) -> tuple[torch.Tensor, dict]:
        return ring_centres(8, options.radius), {"radius": options.radius}


@datasets.register("grid25")
class Grid25(_Mixture):
    """25 Gaussians on a 5 x 5 grid, by default {-4,-2,0,2,4}^2 with std 0.05."""

    Options = GridOptions

    @classmethod
    def geometry(cls, options: GridOptions) -> tuple[torch.Tensor, dict]:
        s = options.spacing
        return grid_centres([-2 * s, -s, 0.0, s, 2 * s]), {"spacing": s}


def load_digit_pool() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 1,797 digits as uint8 8x8 (v*255/16 rounded) and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return pixels, bunch.target.astype(np.int64)


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """N x H x W uint8 -> N x size x size with PIL bicubic (docs/protocols.md §10.6)."""
    if pixels.shape[1:] == (size, size):
        return pixels
    return np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.BICUBIC)) for p in pixels])


def digit_images(pixels: np.ndarray, image_size: int) -> tuple[torch.Tensor, DataSpec]:
    """Grey N x H x W digits as N x 3 x S x S uint8 (the channel replicated) and their 10-class spec."""
    pixels = resize_square(pixels, image_size)
    images = torch.from_numpy(pixels).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return images, DataSpec(shape=(3, image_size, image_size), num_classes=10,
                            class_names=tuple(str(d) for d in range(10)))


@datasets.register("digits")
class Digits(Dataset):
    """The 8x8 digits, resized to the run's size and replicated to 3 channels; 10 classes."""

    feature_family = "domain"  # metrics in the space of an extractor fitted on the digit labels

    @classmethod
    def load(cls, options: DataOptions, image_size: int, device: torch.device) -> ImageData:
        pixels, labels = load_digit_pool()
        images, spec = digit_images(pixels, image_size)
        info = {"name": cls.name, "images": len(images), "split": "all", "resize": "PIL bicubic",
                "source": "sklearn.datasets.load_digits", "fingerprint": _digest(images.numpy())}
        return ImageData(images, torch.from_numpy(labels), spec, info, device, flip=options.flip)


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(np.asarray(part).tobytes())
    return h.hexdigest()
