"""The run store: run ids, run folders, atomic writes, status and metric records.

results/<grid>/<run id>/
    config.yaml     resolved config (the flat mapping the id hashes)
    status.json     state (queued, running, done, failed, diverged), reason, step, timings
    metrics.jsonl   one JSON record per logged value: step, name, value and how it was measured
    ckpt/latest.pt  G, D, optimizers, step, every RNG state (atomically replaced)
    samples/        sample grids as PNG
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from bench.config import NOT_HASHED
from bench.errors import BenchError

STATES = ("queued", "running", "done", "failed", "diverged")
FINISHED = ("done", "diverged")


def run_id(flat: dict[str, Any]) -> str:
    """12 hex chars of SHA-256 over the canonical JSON of the resolved config (keys sorted)."""
    hashed = {k: v for k, v in flat.items() if k not in NOT_HASHED}
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(path: Path, save) -> None:
    """Atomic write for libraries that write to a path (torch.save, PIL, matplotlib): save(tmp_path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


class RunDir:
    """One run's folder; every write in it is atomic or a single appended line."""

    def __init__(self, root: Path | str, grid: str, rid: str):
        self.root = Path(root)
        self.grid = grid
        self.id = rid
        self.path = self.root / grid / rid
        # Names come from validated grid names and hex ids; refuse anything that would escape root.
        if self.root.resolve() not in self.path.resolve().parents:
            raise BenchError(f"run folder {self.path} would be outside {self.root}; rename the grid")

    @classmethod
    def open(cls, path: Path | str) -> "RunDir":
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise BenchError(f"{path} is not a run folder (no config.yaml); pass results/<grid>/<run id>")
        return cls(path.parent.parent, path.parent.name, path.name)

    # ---- files
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / "ckpt" / "latest.pt"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    # ---- config and status
    def write_config(self, flat: dict[str, Any]) -> None:
        write_atomic(self.config_file, yaml.safe_dump(flat, sort_keys=True))

    def read_config(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load(self.config_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise BenchError(f"{self.config_file}: unreadable run config ({exc}); delete the run folder to retrain") from None
        if not isinstance(data, dict):
            raise BenchError(f"{self.config_file}: not a mapping; delete the run folder to retrain")
        return data

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except FileNotFoundError:
            return {"state": "queued"}
        except (OSError, json.JSONDecodeError):
            return {"state": "failed", "reason": "status.json unreadable"}

    def set_status(self, state: str, **fields: Any) -> dict[str, Any]:
        assert state in STATES, state
        status = {**self.status(), **fields, "state": state, "updated": time.time(),
                  "host": socket.gethostname(), "pid": os.getpid()}
        if "reason" not in fields:
            status.pop("reason", None)
        write_atomic(self.status_file, json.dumps(status, indent=1, sort_keys=True))
        return status

    # ---- metric records
    def append_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records as JSON lines in one write, so a kill leaves at most one partial line."""
        lines = "".join(json.dumps({k: _finite_or_none(v) for k, v in r.items()}, sort_keys=True) + "\n"
                        for r in records)
        if not lines:
            return
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_file, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        """All complete records; a partial last line from a killed writer is ignored."""
        if not self.metrics_file.exists():
            return []
        out = []
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def truncate_metrics(self, after_step: int) -> None:
        """Drop records past a checkpoint so a resumed run does not log a step twice."""
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= after_step]
        write_atomic(self.metrics_file, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
