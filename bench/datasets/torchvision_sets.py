"""MNIST and CIFAR-10 through torchvision's readers, decoded into the same uint8 cache (docs/protocols.md §10.5).

Runs never download: `download=False` here, and `bench data fetch mnist|cifar10` is the one place
torchvision's downloader is called. MNIST is replicated from 1 to 3 channels so every image
dataset has the same shape contract.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from bench.datasets.base import FileDataset, FileOptions
from bench.datasets.cache import Decoded, Source
from bench.datasets.decode import Preprocess, to_square
from bench.errors import BenchError
from bench.registry import datasets


@dataclass(frozen=True)
class SplitOptions(FileOptions):
    split: Literal["train", "test"] = "train"


class _Torchvision(FileDataset):
    Options = SplitOptions
    fetchable = True
    files: dict[str, list[str]]  # split -> files under root that torchvision reads

    @classmethod
    @abstractmethod
    def reader(cls, root: Path, train: bool):
        """The torchvision dataset object for one split (with .data, .targets, .classes)."""

    @classmethod
    def source(cls, options: SplitOptions, image_size: int) -> Source:
        root = cls.root(options)
        needed = cls.files[options.split]
        missing = [f for f in needed if not (root / f).is_file()]
        if missing:
            raise BenchError(f"{cls.name} not found: {root / missing[0]} is missing (runs never download); "
                             f"run 'bench data fetch {cls.name} --root {root}' or set data.root")
        prep = Preprocess(image_size)

        def decode() -> Decoded:
            try:
                data = cls.reader(root, options.split == "train")
            except (RuntimeError, OSError, ValueError) as exc:
                raise BenchError(f"{cls.name} under {root} is unreadable ({exc}); "
                                 f"run 'bench data fetch {cls.name} --root {root}' again") from None
            pixels = np.asarray(data.data)
            images = torch.from_numpy(resize_all(pixels, image_size))
            if images.shape[1] == 1:
                images = images.expand(-1, 3, -1, -1).contiguous()
            labels = torch.as_tensor(np.asarray(data.targets), dtype=torch.int64)
            return Decoded(images, labels, [str(c) for c in data.classes], [f"{i}" for i in range(len(images))])

        return Source(cls.name, options.split, image_size, root, needed, {**prep.record(), "split": options.split},
                      decode)


def resize_all(pixels: np.ndarray, size: int) -> np.ndarray:
    """N x H x W (grey) or N x H x W x 3 uint8 to N x C x S x S, shorter side BICUBIC then centre crop."""
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    if pixels.shape[1:3] != (size, size):
        pixels = np.stack([np.asarray(to_square(Image.fromarray(p.squeeze(-1) if p.shape[-1] == 1 else p), size))
                           .reshape(size, size, -1) for p in pixels])
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


@datasets.register("mnist")
class MNIST(_Torchvision):
    feature_family = "domain"  # metrics in the space of an extractor fitted on the digit labels
    _raw = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    # torchvision checks all four files whichever split is read.
    files = {"train": [f"MNIST/raw/{f}" for f in _raw], "test": [f"MNIST/raw/{f}" for f in _raw]}

    @classmethod
    def reader(cls, root: Path, train: bool):
        from torchvision.datasets import MNIST as Reader

        return Reader(str(root), train=train, download=False)


@datasets.register("cifar10")
class CIFAR10(_Torchvision):
    feature_family = "natural"  # Inception and VGG16
    # torchvision verifies every batch file (md5) whichever split is read.
    _all = [f"cifar-10-batches-py/{f}" for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]]
    files = {"train": _all, "test": _all}

    @classmethod
    def reader(cls, root: Path, train: bool):
        from torchvision.datasets import CIFAR10 as Reader

        return Reader(str(root), train=train, download=False)
