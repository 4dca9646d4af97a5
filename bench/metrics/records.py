"""One evaluated number and the record it becomes in a run's metrics.jsonl.

Every value carries its protocol (docs/protocols.md §0.1): what extracted the features, how many samples on
each side, which reference set, which checkpoint, which seeds and library. The report groups on
those fields, so two measurements taken differently can never share a column. The `label` is the
short human name of the same protocol ("FD@2k/all/digits-mlp"), for table headers.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

KINDS = ("curve", "final", "best")  # in-training cheap protocol; full protocol on final / best G


@dataclass
class Value:
    """A metric's result before it is tied to a step and a checkpoint."""

    name: str  # stable metric name: fd, kid, modes_covered, msssim_gap...
    value: float
    label: str  # short column label that encodes the protocol
    higher_is_better: bool
    params: dict[str, Any] = field(default_factory=dict)  # protocol fields specific to this metric
    std: Optional[float] = None
    std_kind: Optional[str] = None  # subsets | seeds | bootstrap | classes


def record(v: Value, *, step: int, kind: str, checkpoint: str, protocol: dict[str, Any]) -> dict[str, Any]:
    """The JSON line for one value; `protocol` holds the run-wide fields, v.params the metric's own."""
    assert kind in KINDS, kind
    out = {"step": int(step), "name": v.name, "value": float(v.value), "kind": kind, "label": v.label,
           "protocol": {**protocol, "checkpoint": checkpoint, **v.params},
           "higher_is_better": bool(v.higher_is_better)}
    if v.std is not None:
        out["std"], out["std_kind"] = float(v.std), v.std_kind
    return out


def count_label(n: int) -> str:
    """2000 -> '2k', 10000 -> '10k', 2500 -> '2500': the sample count as column labels write it."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


@functools.lru_cache(maxsize=1)
def own_library() -> str:
    """'gan-bench==<version>+<git hash>': our own metric code is a library too (docs/protocols.md §0.1)."""
    from bench import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"gan-bench=={__version__}" + (f"+{sha}" if sha else "")


@functools.lru_cache(maxsize=1)
def fidelity_library() -> str:
    import torch_fidelity

    return f"torch-fidelity=={torch_fidelity.__version__}"
