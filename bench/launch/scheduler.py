"""Which runs of a grid still need work, and executing them through a backend.

A run is a pure function of its run folder (config.yaml in, records out), so any engine can run
it: the backends in bench/launch/backends.py differ only in how they hand run folders to workers. A run
is claimed with a lock file before training (bench/store/locks.py), so two `bench run`s of one grid,
on one machine or several sharing the folder, never train the same run at once.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bench.config.schema import RunConfig, resolve
from bench.errors import BenchError
from bench.store.locks import RunLock, is_stale, read_lock
from bench.store.runs import DAMAGED, FINISHED, RunDir, write_atomic

CLAIMED = "claimed"  # outcome of a run another live process holds
DISK_FULL = "disk full"  # outcome of a run stopped by a full disk: queued again, and the grid stops
DISK_FULL_FIX = "free space, then run the grid again to resume"


@dataclass
class PlannedRun:
    run: RunDir
    config: RunConfig

    @property
    def state(self) -> str:
        """The run's state; `damaged` when a file of an existing run folder cannot be read."""
        if not self.run.config_file.exists():  # not created yet
            return "queued"
        return self.run.inspect(metrics=True).state


def plan(results: Path, grid_name: str, configs: list[RunConfig]) -> list[PlannedRun]:
    return [PlannedRun(RunDir(results, grid_name, c.run_id), c) for c in configs]


def needs_work(planned: PlannedRun, retry_failed: bool = False) -> bool:
    state = planned.state
    return state not in (*FINISHED, DAMAGED) and (retry_failed or state != "failed")


def prepare(planned: PlannedRun) -> None:
    """Create the run folder with its config; an existing folder keeps its records.

    The same id can come with other values of keys that are not hashed (the same images in a new
    data.root, another device): config.yaml is rewritten to them, so the run reads its data where
    it now is."""
    flat = planned.config.flat()
    if not planned.run.config_file.exists() or planned.run.read_config() != flat:
        planned.run.write_config(flat)


def execute_run(path: str, threads: int = 0, device: Optional[str] = None, progress=None,
                retry_failed: bool = False) -> tuple[str, str, float]:
    """Claim and train the run in `path`; never raises, so one bad run never stops a grid.

    Returns (run id, outcome, seconds): outcome is the run's final state when this process trained
    it, or "claimed" when another process holds it or has already ended it.
    """
    return execute_unit([path], threads, device, progress, retry_failed)[0]


def execute_unit(paths: list[str], threads: int = 0, device: Optional[str] = None, progress=None,
                 retry_failed: bool = False) -> list[tuple[str, str, float]]:
    """Claim and train one run, or runs that differ only in seed as one pack (bench/train/packed.py).

    Each run is claimed on its own; the ones this process gets are trained together. Never raises.
    """
    runs = [RunDir.open(p) for p in paths]
    t0 = time.time()
    out, mine, locks = {}, [], []
    try:
        for run in runs:
            lock = RunLock(run.path)
            if not lock.acquire():
                out[run.id] = CLAIMED
                continue
            locks.append(lock)
            state = run.inspect().state
            if state in (*FINISHED, DAMAGED) or (state == "failed" and not retry_failed):
                out[run.id] = CLAIMED  # another process ended it since this grid was planned
            else:
                mine.append(run)
        if mine:
            out.update(zip((r.id for r in mine), _train(mine, threads, device, progress)))
    finally:
        for lock in locks:
            lock.release()
    seconds = time.time() - t0
    return [(r.id, out[r.id], 0.0 if out[r.id] == CLAIMED else seconds) for r in runs]


def _train(runs: list[RunDir], threads: int, device: Optional[str], progress) -> list[str]:
    from bench.train.timing import Clock

    clock = Clock(len(runs))  # before torch is imported: the import is the runs' start-up too
    from bench.train import loop, packed  # torch is imported in the worker, not by `bench status`

    if threads:
        import torch
        torch.set_num_threads(threads)
    try:
        configs = [resolve(run.read_config(), where=str(run.config_file)) for run in runs]
        for run, config in zip(runs, configs):
            check_data_identity(run, config)
        if device:  # where a run executes is not part of its id (identity.NOT_HASHED)
            configs = [dataclasses.replace(c, loop=dataclasses.replace(c.loop, device=device)) for c in configs]
        if len(runs) == 1:
            return [loop.train(runs[0], configs[0], progress, clock=clock)]
        try:
            return loop.train_runs(runs, configs, progress, clock=clock)
        except packed.PackMismatch:  # members resume from different steps: each goes on alone
            return [loop.train(run, config) for run, config in zip(runs, configs)]
    except KeyboardInterrupt:
        for run in runs:
            if run.inspect().state not in FINISHED:
                run.set_status("queued", reason="interrupted; run the grid again to resume")
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the run, the grid goes on
        full = disk_full(exc)
        if full:
            return _queue_for_space(runs, full)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        states = []
        for run in runs:
            state = run.inspect().state
            if state in FINISHED:  # a pack member that diverged before the failure
                states.append(state)
                continue
            if not isinstance(exc, BenchError):
                write_atomic(run.path / "error.txt", traceback.format_exc())
            reason = message if isinstance(exc, BenchError) else \
                f"{type(exc).__name__}: {message} (traceback in error.txt)"
            run.set_status("failed", reason=reason, finished=time.time())
            states.append("failed")
        return states


