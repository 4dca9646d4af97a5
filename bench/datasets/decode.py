"""Decoding image files once into a uint8 N x 3 x S x S array, in parallel, counting bad files.

The steps follow docs/protocols.md §10.6 and never change between datasets: open with PIL, composite
alpha onto a fixed background when asked (a plain RGB convert turns transparent pixels black),
crop to a box or a fixed centre square when asked, resize the shorter side to S with BICUBIC,
centre-crop S x S. Files are decoded in chunks by a pool of workers (see `_pool`).
"""

from __future__ import annotations

import multiprocessing
import sys
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels, as PIL crops


@dataclass(frozen=True)
class Preprocess:
    """Every choice that turns a file into pixels; all of it is recorded and fingerprinted."""

    size: int
    filter: str = "PIL.BICUBIC (antialiased)"
    crop: str = "center"  # center | bbox (per-image box, then the centre crop)
    background: Optional[tuple[int, int, int]] = None  # alpha composited onto this colour; None = plain convert
    precrop: int = 0  # centre square of this side taken before resizing; 0 = none
    bbox_mode: Optional[str] = None  # first | union, when crop is bbox

    def record(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def to_square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size` with BICUBIC, then the centre size x size square."""
    w, h = image.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if new != (w, h):
        image = image.resize(new, Image.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def decode_one(path: Path, prep: Preprocess, box: Optional[Box] = None) -> np.ndarray:
    """One file to an S x S x 3 uint8 array; raises on an unreadable file."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image.load()  # a truncated file fails here, not later
            if prep.background is not None:
                rgba = image.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, tuple(prep.background) + (255,))
                image = Image.alpha_composite(canvas, rgba).convert("RGB")
            else:
                image = image.convert("RGB")
    if box is not None:
        w, h = image.size
        l, t, r, b = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
        if r > l and b > t:
            image = image.crop((l, t, r, b))
    if prep.precrop:
        w, h = image.size
        side = min(prep.precrop, w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
    return np.asarray(to_square(image, prep.size), dtype=np.uint8)


# What PIL raises for a file it cannot read: not an image, truncated, a decompression bomb.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
              Image.DecompressionBombWarning)


def _decode_chunk(paths: Sequence[Path], prep: Preprocess,
                  boxes: Sequence[Optional[Box]]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    out = np.zeros((len(paths), 3, prep.size, prep.size), dtype=np.uint8)
    bad = []
    for i, (path, box) in enumerate(zip(paths, boxes)):
        try:
            out[i] = decode_one(path, prep, box).transpose(2, 0, 1)
        except UNREADABLE as exc:
            bad.append((i, f"{type(exc).__name__}: {exc}".splitlines()[0]))
    return out, bad


def _pool(workers: int) -> Executor:
    """Forked processes on Linux: they inherit the imported modules (no torch import per worker) and
    decode JPEGs faster than threads (README, Speed), whose per-file Python work serialises on the GIL.
    Children only run PIL and numpy. Elsewhere fork is unsafe: threads."""
    if sys.platform == "linux":
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(workers)


def decode_files(paths: Sequence[Path], prep: Preprocess, boxes: Optional[Sequence[Optional[Box]]] = None,
                 workers: int = 1) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """All files decoded into one N x 3 x S x S array, and (index, reason) for each unreadable one.

    Rows of unreadable files are left zero; the caller drops them.
    """
    paths = list(paths)
    boxes = list(boxes) if boxes is not None else [None] * len(paths)
    if workers <= 1 or len(paths) < 256:  # a pool costs more than it saves on a handful of files
        return _decode_chunk(paths, prep, boxes)
    out = np.zeros((len(paths), 3, prep.size, prep.size), dtype=np.uint8)
    step = -(-len(paths) // (workers * 4))  # a few chunks per worker evens out slow files
    starts = list(range(0, len(paths), step))
    bad = []
    with _pool(workers) as pool:
        chunks = pool.map(_decode_chunk, *zip(*[(paths[a:a + step], prep, boxes[a:a + step]) for a in starts]))
        for start, (array, chunk_bad) in zip(starts, chunks):
            out[start:start + len(array)] = array
            bad.extend((start + i, why) for i, why in chunk_bad)
    return out, bad
