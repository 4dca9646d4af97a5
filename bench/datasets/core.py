"""Datasets as tensors on the training device, plus the facts about them a run records.

The loop never moves a batch: a dataset is loaded once (uint8 images or a point sampler), placed
on the device, and batches are drawn there by index with the global torch RNG, so a checkpoint of
that RNG makes the data order resumable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

# Image sets larger than this stay in (pinned) host memory and batches are copied per step.
DEVICE_BYTES_LIMIT = 2 * 1024**3


@dataclass(frozen=True)
class DataSpec:
    """What a variant needs to build nets: the sample shape and the classes."""

    shape: tuple[int, ...]  # (2,) for points, (C, H, W) for images
    num_classes: int = 0  # 0 when unlabelled
    class_names: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "images" if len(self.shape) == 3 else "points"


@dataclass(frozen=True)
class DataOptions:
    """Options every dataset accepts under the `data.` prefix; a dataset may extend them."""

    flip: bool = False  # random horizontal flip on the device, training batches only


class DeviceData(ABC):
    """A dataset ready to sample on one device."""

    spec: DataSpec
    info: dict[str, Any]  # recorded in the run: name, fingerprint, size, split, choices made

    @abstractmethod
    def sample(self, n: int) -> tuple[Tensor, Optional[Tensor]]:
        """n training examples in the training range, and their labels (or None)."""

    @abstractmethod
    def reference(self, n: int, generator: torch.Generator) -> tuple[Tensor, Optional[Tensor]]:
        """n real examples for evaluation, drawn with an evaluation generator (never the training RNG)."""


class ImageData(DeviceData):
    """A uint8 N x C x H x W tensor; batches are mapped to [-1, 1] on the device."""

    def __init__(self, images: Tensor, labels: Optional[Tensor], spec: DataSpec, info: dict,
                 device: torch.device, flip: bool = False, extras: Optional[dict[str, Any]] = None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 NxCxHxW, got {images.dtype} {tuple(images.shape)}")
        on_device = device.type == "cpu" or images.numel() <= DEVICE_BYTES_LIMIT
        self.store_device = device if on_device else torch.device("cpu")
        self.images = images.to(self.store_device)
        if self.store_device.type == "cpu" and device.type == "cuda":
            self.images = self.images.pin_memory()
        self.labels = None if labels is None else labels.to(self.store_device, torch.int64)
        self.device, self.spec, self.info, self.flip = device, spec, info, flip
        # Per-image side data kept on the host, in image order (cartoon attributes for later figures).
        self.extras = extras or {}

    def __len__(self) -> int:
        return self.images.shape[0]

    def _take(self, index: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        x = self.images[index].to(self.device, non_blocking=True)
        y = None if self.labels is None else self.labels[index].to(self.device, non_blocking=True)
        return x.float().div_(127.5).sub_(1.0), y

    def sample(self, n: int) -> tuple[Tensor, Optional[Tensor]]:
        index = torch.randint(len(self), (n,), device=self.store_device)
        x, y = self._take(index)
        if self.flip:
            mirror = torch.rand(n, 1, 1, 1, device=self.device) < 0.5
            x = torch.where(mirror, x.flip(3), x)
        return x, y

    def reference(self, n: int, generator: torch.Generator) -> tuple[Tensor, Optional[Tensor]]:
        index = torch.randperm(len(self), generator=generator)[:n].to(self.store_device)
        return self._take(index)


class MixtureData(DeviceData):
    """An isotropic Gaussian mixture with uniform weights, sampled fresh for every batch."""

    def __init__(self, centres: Tensor, std: float, spec: DataSpec, info: dict, device: torch.device):
        self.centres = centres.to(device, torch.float32)
        self.std, self.spec, self.info, self.device = std, spec, info, device

    def _draw(self, n: int, generator: Optional[torch.Generator], device) -> tuple[Tensor, Tensor]:
        k = len(self.centres)
        component = torch.randint(k, (n,), device=device, generator=generator)
        noise = torch.randn(n, self.centres.shape[1], device=device, generator=generator)
        return self.centres.to(device)[component] + self.std * noise, component

    def sample(self, n: int) -> tuple[Tensor, Optional[Tensor]]:
        x, _ = self._draw(n, None, self.device)
        return x, None

    def reference(self, n: int, generator: torch.Generator) -> tuple[Tensor, Optional[Tensor]]:
        x, component = self._draw(n, generator, torch.device("cpu"))
        return x, component


class Dataset(ABC):
    """A registered dataset: its options and how to load it onto a device."""

    Options: type[DataOptions] = DataOptions
    kind = "images"  # or "points": lets a grid skip variant/dataset pairs that cannot work
    name = "dataset"  # set by the registry
    label_fix = "use a dataset with classes, such as digits"  # the fix named when labelled() is False
    built_from = ""  # a fetched dataset whose files this one is built from (bench data names it)

    @classmethod
    def labelled(cls, options: DataOptions) -> Optional[bool]:
        """Whether its samples carry class labels; None when only the files can tell (a folder with or
        without class subfolders). False lets a grid skip a conditional variant before anything trains."""
        return None

    @classmethod
    def check(cls, options: DataOptions, image_size: int) -> None:
        """Raise BenchError if the data cannot be loaded (missing folder...). Runs before any training."""

    @classmethod
    def identity(cls, options: DataOptions, image_size: int) -> str:
        """A fingerprint of what the data is, beyond its name and options; "" when those say it all.

        File datasets return their content fingerprint, which enters the run id (bench/config/identity.py)."""
        return ""

    @classmethod
    @abstractmethod
    def load(cls, options: DataOptions, image_size: int, device: torch.device) -> DeviceData:
        """The dataset on `device`, with its spec and recorded info."""

