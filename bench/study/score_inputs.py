"""What `bench score` accepts as an image set, checked before any feature is computed.

An FD computed from NaNs, from 0-255 values read as [0, 1] or from clipped 16-bit pixels is a number
with no meaning, so each of those is refused with one line rather than scored: arrays must hold
finite floats in [0, 1], every file of a folder must decode, and each set needs enough images for
the statistics (a covariance, nearest neighbours) to exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import BenchError

MIN_IMAGES = 10  # FD's covariance needs 2, precision/recall 4 (k = 3), density/coverage 6 (k = 5): 10 is a floor
RANGE_SLACK = 1e-6  # float rounding past 0 or 1 is clipped, anything further is refused


def npz_samples(path: str) -> np.ndarray:
    """The float32 'samples' array of an .npz, refused unless it holds finite values in [0, 1]."""
    try:
        with np.load(path) as arrays:
            x = np.asarray(arrays["samples"])
    except (OSError, ValueError, KeyError, EOFError) as exc:
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise BenchError(f"{path}: not an .npz with a 'samples' array as bench sample writes ({why})") from None
    if x.dtype.kind in "uib":
        hint = " (0-255 pixels: divide by 255)" if x.dtype == np.uint8 else ""
        raise BenchError(f"{path}: 'samples' holds {x.dtype} values{hint}; bench score takes floats in [0, 1]")
    if x.dtype.kind != "f":
        raise BenchError(f"{path}: 'samples' holds {x.dtype} values; bench score takes floats in [0, 1]")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise BenchError(f"{path}: 'samples' has shape {x.shape}; bench score takes images "
                         f"N x C x H x W (C 1 or 3) in [0, 1]")
    finite = np.isfinite(x)
    if not finite.all():
        raise BenchError(f"{path}: {x.size - int(finite.sum()):,} of {x.size:,} sample values are NaN or infinite; "
                         f"bench score takes finite values in [0, 1]")
    if x.size and (x.min() < -RANGE_SLACK or x.max() > 1 + RANGE_SLACK):
        raise BenchError(f"{path}: sample values span [{x.min():.4g}, {x.max():.4g}]; bench score takes images in "
                         f"[0, 1] (from [-1, 1]: (x + 1) / 2; from 0-255: x / 255)")
    return np.clip(x, 0, 1).astype(np.float32)


def folder_images(path: str, files: list[Path]) -> list[np.ndarray]:
    """Every file as an H x W x 3 uint8 array; the first one that does not decode is named and refused."""
    from bench.datasets.decode import UNREADABLE, open_rgb

    arrays = []
    for f in files:
        try:
            arrays.append(np.asarray(open_rgb(f)))
        except UNREADABLE as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            raise BenchError(f"{f}: unreadable image ({type(exc).__name__}: {why}); delete or replace it "
                             f"to score {path}") from None
    return arrays


def check_count(path: str, n: int) -> None:
    if n < MIN_IMAGES:
        raise BenchError(f"{path}: {n} image{'s' if n != 1 else ''}; bench score needs at least {MIN_IMAGES} per set "
                         f"(a covariance and nearest neighbours need several)")
