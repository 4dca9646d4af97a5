"""The harness version a run trained with: the package version plus a fingerprint of the code that
decides its numbers.

A change of float rounding (another convolution, another reduction order) keeps a run's id, which
hashes the config only, so two runs under one id can differ in their last bits. status.json records
`harness` for every run, and the report says when one grid mixes versions. The fingerprint covers the
training, data, metric, config and store code and the variants, not the report, the launchers or the
command line, whose changes cannot move a number.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import bench

REPO = Path(bench.__file__).resolve().parent.parent
PARTS = ("bench/train", "bench/datasets", "bench/metrics", "bench/config", "bench/store", "bench/variant.py",
         "bench/registry.py", "variants")


def fingerprint(repo: Path, parts: tuple[str, ...] = PARTS) -> str:
    """12 hex digits of the sha256 of every Python file under `parts` of `repo`, names included."""
    h = hashlib.sha256()
    for part in parts:
        path = repo / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []:
            h.update(file.relative_to(repo).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:12]


@functools.cache
def harness() -> str:
    """'<package version>+<code fingerprint>', computed once per process."""
    return f"{bench.__version__}+{fingerprint(REPO)}"


@functools.cache
def metrics_code() -> str:
    """The fingerprint of bench/metrics/ alone: what values cached from the reference depend on."""
    return fingerprint(REPO, ("bench/metrics",))
