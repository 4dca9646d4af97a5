"""The run store: run folders, atomic writes, and the one validated reader of what they hold.

results/<grid>/<run id>/
    config.yaml     resolved config (the flat mapping the id hashes)
    status.json     state (queued, running, done, failed, diverged), reason, step, timings
    metrics.jsonl   one JSON record per logged value: step, name, value and how it was measured
    ckpt/latest.pt  G, D, optimizers, step, every RNG state (atomically replaced)
    samples/        sample grids as PNG
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from bench.errors import BenchError

STATES = ("queued", "running", "done", "failed", "diverged")
FINISHED = ("done", "diverged")
DAMAGED = "damaged"  # not a state a run is put in: what readers report for a folder they cannot read
_STATUS_INTS = ("step", "steps", "start_step", "threads")
_STATUS_TIMES = ("started", "finished", "updated")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: 1,000 configs in well under a second


class Damaged(BenchError):
    """A run folder file that is not what the harness wrote: named with its problem and the fix."""

    def __init__(self, file: Path, problem: str):
        self.file, self.problem = Path(file), problem
        super().__init__(f"{file}: {problem}; delete the run folder {Path(file).parent} to retrain it, "
                         f"or restore the file")


@dataclass
class RunView:
    """What listings need of one run folder, read once and validated; `damage` says why it could not be."""

    run: "RunDir"
    config: dict[str, Any]
    status: dict[str, Any]
    damage: Optional[Damaged]

    @property
    def state(self) -> str:
        return DAMAGED if self.damage else str(self.status.get("state", "queued"))


def _text(path: Path) -> str:
    """A run file as UTF-8 text; bytes that are not UTF-8 mean it is damaged."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise Damaged(path, "not UTF-8 text") from None
    except IsADirectoryError:
        raise Damaged(path, "a folder, not a file") from None


def _yaml(path: Path) -> Any:
    try:
        return yaml.load(_text(path), Loader=_Loader)
    except FileNotFoundError:
        raise Damaged(path, "missing") from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise Damaged(path, f"not YAML ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_NONFINITE = ("inf", "-inf", "nan")  # how append_metrics writes what JSON cannot hold (NaN is written null)
_LARGEST = int(1.7976931348623157e308)  # past this an integer is no float: a report could not hold it


def _is_value(value: Any) -> bool:
    if value is None or value in _NONFINITE:
        return True
    return _is_number(value) and (not isinstance(value, int) or -_LARGEST <= value <= _LARGEST)


def _is_record(obj: Any) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("name"), str) and _is_int(obj.get("step"))
            and _is_value(obj.get("value")) and _is_value(obj.get("std")))


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; outputs are read by other people and tools, so they get the mode an
# ordinary open() would give them (0644 under the usual umask).
_FILE_MODE = 0o666 & ~_umask()


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
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
    os.fchmod(fd, _FILE_MODE)
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


_VERDICTS: dict[tuple[str, int, int], Optional[Damaged]] = {}  # RunDir.check_metrics's memory


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

    # ---- config and status: every read of a run folder is validated here (the one reader)
    def write_config(self, flat: dict[str, Any]) -> None:
        write_atomic(self.config_file, yaml.safe_dump(flat, sort_keys=True))

    def read_config(self) -> dict[str, Any]:
        """The resolved flat config this run was created with; Damaged when it cannot be that."""
        data = _yaml(self.config_file)
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise Damaged(self.config_file, "not a mapping of key: value")
        return data  # its values are checked where a run is trained from it (config.resolve)

    def status(self) -> dict[str, Any]:
        """The run's status; a run without status.json is queued. Damaged when unreadable."""
        try:
            data = json.loads(_text(self.status_file))
        except FileNotFoundError:
            return {"state": "queued"}
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise Damaged(self.status_file, f"not JSON ({_first_line(exc)})") from None
        if not isinstance(data, dict):
            raise Damaged(self.status_file, "not a JSON object")
        if data.get("state", "queued") not in STATES:
            raise Damaged(self.status_file, f"unknown state {_short(data.get('state'))}")
        for key in _STATUS_INTS:
            if key in data and not _is_int(data[key]):
                raise Damaged(self.status_file, f"'{key}' is {_short(data[key])}, not a whole number")
        for key in _STATUS_TIMES:
            if key in data and data[key] is not None and not _is_number(data[key]):
                raise Damaged(self.status_file, f"'{key}' is {_short(data[key])}, not a time")
        if not isinstance(data.get("reason", ""), str):
            raise Damaged(self.status_file, "'reason' is not text")
        if not isinstance(data.get("harness", ""), str):
            raise Damaged(self.status_file, "'harness' is not text")
        seconds = data.get("seconds", {})
        if not isinstance(seconds, dict) or not all(_is_number(v) and v >= 0 for v in seconds.values()):
            raise Damaged(self.status_file, f"'seconds' is {_short(seconds)}, not phases and their seconds")
        return data

    def inspect(self, metrics: bool = False) -> "RunView":
        """Config, status and lock-free facts for listings; a damaged file is reported, never raised.
        With `metrics`, a finished run's metrics.jsonl is read through the same checks as the report's,
        so a listing and a report never call one file done and damaged; unfinished runs are checked
        where they resume (truncate_metrics), so polling a live run costs no parse."""
        try:
            view = RunView(self, self.read_config(), self.status(), None)
            if metrics and view.state in FINISHED:
                self.check_metrics()
            return view
        except Damaged as exc:
            return RunView(self, {}, {"state": "damaged", "reason": str(exc)}, exc)

    def check(self) -> dict[str, Any]:
        """The status of a run a command is about to open, once every run file has read cleanly
        (config, status, metrics); Damaged otherwise, naming the file."""
        self.read_config()
        status = self.status()
        self.check_metrics()
        return status

    def set_status(self, state: str, **fields: Any) -> dict[str, Any]:
        assert state in STATES, state
        try:
            previous = self.status()
        except Damaged:  # a damaged status is replaced by this one; the rest of the run is kept
            previous = {}
        status = {**previous, **fields, "state": state, "updated": time.time(),
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
        """Every complete record. A partial last line (a writer killed mid-append) is dropped; any
        other line that is not a record makes the file Damaged, so no value is lost in silence."""
        try:
            text = _text(self.metrics_file)
        except FileNotFoundError:
            return []
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()  # the only line an append can leave half written
        lines = [line for line in lines if line.strip()]
        try:  # one parser call for the whole file: 1,000 runs' records in well under a second
            records = json.loads("[" + ",".join(lines) + "]")
        except (ValueError, RecursionError):
            records = None
        if records is None or not all(_is_record(r) for r in records):
            bad = sum(1 for line in lines if not _is_record(_json_or_none(line)))
            raise Damaged(self.metrics_file, f"{bad} of {len(lines)} lines are not metric records")
        return records

    def check_metrics(self) -> None:
        """read_metrics for its verdict only, remembered per (file, size, mtime) within this process:
        planning asks for a run's state several times, and a long file takes seconds to parse."""
        try:
            st = os.stat(self.metrics_file)
        except FileNotFoundError:
            return
        key = (str(self.metrics_file.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _VERDICTS:
            try:
                self.read_metrics()
                _VERDICTS[key] = None
            except Damaged as exc:
                _VERDICTS[key] = exc
            if len(_VERDICTS) > 100_000:
                _VERDICTS.clear()
        if _VERDICTS[key] is not None:
            raise _VERDICTS[key]

    def truncate_metrics(self, after_step: int) -> None:
        """Drop records past a checkpoint so a resumed run does not log a step twice."""
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= after_step]
        write_atomic(self.metrics_file, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
