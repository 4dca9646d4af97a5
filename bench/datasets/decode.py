"""Decoding image files once into a uint8 N x 3 x S x S array, in parallel, counting bad files.

The steps follow PROTOCOLS 10.6 and never change between datasets: open with PIL, composite
alpha onto a fixed background when asked (a plain RGB convert turns transparent pixels black),
crop to a box or a fixed centre square when asked, resize the shorter side to S with BICUBIC,
centre-crop S x S. Workers are threads: PIL releases the GIL while it decodes and resamples, so
threads use every core without pickling arrays back from processes.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
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


def _decode_chunk(paths: Sequence[Path], prep: Preprocess, boxes: Sequence[Optional[Box]],
                  out: np.ndarray) -> list[tuple[int, str]]:
    bad = []
    for i, (path, box) in enumerate(zip(paths, boxes)):
        try:
            out[i] = decode_one(path, prep, box).transpose(2, 0, 1)
        except UNREADABLE as exc:
            bad.append((i, f"{type(exc).__name__}: {exc}".splitlines()[0]))
    return bad


def decode_files(paths: Sequence[Path], prep: Preprocess, boxes: Optional[Sequence[Optional[Box]]] = None,
                 workers: int = 1) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """All files decoded into one N x 3 x S x S array, and (index, reason) for each unreadable one.

    Rows of unreadable files are left zero; the caller drops them.
    """
    n, s = len(paths), prep.size
    out = np.zeros((n, 3, s, s), dtype=np.uint8)
    boxes = list(boxes) if boxes is not None else [None] * n
    # Contiguous chunks, a few per worker, so each thread writes its own slice of `out`.
    step = max(1, -(-n // (workers * 4)))
    starts = range(0, n, step)
    if workers <= 1 or n < 64:
        chunks = [_decode_chunk(paths, prep, boxes, out)]
        starts = range(0, 1)
    else:
        with ThreadPoolExecutor(workers) as pool:
            chunks = list(pool.map(lambda a: _decode_chunk(paths[a:a + step], prep, boxes[a:a + step],
                                                           out[a:a + step]), starts))
    bad = [(start + i, why) for start, chunk in zip(starts, chunks) for i, why in chunk]
    return out, bad
