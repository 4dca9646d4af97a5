"""Offline stand-ins that need no files: stacked digits (1,000 modes) and procedural shapes (K classes).

Both are pure functions of their options and a dataset seed, rebuilt in memory on every load:
drawing them takes about as long as reading a cache file would, so no cache file is written, and
the fingerprint is a digest of the tensors that define them.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw

from bench.config.checks import SEED, Range, ranged
from bench.datasets.core import DataOptions, DataSpec, Dataset, ImageData
from bench.datasets.builtin import load_digit_pool
from bench.errors import BenchError
from bench.registry import datasets


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


STACKS = Range(1, 10**6)  # stacks drawn: 10^6 is 12 GB of uint8 at 64 px


@dataclass(frozen=True)
class StackedOptions(DataOptions):
    count: int = ranged(128_000, STACKS)  # M stacks drawn (docs/protocols.md §4)
    seed: int = ranged(0, SEED)  # dataset seed: which stacks are drawn; independent of the training seed
    resize: Literal["nearest", "bicubic"] = "nearest"  # 8x8 digits to image_size (docs/protocols.md §4: nearest)


def stack_indices(pool_size: int, count: int, seed: int) -> np.ndarray:
    """count x 3 pool indices drawn uniformly with replacement: the R, G and B digit of each stack."""
    return np.random.default_rng(seed).integers(0, pool_size, size=(count, 3))


@datasets.register("stacked_digits")
class StackedDigits(Dataset):
    """Three scikit-learn digits as R, G, B; the mode label is 100*d_R + 10*d_G + d_B (1,000 modes)."""

    Options = StackedOptions
    feature_family = "domain_stacked"  # a per-channel digit extractor, and a judge counting the 1,000 modes

    @classmethod
    def check(cls, options: StackedOptions, image_size: int) -> None:
        if options.count <= 0:
            raise BenchError(f"data.count must be positive, got {options.count}")

    @classmethod
    def load(cls, options: StackedOptions, image_size: int, device: torch.device) -> ImageData:
        cls.check(options, image_size)
        pixels, digits = load_digit_pool()
        if image_size != pixels.shape[1]:
            fil = Image.NEAREST if options.resize == "nearest" else Image.BICUBIC
            pixels = np.stack([np.asarray(Image.fromarray(p).resize((image_size, image_size), fil)) for p in pixels])
        index = stack_indices(len(pixels), options.count, options.seed)
        images = torch.from_numpy(pixels)[torch.from_numpy(index)]  # count x 3 x S x S
        d = digits[index]
        labels = torch.from_numpy(100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
        fingerprint = _digest(pixels, index)
        spec = DataSpec(shape=(3, image_size, image_size), num_classes=1000,
                        class_names=tuple(f"{m:03d}" for m in range(1000)))
        info = {"name": cls.name, "images": options.count, "classes": 1000, "split": "all", "modes": 1000,
                "seed": options.seed, "pool": "sklearn.datasets.load_digits (1,797 8x8, round(v*255/16))",
                "resize": f"PIL {options.resize}" if image_size != 8 else "none",
                "modes_present": int(labels.unique().numel()),
                "fingerprint": fingerprint, "ref_fingerprint": fingerprint}
        return ImageData(images, labels, spec, info, device, flip=options.flip)


# ------------------------------------------------------------------ shapes

SHAPES = ("circle", "ring", "triangle", "square", "pentagon", "star", "cross", "halfdisc")
MAX_HUES = 16
MAX_CLASSES = len(SHAPES) * MAX_HUES * 2  # shape x hue x (bright, dark)


@dataclass(frozen=True)
class ShapesOptions(DataOptions):
    classes: int = ranged(120, Range(1, MAX_CLASSES))  # number of classes; 120 mirrors Stanford Dogs' breeds
    per_class: int = ranged(100, Range(1, 1000))  # images per class
    seed: int = ranged(0, SEED)  # dataset seed: positions, sizes, backgrounds; independent of the training seed


def class_design(k: int, classes: int) -> tuple[str, float, bool]:
    """Class k's (shape, hue in [0, 1), dark): shapes vary fastest, hues spread as widely as the count allows."""
    hues = min(MAX_HUES, math.ceil(classes / len(SHAPES)))
    return SHAPES[k % len(SHAPES)], ((k // len(SHAPES)) % hues) / hues, k >= len(SHAPES) * hues


def _outline(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices for the polygonal shapes."""
    if kind == "star":
        pts = [(r if i % 2 == 0 else r * 0.45, angle + i * math.pi / 5) for i in range(10)]
    elif kind == "cross":
        a, b = r, r * 0.35
        corners = [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a), (-b, -b), (-a, -b), (-a, b), (-b, b), (-b, a)]
        pts = [(math.hypot(x, y), math.atan2(y, x) + angle) for x, y in corners]
    else:
        n = {"triangle": 3, "square": 4, "pentagon": 5}[kind]
        pts = [(r, angle + i * 2 * math.pi / n) for i in range(n)]
    return [(cx + d * math.cos(t), cy + d * math.sin(t)) for d, t in pts]


def render_shape(size: int, k: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """One size x size x 3 uint8 image of class k: a coloured shape on a random gradient with noise."""
    kind, hue, dark = class_design(k, classes)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    theta = rng.uniform(0, 2 * math.pi)
    t = ((xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta) + 0.5)[..., None]
    # Backgrounds are low-saturation so the shape's hue carries the class.
    c0, c1 = (np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.3), rng.uniform(0.2, 0.9)))
              for _ in range(2))
    background = c0 * (1 - t) + c1 * t + rng.normal(0, 0.03, (size, size, 3))
    colour = np.array(colorsys.hsv_to_rgb((hue + rng.normal(0, 0.01)) % 1.0, rng.uniform(0.75, 1.0),
                                          rng.uniform(0.35, 0.5) if dark else rng.uniform(0.85, 1.0)))
    scale = 4  # drawn at 4x and reduced, for antialiased edges
    big = size * scale
    r = big * rng.uniform(0.22, 0.34)
    cx, cy = (big / 2 + rng.uniform(-0.12, 0.12) * big for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        draw.ellipse(box, fill=255)
    elif kind == "ring":
        draw.ellipse(box, fill=255)
        draw.ellipse((cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55), fill=0)
    elif kind == "halfdisc":
        start = math.degrees(angle)
        draw.pieslice(box, start, start + 180, fill=255)
    else:
        draw.polygon(_outline(kind, cx, cy, r, angle), fill=255)
    alpha = (np.asarray(mask.resize((size, size), Image.BOX), dtype=np.float64) / 255.0)[..., None]
    image = background * (1 - alpha) + colour * alpha
    return (image.clip(0, 1) * 255).round().astype(np.uint8)


@datasets.register("shapes")
class Shapes(Dataset):
    """Procedural coloured shapes on varied backgrounds, K classes: the 120-class path without Stanford Dogs."""

    feature_family = "domain"  # metrics in the space of an extractor fitted on the shape classes

    Options = ShapesOptions

    @classmethod
    def check(cls, options: ShapesOptions, image_size: int) -> None:
        if not 1 <= options.classes <= MAX_CLASSES:
            raise BenchError(f"data.classes must be between 1 and {MAX_CLASSES}, got {options.classes}")
        if options.per_class <= 0:
            raise BenchError(f"data.per_class must be positive, got {options.per_class}")

    @classmethod
    def load(cls, options: ShapesOptions, image_size: int, device: torch.device) -> ImageData:
        cls.check(options, image_size)
        K, n = options.classes, options.per_class
        # One generator per image, keyed by (seed, class, index): any image can be redrawn on its own.
        images = np.stack([render_shape(image_size, k, K, np.random.default_rng([options.seed, k, j]))
                           for k in range(K) for j in range(n)]).transpose(0, 3, 1, 2)
        labels = np.repeat(np.arange(K, dtype=np.int64), n)
        names = []
        for k in range(K):
            kind, hue, dark = class_design(k, K)
            names.append(f"{kind}-h{round(hue * 360):03d}" + ("-dark" if dark else ""))
        fingerprint = _digest(images)
        spec = DataSpec(shape=(3, image_size, image_size), num_classes=K, class_names=tuple(names))
        info = {"name": cls.name, "images": K * n, "classes": K, "split": "all", "seed": options.seed,
                "fingerprint": fingerprint, "ref_fingerprint": fingerprint}
        return ImageData(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), spec, info,
                         device, flip=options.flip)