_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def disk_full(exc: BaseException) -> Optional[str]:
    """'no space left on device writing FILE' when exc is or wraps a full disk or quota, else None.

    torch.save reports a failed write as a RuntimeError that keeps the OSError in its chain only
    when it writes to a file object (as checkpoint.save does), and a failed write() names no file:
    the file is read from the innermost atomic writer of bench/store/runs.py on the traceback.
    """
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    what = next((text for e in chain for code, text in _FULL.items()
                 if getattr(e, "errno", None) == code or os.strerror(code) in str(e)), None)
    if what is None:
        return None
    for e in chain:
        for frame, _ in reversed(list(traceback.walk_tb(e.__traceback__))):
            if frame.f_globals.get("__name__") == "bench.store.runs" and frame.f_code.co_name in ("write_atomic", "save_atomic"):
                return f"{what} writing {_shown(frame.f_locals['path'])}"
            if frame.f_globals.get("__name__") == "bench.store.runs" and frame.f_code.co_name == "append_metrics":
                return f"{what} writing {_shown(frame.f_locals['self'].metrics_file)}"
        if getattr(e, "filename", None):
            return f"{what} writing {_shown(e.filename)}"
    return what


def _shown(path) -> str:
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _queue_for_space(runs: list[RunDir], full: str) -> list[str]:
    """Queue the runs again, saying why, so the next `bench run` resumes them from their last
    checkpoints: the failed write removed its temporary file and every file it would have replaced
    is intact. Where not even status.json can be written, the run keeps its last state (running),
    which resumes too."""
    states = []
    for run in runs:
        state = run.inspect().state
        if state in FINISHED:  # a pack member that diverged before the disk filled up
            states.append(state)
            continue
        try:
            run.set_status("queued", reason=f"{full}; {DISK_FULL_FIX}")
        except Exception as again:  # noqa: BLE001
            if not disk_full(again):
                raise
        states.append(DISK_FULL)
    return states


def unfinished_claims(claimed: list[PlannedRun]) -> tuple[list[PlannedRun], list[PlannedRun]]:
    """Runs another claim kept from this process that are still not finished: (held by a live
    holder, held by one that stopped or cannot be told). A stale claim is what a rerun takes over;
    an unreadable one becomes stale after STALE_S."""
    live, dead = [], []
    for p in claimed:
        if p.state in (*FINISHED, DAMAGED, "failed"):
            continue
        lock = read_lock(p.run.path / "lock.json")
        (dead if lock is None or lock.get("unreadable") or is_stale(lock) else live).append(p)
    return live, dead


def check_data_identity(run: RunDir, config: RunConfig) -> None:
    """Refuse to train on files that changed since the run was planned: its id names other data."""
    from bench import registry

    if not config.data_identity:
        return
    now = registry.datasets.get(config.dataset).identity(config.data, config.loop.image_size)
    if now != config.data_identity:
        raise BenchError(f"the {config.dataset} files under {config.data.root or 'the default data folder'} "
                         f"changed since run {run.id} was planned (fingerprint {now[:12]}, the run's "
                         f"{config.data_identity[:12]}); run the grid again: changed data gets new runs")


def execute_stream(units: list[list[str]], threads: int, device: Optional[str], retry_failed: bool):
    """Several units one after another in one worker: how a worker keeps one GPU to itself. A full
    disk ends the stream, as it ends the grid (bench/launch/backends.py)."""
    out: list[tuple[str, str, float]] = []
    for unit in units:
        out += execute_unit(unit, threads, device, None, retry_failed)
        if any(outcome == DISK_FULL for _, outcome, _ in out):
            break
    return out


def pack_units(planned: list[PlannedRun], pack: int, cost: Optional[dict[str, float]] = None) -> list[list[str]]:
    """Run folders in units of work: up to `pack` runs that differ only in seed share a unit.

    Units come in rounds, as the grid orders its runs (docs/grids.md): the first seed (or first
    pack of seeds) of every configuration, then the next, so a half-finished grid already has every
    configuration once. Given `cost` (run folder -> expected_cost, for several runs at once), each
    round starts its longest units first, so a long run does not start last and train alone at the end."""
    groups: dict[str, list[str]] = {}
    for p in planned:
        groups.setdefault(configuration_key(p), []).append(str(p.run.path))
    rounds = max((len(paths) for paths in groups.values()), default=0)
    out = []
    for i in range(0, rounds, pack):
        units = [paths[i:i + pack] for paths in groups.values() if paths[i:i + pack]]
        if cost:
            units.sort(key=lambda unit: -sum(cost[path] for path in unit))  # stable: grid order among equals
        out += units
    return out


def configuration_key(p: PlannedRun) -> str:
    return json.dumps({k: v for k, v in p.config.flat().items() if k not in ("seed", "device")},
                      sort_keys=True, default=str)


def expected_cost(planned: list[PlannedRun]) -> dict[str, float]:
    """Each run's expected cost, by run folder: the mean recorded seconds (status.json) of its
    configuration's finished runs when every configuration has one; otherwise, for all alike, the
    pixels its updates touch (steps x (d_steps + g_steps) x batch x image size squared)."""
    groups: dict[str, list[PlannedRun]] = {}
    for p in planned:
        groups.setdefault(configuration_key(p), []).append(p)
    measured, proxy = {}, {}
    for key, members in groups.items():
        views = [m.run.inspect() for m in members if m.run.config_file.exists()]
        done = [sum(v.status["seconds"].values()) for v in views if v.state == "done" and v.status.get("seconds")]
        measured[key] = sum(done) / len(done) if done else None
        c = members[0].config.flat()
        proxy[key] = (c.get("steps", 1) * (c.get("d_steps", 1) + c.get("g_steps", 1)) * c.get("batch_size", 1)
                      * c.get("image_size", 1) ** 2)
    use = measured if all(v is not None for v in measured.values()) else proxy
    return {str(m.run.path): use[key] for key, members in groups.items() for m in members}
