"""Stanford Dogs (Khosla et al. 2011): 120 breeds, the official split, optional box crops (docs/protocols.md §10.3).

Labels are the index of the `<wnid>-<Breed>` folder in sorted order, the same order the official
1-based `labels` in the .mat lists follow, and that agreement is checked at load: a repackaged
copy with a folder missing would otherwise shift every later label by one without a word.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from bench.datasets.base import FileDataset, FileOptions
from bench.datasets.cache import Source
from bench.datasets.decode import Box, Preprocess
from bench.datasets.files import list_images, visible_dirs
from bench.datasets.folders import decode_labelled
from bench.errors import BenchError
from bench.registry import datasets

_BREED = re.compile(r"^(n\d+)-(.+)$")
LIST_FILES = {"train": "train_list.mat", "test": "test_list.mat", "all": "file_list.mat"}


@dataclass(frozen=True)
class DogsOptions(FileOptions):
    split: Literal["all", "train", "test"] = "all"  # train / test: the official lists (12,000 / 8,580)
    crop: Literal["center", "bbox"] = "center"  # bbox: crop to the annotated box before resizing
    bbox_mode: Literal["first", "union"] = "first"  # with crop=bbox: first object's box or all boxes' union


def _first(root: Path, names: tuple[str, ...]) -> Optional[Path]:
    return next((root / n for n in names if (root / n).exists()), None)


def read_list(path: Path) -> tuple[list[str], list[int]]:
    """(paths relative to Images/, 1-based labels) from one official .mat list."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
        files = [str(np.asarray(item).ravel()[0]) for item in mat["file_list"].ravel()]
        labels = [int(v) for v in np.asarray(mat["labels"]).ravel()]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise BenchError(f"{path} is not a Stanford Dogs list ({exc}); fetch lists.tar again") from None
    if len(files) != len(labels):
        raise BenchError(f"{path}: {len(files)} files but {len(labels)} labels; fetch lists.tar again")
    return files, labels


def read_boxes(path: Path) -> list[Box]:
    """Every <object><bndbox> of one VOC-style annotation, as (xmin, ymin, xmax, ymax)."""
    try:
        tree = ET.parse(path)
        return [tuple(int(float(obj.findtext(f"bndbox/{k}"))) for k in ("xmin", "ymin", "xmax", "ymax"))
                for obj in tree.getroot().iter("object")]
    except (OSError, ET.ParseError, TypeError, ValueError) as exc:
        raise BenchError(f"annotation {path} is unreadable ({exc}); fetch annotation.tar again") from None


@datasets.register("stanford_dogs")
class StanfordDogs(FileDataset):
    Options = DogsOptions
    fetchable = True
    feature_family = "natural"  # Inception and VGG16

    @classmethod
    def source(cls, options: DogsOptions, image_size: int) -> Source:
        root = cls.root(options)
        if not root.is_dir():
            raise BenchError(f"Stanford Dogs folder {root} not found; {cls.fix(root)}")
        images = _first(root, ("Images", "images"))
        if images is None:
            raise BenchError(f"no Images/ folder in {root} (expected Images/<wnid>-<Breed>/*.jpg); {cls.fix(root)}")
        breeds = visible_dirs(images)
        odd = [b for b in breeds if not _BREED.match(b)]
        if odd or not breeds:
            what = f"folder {images / odd[0]} is not named <wnid>-<Breed>" if odd else f"{images} has no breed folders"
            raise BenchError(f"{what}; expected Images/n02085620-Chihuahua/...; {cls.fix(root)}")
        index = {b: k for k, b in enumerate(breeds)}
        present = [f"{b}/{f}" for b in breeds for f in list_images(images / b)]
        if not present:
            raise BenchError(f"no images under {images}; {cls.fix(root)}")
        files, hashed = cls._select(root, options.split, present, index)
        labels = [index[f.split("/", 1)[0]] for f in files]
        names = [_BREED.match(b).group(2) for b in breeds]
        image_dir = images.relative_to(root).as_posix()
        prep = Preprocess(image_size, crop=options.crop,
                          bbox_mode=options.bbox_mode if options.crop == "bbox" else None)
        notes = []
        if options.crop == "bbox":
            notes = cls._annotations(root, files)
            hashed += notes

        def decode():
            boxes = [cls._box(root / n, options.bbox_mode) for n in notes] if notes else None
            return decode_labelled(root / image_dir, files, labels, names, prep, boxes,
                                   {"wnids": [_BREED.match(b).group(1) for b in breeds]})

        params = {**prep.record(), "split": options.split}
        return Source(cls.name, options.split, image_size, root, [f"{image_dir}/{f}" for f in files] + hashed,
                      params, decode)

    @classmethod
    def _select(cls, root: Path, split: str, present: list[str], index: dict[str, int]):
        """The split's files (sorted) and the list file read, checked against the folders."""
        name = LIST_FILES[split]
        path = _first(root, (name, f"lists/{name}"))
        if path is None:
            if split == "all":
                return present, []
            raise BenchError(f"{name} not found in {root} or {root / 'lists'}; split '{split}' needs the "
                             f"official lists: run 'bench data fetch stanford_dogs --root {root}' or set data.split=all")
        listed, labels = read_list(path)
        have = set(present)
        for rel, label in zip(listed, labels):
            if rel not in have:
                raise BenchError(f"{path.name} lists {rel}, which is not under Images/ in {root}; "
                                 "the image tree is incomplete: fetch images.tar again")
            if index[rel.split("/", 1)[0]] != label - 1:
                raise BenchError(f"{path.name} gives {rel} label {label} but its folder sorts as {index[rel.split('/', 1)[0]] + 1}; "
                                 "Images/ has other breed folders than the lists: use the official tree")
        return sorted(listed), [path.relative_to(root).as_posix()]

    @classmethod
    def _annotations(cls, root: Path, files: list[str]) -> list[str]:
        notes_dir = _first(root, ("Annotation", "Annotations", "annotation", "annotations"))
        if notes_dir is None:
            raise BenchError(f"data.crop=bbox needs {root / 'Annotation'} (VOC XML per image); "
                             f"run 'bench data fetch stanford_dogs --root {root}' or set data.crop=center")
        notes = [f"{notes_dir.name}/{f.rsplit('.', 1)[0]}" for f in files]
        missing = [n for n in notes if not (root / n).is_file()]
        if missing:
            raise BenchError(f"annotation {root / missing[0]} is missing ({len(missing)} in all); "
                             "fetch annotation.tar again or set data.crop=center")
        return notes

    @staticmethod
    def _box(path: Path, mode: str) -> Optional[Box]:
        boxes = read_boxes(path)
        if not boxes:
            return None  # no object annotated: the whole image, centre-cropped
        if mode == "first":
            return boxes[0]
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
