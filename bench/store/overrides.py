"""results/<grid>/overrides.json: each `bench run` of a grid folder, with the `--set` overrides it was
given and the runs it planned, in plan order.

Overrides change which runs a grid folder holds without changing its grid.yaml, so status and report
read them here to keep the grid's order and to say what was overridden. Not part of any run's id.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.store.runs import write_atomic

FILE = "overrides.json"


def read(grid_dir: Path) -> list[dict]:
    """The recorded invocations, oldest first; [] when there is none or the file is not ours."""
    try:
        entries = json.loads((Path(grid_dir) / FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    ok = isinstance(entries, list) and all(
        isinstance(e, dict) and isinstance(e.get("set"), list) and isinstance(e.get("runs"), list) for e in entries)
    return entries if ok else []


def record(grid_dir: Path, sets: tuple[str, ...], run_ids: list[str]) -> None:
    """Add this invocation's runs under its overrides (one entry per distinct override list)."""
    entries = read(grid_dir)
    entry = next((e for e in entries if e["set"] == list(sets)), None)
    if entry is None:
        entries.append({"set": list(sets), "runs": list(run_ids)})
    else:
        entry["runs"] += [r for r in run_ids if r not in entry["runs"]]
    write_atomic(Path(grid_dir) / FILE, json.dumps(entries, indent=1))


def run_order(grid_dir: Path) -> list[str]:
    """Run ids in the order their invocations planned them, each once."""
    return list(dict.fromkeys(r for e in read(grid_dir) for r in e["runs"]))


def applied(grid_dir: Path, run_ids) -> list[str]:
    """'k=v k=v' for each non-empty override list that planned any of these runs."""
    wanted = set(run_ids)
    return [" ".join(e["set"]) for e in read(grid_dir) if e["set"] and wanted & set(e["runs"])]
