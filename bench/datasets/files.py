"""Where a dataset's files live, which of them count as images, and what their bytes hash to.

Listings are sorted relative POSIX paths, so the dataset order (and every index into the cache)
is the same on every machine (docs/protocols.md §10). Digests are of file contents, not of sizes and
mtimes: a copied or re-extracted tree keeps its fingerprint, and an edited file changes it.
Hashing 20,000 JPEGs on every run would cost seconds, so digests are memoised per file under the
cache root, keyed by (size, mtime_ns); a file whose stat is unchanged is not read again. The
memo is the only place stat data is trusted, and deleting it just costs one re-hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.errors import BenchError
from bench.store.runs import write_atomic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def data_root(option: str, name: str) -> Path:
    """`data.root` when set, else $BENCH_DATA/<name>, else ./data/<name>."""
    if option:
        return Path(option).expanduser()
    home = os.environ.get("BENCH_DATA")
    return (Path(home).expanduser() if home else Path("data")) / name


def cache_root() -> Path:
    """$BENCH_CACHE, else ./cache. Not a config key: where a cache lives never changes a result."""
    return Path(os.environ.get("BENCH_CACHE") or "cache").expanduser()


def workers() -> int:
    """Decode and hash workers: $BENCH_WORKERS, else every core."""
    value = os.environ.get("BENCH_WORKERS", "")
    return max(1, int(value)) if value.isdigit() else (os.cpu_count() or 1)


def is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


MAX_WALK_ENTRIES = 10_000_000  # files and folders seen while listing one dataset folder (ImageNet has 1.3M)


def list_images(folder: Path, recursive: bool = False) -> list[str]:
    """Image files under `folder` as sorted POSIX paths relative to it; hidden entries skipped.
    A filesystem root or the home folder is refused, and a walk past MAX_WALK_ENTRIES stops: a
    mistyped data.root would otherwise hash every image on the disk into one dataset."""
    resolved = Path(folder).resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise BenchError(f"data.root {folder} is a filesystem root or the home folder, not a dataset; point "
                         f"data.root at the folder that holds the dataset's images")
    found, seen = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        seen += len(dirnames) + len(filenames)
        if seen > MAX_WALK_ENTRIES:
            raise BenchError(f"more than {MAX_WALK_ENTRIES:,} entries under {folder}; point data.root at the "
                             f"dataset's own folder")
        base = Path(dirpath).relative_to(folder)
        found.extend((base / f).as_posix() for f in filenames if is_image(f))
    return sorted(found)


def visible_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def require_dir(path: Path, what: str, fix: str) -> Path:
    if not path.is_dir():
        raise BenchError(f"{what} {path} not found; {fix}")
    return path


def file_digests(root: Path, rels: list[str]) -> list[str]:
    """sha256 of each file's bytes, reusing the memo for files whose size and mtime are unchanged."""
    memo_path = cache_root() / "digests" / (hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16] + ".json")
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    stats, todo = {}, []
    for rel in rels:
        st = (root / rel).stat()
        stats[rel] = [st.st_size, st.st_mtime_ns]
        known = memo.get(rel)
        if not known or known[:2] != stats[rel]:
            todo.append(rel)
    if todo:
        # hashlib releases the GIL on large buffers, so threads overlap reads and hashing.
        with ThreadPoolExecutor(workers()) as pool:
            for rel, digest in zip(todo, pool.map(lambda r: sha256_file(root / r), todo)):
                memo[rel] = stats[rel] + [digest]
        write_atomic(memo_path, json.dumps(memo, separators=(",", ":")))
    return [memo[rel][2] for rel in rels]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

