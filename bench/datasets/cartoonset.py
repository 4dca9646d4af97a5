"""Google's Cartoon Set (cartoonset10k / cartoonset100k; CC BY 4.0, Google LLC), docs/protocols.md §10.1.

Each `csX.png` (500x500 RGBA, transparent background) has a sibling `csX.csv` with one line per
attribute: `"name", variant_index, num_variants`. The PNGs are composited onto a fixed background
before RGB conversion, since a plain convert paints the transparent canvas black. All 18
attributes are kept per image (`extras["attributes"]`, N x 18); `data.attribute` picks one of
them as the class for conditional runs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.config.checks import Range, ranged
from bench.datasets.base import FileDataset, FileOptions
from bench.datasets.cache import Source
from bench.datasets.decode import Preprocess
from bench.datasets.files import require_dir
from bench.datasets.folders import decode_labelled
from bench.errors import BenchError
from bench.registry import datasets


@dataclass(frozen=True)
class CartoonOptions(FileOptions):
    attribute: str = ""  # attribute used as class label (e.g. hair_color); empty = unlabelled
    background: tuple[int, int, int] = ranged((255, 255, 255), Range(0, 255))  # RGB under the transparent canvas
    precrop: int = ranged(0, Range(0, 500))  # centre square (px of the 500 px canvas) kept before resizing; 0 = all


def read_attributes(path: Path) -> list[tuple[str, int, int]]:
    """(name, variant index, number of variants) per line of one csX.csv."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for line in csv.reader(f, skipinitialspace=True):
            if not line:
                continue
            if len(line) != 3:
                raise BenchError(f"{path}: expected '\"name\", index, count' per line, got {line!r}; "
                                 "the Cartoon Set CSVs are damaged: fetch them again")
            rows.append((line[0], int(line[1]), int(line[2])))
    return rows


@datasets.register("cartoonset")
class CartoonSet(FileDataset):
    Options = CartoonOptions
    fetchable = True
    feature_family = "natural"  # Inception and VGG16

    label_fix = "set data.attribute (e.g. hair_color) to use one of its attributes as the class"

    @classmethod
    def labelled(cls, options: CartoonOptions) -> bool:
        return bool(options.attribute)

    @classmethod
    def source(cls, options: CartoonOptions, image_size: int) -> Source:
        root = require_dir(cls.root(options), "Cartoon Set folder", cls.fix(cls.root(options)))
        # Searched recursively: the archives unpack into a cartoonset10k/ folder.
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")
                       if not any(part.startswith(".") for part in p.relative_to(root).parts))
        if not files:
            raise BenchError(f"no .png files under {root}; expected cartoonset10k/csX.png with csX.csv; "
                             + cls.fix(root))
        tables = [f[:-4] + ".csv" for f in files]
        missing = [t for t in tables if not (root / t).is_file()]
        if missing:
            raise BenchError(f"{root / missing[0]} is missing ({len(missing)} PNGs without their CSV); "
                             "every csX.png needs its csX.csv beside it: " + cls.fix(root))
        names = [name for name, _, _ in read_attributes(root / tables[0])]
        if options.attribute and options.attribute not in names:
            raise BenchError(f"Cartoon Set has no attribute '{options.attribute}'; set data.attribute to one of: "
                             + ", ".join(names))
        prep = Preprocess(image_size, background=options.background, precrop=options.precrop)

        def decode():
            attributes, sizes = cls._attributes(root, tables, names)
            if options.attribute:
                k = names.index(options.attribute)
                labels = attributes[:, k].tolist()
                classes = [f"{options.attribute}={v}" for v in range(sizes[k])]
            else:
                labels, classes = None, []
            extras = {"attributes": attributes, "attribute_names": names, "attribute_sizes": sizes}
            return decode_labelled(root, files, labels, classes, prep, extras=extras)

        params = {**prep.record(), "attribute": options.attribute}
        return Source(cls.name, "all", image_size, root, files + tables, params, decode)

    @classmethod
    def _attributes(cls, root: Path, tables: list[str], names: list[str]) -> tuple[torch.Tensor, list[int]]:
        values, sizes = [], [0] * len(names)
        for table in tables:
            rows = read_attributes(root / table)
            if [r[0] for r in rows] != names:
                raise BenchError(f"{root / table} lists other attributes than {root / tables[0]}; "
                                 "mixed Cartoon Set versions in one folder: keep one")
            values.append([r[1] for r in rows])
            sizes = [max(s, r[2]) for s, r in zip(sizes, rows)]
        return torch.tensor(values, dtype=torch.int64), sizes
