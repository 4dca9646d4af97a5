"""The decoded-once cache: one .pt file per (dataset, split, size, source fingerprint).

A file dataset describes itself as a `Source` (which files shape the result, which choices, and
how to decode on a miss). The fingerprint is docs/protocols.md §10.6's `srcfp`: sha256 over the sorted
(relative path, content sha256) of every such file, plus the split and all preprocessing and
selection parameters. A source that changed gets a new name, so a stale cache is never read; the
old file is left for the user to delete. `ref_fingerprint` is the sha256 of the cache file itself,
computed once when it is written and kept in a sidecar, so loading never re-reads the tensor.

Unreadable images: docs/protocols.md §10 says never skip silently, the datasets issue says skip and count.
Both hold here: a few are skipped, counted in the cache and the run's status, printed and listed
in a file beside the cache; past CORRUPT_LIMIT the load fails, naming that file.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from PIL import Image

from bench.datasets.decode import UNREADABLE
from bench.datasets.files import cache_root, file_digests, is_image, sha256_file
from bench.errors import BenchError
from bench.store.runs import save_atomic, write_atomic

FORMAT = 1  # bump when decoding changes what a cache holds; old caches then miss
CORRUPT_LIMIT = 0.01  # more unreadable images than this fraction fails the load


@dataclass
class Decoded:
    """What a decode produces: the kept images and their labels, and the files that failed."""

    images: torch.Tensor  # uint8 N x 3 x S x S
    labels: Optional[torch.Tensor]  # int64 N, or None when unlabelled
    class_names: list[str]
    files: list[str]  # kept files, in dataset order
    skipped: list[str] = field(default_factory=list)  # "path: reason" per unreadable file
    extras: dict[str, Any] = field(default_factory=dict)  # per-image side data (cartoon attributes)


@dataclass
class Source:
    """A file dataset as the cache sees it."""

    name: str
    split: str
    size: int
    root: Path
    hashed: list[str]  # every file (relative to root) whose bytes shape the result
    params: dict[str, Any]  # every choice that shapes the result: preprocessing, split, selection
    decode: Callable[[], Decoded]  # run only on a cache miss


@dataclass
class Cached:
    payload: dict[str, Any]
    path: Path
    fingerprint: str
    ref_fingerprint: str
    built: bool  # decoded now rather than read from the cache


def fingerprint(source: Source, digests: list[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "split": source.split, "size": source.size,
                         "params": source.params}, sort_keys=True).encode())
    for rel, digest in sorted(zip(source.hashed, digests)):
        h.update(f"\n{rel}\0{digest}".encode())
    return h.hexdigest()


def cache_path(name: str, split: str, size: int, srcfp: str) -> Path:
    return cache_root() / f"{name}-{split}-{size}px-{srcfp[:16]}.pt"


def load_or_build(source: Source) -> Cached:
    srcfp = fingerprint(source, file_digests(source.root, source.hashed))
    path = cache_path(source.name, source.split, source.size, srcfp)
    payload = _read(path, srcfp)
    if payload is not None:
        return Cached(payload, path, srcfp, _ref_fingerprint(path), built=False)
    decoded = source.decode()
    total = len(decoded.files) + len(decoded.skipped)
    if decoded.skipped:
        listing = path.with_suffix(".corrupt.txt")
        write_atomic(listing, "".join(line + "\n" for line in decoded.skipped))
        if len(decoded.skipped) > CORRUPT_LIMIT * total:
            raise BenchError(f"{len(decoded.skipped)} of {total} images under {source.root} could not be decoded "
                             f"(limit {CORRUPT_LIMIT:.0%}); the list is in {listing}: replace or delete them")
        print(f"{source.name}: skipped {len(decoded.skipped)} unreadable of {total} images; list in {listing}",
              file=sys.stderr)
    if not decoded.files:
        raise BenchError(f"no images in {source.root}; put image files there or set data.root")
    payload = {"format": FORMAT, "dataset": source.name, "split": source.split, "size": source.size,
               "fingerprint": srcfp, "params": source.params, "images": decoded.images,
               "labels": decoded.labels, "class_names": list(decoded.class_names), "files": decoded.files,
               "skipped": decoded.skipped, "extras": decoded.extras}
    save_atomic(path, lambda tmp: torch.save(payload, tmp))
    ref = sha256_file(path)
    st = path.stat()
    write_atomic(_sidecar(path), json.dumps({"sha256": ref, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return Cached(payload, path, srcfp, ref, built=True)


def check_headers(source: Source) -> None:
    """Before any run starts, fail as load would when over CORRUPT_LIMIT of the images are unreadable.

    Decoding them all here would double the first load, so each file's header is opened and checked
    (PIL verify, about 50 us a file: a second for 20,000), stopping once the limit is passed; a built
    cache for exactly these files already holds the decoder's count and skips the pass. A file that
    passes can still fail to decode (a truncated JPEG): load counts those, with the same limit."""
    images = [f for f in source.hashed if is_image(f)]
    if not images:
        return
    srcfp = fingerprint(source, file_digests(source.root, source.hashed))
    if cache_path(source.name, source.split, source.size, srcfp).is_file():
        return
    limit, bad = CORRUPT_LIMIT * len(images), []
    for rel in images:
        if not _opens(source.root / rel):
            bad.append(rel)
            if len(bad) > limit:
                raise BenchError(f"over {CORRUPT_LIMIT:.0%} of the {len(images)} images under {source.root} are "
                                 f"unreadable ({len(bad)} so far, first {bad[0]}); replace or delete them")


def _opens(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.verify()
        return True
    except UNREADABLE:
        return False


def _read(path: Path, srcfp: str) -> Optional[dict]:
    """The cached payload, or None when absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - a truncated or foreign file is rebuilt, not trusted
        return None
    if not isinstance(payload, dict) or payload.get("fingerprint") != srcfp or payload.get("format") != FORMAT:
        return None
    return payload


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".sha256.json")


def _ref_fingerprint(path: Path) -> str:
    """The cache file's sha256, from the sidecar when the file is the one it describes."""
    st = path.stat()
    try:
        side = json.loads(_sidecar(path).read_text())
        if side["size"] == st.st_size and side["mtime_ns"] == st.st_mtime_ns:
            return side["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    ref = sha256_file(path)
    write_atomic(_sidecar(path), json.dumps({"sha256": ref, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return ref
