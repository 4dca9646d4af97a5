"""Plain folders of images: `imagefolder` (flat or one subfolder per class) and `anime` (flat).

Class subfolders follow the torchvision ImageFolder convention (sorted names are labels 0..K-1).
A root holding both loose images and class folders is refused rather than guessed at: either
reading would silently drop part of the data.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.datasets.base import FileDataset, FileOptions
from bench.datasets.cache import Decoded, Source
from bench.datasets.decode import Preprocess, decode_files
from bench.datasets.files import list_images, require_dir, visible_dirs, workers
from bench.errors import BenchError
from bench.registry import datasets


def folder_source(name: str, root: Path, files: list[str], labels: list[int] | None,
                  class_names: list[str], prep: Preprocess, params: dict | None = None) -> Source:
    """A Source whose images are `files` under `root`, decoded with `prep` (no boxes)."""

    def decode() -> Decoded:
        return decode_labelled(root, files, labels, class_names, prep)

    return Source(name, "all", prep.size, root, files, {**prep.record(), **(params or {})}, decode)


def decode_labelled(root: Path, files: list[str], labels: list[int] | None, class_names: list[str],
                    prep: Preprocess, boxes=None, extras=None) -> Decoded:
    """Decode `files`, then drop the unreadable ones from images, labels and per-image extras."""
    array, bad = decode_files([root / f for f in files], prep, boxes, workers())
    bad_index = {i for i, _ in bad}
    keep = [i for i in range(len(files)) if i not in bad_index]
    images = torch.from_numpy(array[keep]) if bad_index else torch.from_numpy(array)
    y = None if labels is None else torch.tensor([labels[i] for i in keep], dtype=torch.int64)
    extras = {k: (v[keep] if isinstance(v, torch.Tensor) else v) for k, v in (extras or {}).items()}
    return Decoded(images, y, class_names, [files[i] for i in keep],
                   [f"{files[i]}: {why}" for i, why in bad], extras)


@datasets.register("imagefolder")
class ImageFolder(FileDataset):
    """Your own folder: images directly in it (unlabelled), or one subfolder of images per class."""

    feature_family = "natural"  # Inception and VGG16: nothing is known about the pictures

    @classmethod
    def fix(cls, root: Path) -> str:
        return "set data.root to a folder of images, or of class subfolders of images"

    @classmethod
    def source(cls, options: FileOptions, image_size: int) -> Source:
        root = require_dir(cls.root(options), "image folder", cls.fix(None))
        loose = list_images(root)
        classes = visible_dirs(root)
        per_class = {c: list_images(root / c, recursive=True) for c in classes}
        if loose and any(per_class.values()):
            raise BenchError(f"{root} holds both images and class subfolders ({len(loose)} loose images); "
                             "move the loose images into a class folder, or the folders out")
        prep = Preprocess(image_size)
        if loose:
            return folder_source(cls.name, root, loose, None, [], prep, {"layout": "flat"})
        if not classes:
            raise BenchError(f"no images in {root}; {cls.fix(root)}")
        empty = [c for c in classes if not per_class[c]]
        if empty:
            raise BenchError(f"class folder {root / empty[0]} has no images; add images or remove the folder")
        files = [f"{c}/{f}" for c in classes for f in per_class[c]]
        labels = [k for k, c in enumerate(classes) for _ in per_class[c]]
        return folder_source(cls.name, root, files, labels, classes, prep, {"layout": "classes"})


@datasets.register("anime")
class Anime(FileDataset):
    """A flat folder of anime-face images at any resolution (docs/protocols.md §10.2); unlabelled.

    Metadata files beside the images (tags_clean.csv and the like) are ignored: no parser is
    configured, and the bench trains these unconditionally.
    """

    feature_family = "natural"  # Inception and VGG16

    @classmethod
    def labelled(cls, options: FileOptions) -> bool:
        return False

    @classmethod
    def source(cls, options: FileOptions, image_size: int) -> Source:
        root = require_dir(cls.root(options), "anime folder", cls.fix(cls.root(options)))
        files = list_images(root)
        if not files:
            nested = [d for d in visible_dirs(root) if list_images(root / d)]
            hint = f"; the images seem to be in {root / nested[0]}: set data.root to it" if nested else ""
            raise BenchError(f"no images directly in {root} (anime expects a flat folder of "
                             f"jpg/png/webp/bmp){hint or '; ' + cls.fix(root)}")
        return folder_source(cls.name, root, files, None, [], Preprocess(image_size), {"layout": "flat"})
