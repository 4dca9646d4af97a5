"""The shape every on-disk dataset shares: a root option, a Source, the cache, then ImageData.

A loader only says how to find its files and labels (`source`). Checking before a grid starts and
loading inside a run both go through that one method, so `check` cannot pass a layout that
`load` would then reject.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.config.checks import clip
from bench.datasets.core import DataOptions, DataSpec, Dataset, ImageData
from bench.datasets.cache import Cached, Source, check_headers, fingerprint, load_or_build
from bench.datasets.files import data_root, file_digests
from bench.errors import BenchError


@dataclass(frozen=True)
class FileOptions(DataOptions):
    root: str = ""  # dataset folder; empty = $BENCH_DATA/<dataset>, else ./data/<dataset>


class FileDataset(Dataset):
    """A dataset decoded from files once into the uint8 cache."""

    Options = FileOptions
    fetchable = False  # True when `bench data fetch NAME` can download it

    @classmethod
    def root(cls, options: FileOptions) -> Path:
        return data_root(options.root, cls.name)

    @classmethod
    def fix(cls, root: Path) -> str:
        """The second half of a layout error: how to get the data in place."""
        if cls.fetchable:
            return f"run 'bench data fetch {cls.name} --root {root}' or set data.root"
        return f"see 'bench data fetch {cls.name}' for where to get it, or set data.root"

    @classmethod
    @abstractmethod
    def source(cls, options: FileOptions, image_size: int) -> Source:
        """Find the files (raising BenchError on a bad layout) and say how to decode them."""

    @classmethod
    def check(cls, options: FileOptions, image_size: int) -> None:
        """The layout, and the image headers unless a cache of these files exists (cache.check_headers)."""
        try:
            check_headers(cls.source(options, image_size))
        except OSError as exc:  # a name too long for the file system, a folder we may not list
            raise BenchError(f"{cls.name}: cannot read {clip(str(exc.filename or cls.root(options)))} "
                             f"({exc.strerror or exc}); set data.root to a readable folder") from None

    @classmethod
    def identity(cls, options: FileOptions, image_size: int) -> str:
        """The cache's content fingerprint: same bytes at any path, same identity."""
        source = cls.source(options, image_size)
        return fingerprint(source, file_digests(source.root, source.hashed))

    @classmethod
    def load(cls, options: FileOptions, image_size: int, device: torch.device) -> ImageData:
        source = cls.source(options, image_size)
        cached = load_or_build(source)
        return to_image_data(cached, source, device, options.flip)


def to_image_data(cached: Cached, source: Source, device: torch.device, flip: bool) -> ImageData:
    p = cached.payload
    images, labels, names = p["images"], p["labels"], tuple(p["class_names"])
    spec = DataSpec(shape=tuple(images.shape[1:]), num_classes=len(names) if labels is not None else 0,
                    class_names=names if labels is not None else ())
    info = {"name": source.name, "split": source.split, "images": len(images), "classes": spec.num_classes,
            "class_names": list(spec.class_names), "fingerprint": cached.fingerprint,
            "ref_fingerprint": cached.ref_fingerprint, "skipped_corrupt": len(p["skipped"]),
            "cache": str(cached.path), "cache_built": cached.built, "root": str(source.root),
            "preprocess": p["params"]}
    return ImageData(images, labels, spec, info, device, flip=flip, extras=p["extras"])
