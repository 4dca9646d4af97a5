"""`bench status`: a grid's runs by state, with step, rate, ETA and the error of failed runs.

Reads run folders only, through bench/store/runs.py's validated reader (config.yaml, status.json) and
lock.json: no torch, so it is instant and works on a copy of results/ without the training stack.
A folder whose files cannot be read is listed as damaged, with the file and the fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bench.store.locks import is_stale, read_lock
from bench.store.runs import DAMAGED, RunDir
from bench.train.timing import time_split

ORDER = ("running", "stalled", "queued", "damaged", "failed", "diverged", "done")


@dataclass
class RunRow:
    run_id: str
    config: dict
    status: dict
    lock: Optional[dict]
    damage: str = ""  # why a file of the run folder could not be read (bench/store/runs.py Damaged)

    @property
    def state(self) -> str:
        if self.damage:
            return DAMAGED
        state = self.status.get("state", "queued")
        if state == "running" and (self.lock is None or is_stale(self.lock)):
            return "stalled"  # its process died: the next `bench run` resumes it
        return state

    @property
    def steps(self) -> int:
        steps = self.config.get("steps") or self.status.get("steps") or 0
        return steps if isinstance(steps, int) and not isinstance(steps, bool) else 0

    @property
    def step(self) -> int:
        return int(self.status.get("step", 0))

    @property
    def rate(self) -> Optional[float]:
        """Steps per second since the run last (re)started."""
        s = self.status
        if "started" not in s:
            return None
        end = s.get("finished") if self.state != "running" else s.get("updated")
        seconds = (end or time.time()) - s["started"]
        done = self.step - int(s.get("start_step", 0))
        return done / seconds if seconds > 0 and done > 0 else None


def read_rows(run_paths: list[Path], configs: Optional[list[dict]] = None) -> list[RunRow]:
    """Rows for run folders; `configs` stands in for config.yaml of runs not created yet."""
    rows = []
    for i, path in enumerate(run_paths):
        planned = configs[i] if configs else {}
        if not (path / "config.yaml").exists():  # not created yet, or being created right now
            rows.append(RunRow(path.name, planned, {"state": "queued"}, None))
            continue
        view = RunDir(path.parent.parent, path.parent.name, path.name).inspect(metrics=True)
        damage = str(view.damage) if view.damage else ""
        rows.append(RunRow(path.name, view.config or planned, view.status, read_lock(path / "lock.json"), damage))
    return rows


def varying_config_keys(configs: list[dict]) -> list[str]:
    """variant, dataset, then the other keys whose value differs between the configs, then seed."""
    # Keys every run has; a variant's own keys (absent from other variants' runs) would be noise.
    keys = sorted(set.intersection(*(set(c) for c in configs))) if configs else []
    varying = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    first = [k for k in ("variant", "dataset") if k in varying or k in keys]
    return first + [k for k in varying if k not in first and k != "seed"] + (["seed"] if "seed" in keys else [])


def describer(configs: list[dict], grid_text: str = "", bare: bool = False):
    """config -> 'variant=... dataset=... <what varies> seed=N' (variant and dataset without their key
    when `bare`). An axis of named bundles reads `labels=one_sided` instead of the keys it sets, when
    every config matches one of its values (bench/config/axes.py); other varying keys read key=value."""
    from bench.config.axes import parse_axes, pick

    varying = [k for k in varying_config_keys(configs) if len({repr(c.get(k)) for c in configs}) > 1]
    named = []  # (axis, its values) where each config matches a named value and more than one is used
    for axis in parse_axes(grid_text):
        hits = [pick(axis, c) for c in configs]
        if all(h is not None and h.name is not None for h in hits) and len({h.name for h in hits}) > 1:
            named.append(axis)

    def describe(config: dict) -> str:
        words = [config.get(k) if bare else f"{k}={config.get(k)}" for k in ("variant", "dataset")]
        covered = {"variant", "dataset", "seed"}
        for axis in named:
            value = pick(axis, config)
            words.append(f"{axis.name}={value.name}")
            # The name stands for every key the axis sets (spectral_norm_d=False is `concat`'s too).
            keys = [key for v in axis.values for key, _ in v.settings]
            covered |= {key.split(".")[-1] for key in keys} | set(keys)
        words += [f"{k}={config.get(k)}" for k in varying if k not in covered and k in config]
        return " ".join(map(str, words + ([f"seed={config['seed']}"] if "seed" in config else [])))

    return describe


def by_configuration(rows: list[RunRow]) -> list[RunRow]:
    """Rows grouped by configuration (the config without its seed), groups in the order they first
    appear (the grid's order when the rows come from its plan), seeds ascending inside a group."""
    groups: dict[str, list[RunRow]] = {}
    for row in rows:
        groups.setdefault(configuration(row.config), []).append(row)
    seed = lambda r: r.config.get("seed") if isinstance(r.config.get("seed"), int) else 0  # noqa: E731
    return [row for group in groups.values() for row in sorted(group, key=seed)]


def configuration(config: dict) -> str:
    """What a run trains, without its seed (and the device it ran on): runs that share it are one group."""
    return repr(sorted((k, repr(v)) for k, v in config.items() if k not in ("seed", "device")))


def grid_order(folder: Path) -> Optional[list[dict]]:
    """The planned configs of the grid that made results/<grid> (its grid.yaml, in the grid file's
    order), or None when there is no grid.yaml or it no longer resolves (a registry name since removed)."""
    from bench.config.schema import load_grid
    from bench.errors import BenchError
    from bench.config.grid import resolve_all

    if not (folder / "grid.yaml").is_file():
        return None
    try:
        configs, _ = resolve_all(load_grid(folder / "grid.yaml"), smoke=folder.name.endswith("-smoke"),
                                 max_runs=10**9)
    except (BenchError, OSError, ValueError):
        return None
    return [c.flat() for c in configs]


def in_grid_order(rows: list[RunRow], planned: Optional[list[dict]]) -> list[RunRow]:
    """Rows with their configurations in the grid's order; configurations the grid does not plan
    (trained with --set overrides, or before the file changed) follow, in the order they came."""
    if not planned:
        return rows
    order: dict[str, int] = {}
    for config in planned:
        order.setdefault(configuration(config), len(order))
    return sorted(rows, key=lambda r: order.get(configuration(r.config), len(order)))


def render(rows: list[RunRow], title: str, grid_text: str = "") -> str:
    describe = describer([r.config for r in rows], grid_text)
    lines = [title, f"{'run id':12}  {'state':9}  {'step':>13}  {'steps/s':>8}  config"]
    for row in by_configuration(rows):
        rate = f"{row.rate:8.1f}" if row.rate else f"{'-':>8}"
        lines.append(f"{row.run_id:12}  {row.state:9}  {row.step:>6}/{row.steps:<6}  {rate}  {describe(row.config)}")
    counts = {s: sum(r.state == s for r in rows) for s in ORDER}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n) + eta_text(rows))
    split = time_split([r.status for r in rows])  # bench/train/timing.py: plain Python, no torch
    if split:
        lines.append(split)
    for row in rows:
        if row.state == "failed":
            lines.append(f"failed {row.run_id}: {row.status.get('reason', '(no reason recorded)')}")
        elif row.state == DAMAGED:
            lines.append(f"damaged {row.run_id}: {row.damage}")
    return "\n".join(lines)


def eta_text(rows: list[RunRow]) -> str:
    """The grid's rest at the runs' rates, which are wall time per step: status.json's started to
    updated (or finished) spans every flush's evaluation and, for an ended run, its final one."""
    remaining = sum(max(r.steps - r.step, 0) for r in rows if r.state in ("running", "stalled", "queued"))
    if not remaining:
        return ""
    running = [r.rate for r in rows if r.state == "running" and r.rate]
    finished = [r.rate for r in rows if r.state == "done" and r.rate]
    throughput = sum(running) if running else (sum(finished) / len(finished) if finished else 0)
    if not throughput:
        return f"; {remaining} steps to go"
    seconds = remaining / throughput
    return f"; ETA {seconds / 60:.1f} min for {remaining} steps at {throughput:.1f} steps/s"
