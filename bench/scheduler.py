"""Which runs of a grid still need work, and executing them through a backend.

A run is a pure function of its run folder (config.yaml in, records out), so any engine can run
it: the backends in bench/backends.py differ only in how they hand run folders to workers. A run
is claimed with a lock file before training (bench/locks.py), so two `bench run`s of one grid,
on one machine or several sharing the folder, never train the same run at once.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bench.config import RunConfig, resolve
from bench.errors import BenchError
from bench.locks import RunLock
from bench.runs import FINISHED, RunDir, write_atomic

CLAIMED = "claimed"  # outcome of a run another live process holds


@dataclass
class PlannedRun:
    run: RunDir
    config: RunConfig

    @property
    def state(self) -> str:
        return self.run.status().get("state", "queued")


def plan(results: Path, grid_name: str, configs: list[RunConfig]) -> list[PlannedRun]:
    return [PlannedRun(RunDir(results, grid_name, c.run_id), c) for c in configs]


def needs_work(planned: PlannedRun, retry_failed: bool = False) -> bool:
    state = planned.state
    return state not in FINISHED and (retry_failed or state != "failed")


def prepare(planned: PlannedRun) -> None:
    """Create the run folder with its config; an existing folder keeps its records."""
    if not planned.run.config_file.exists():
        planned.run.write_config(planned.config.flat())


def execute_run(path: str, threads: int = 0, device: Optional[str] = None, progress=None,
                retry_failed: bool = False) -> tuple[str, str, float]:
    """Claim and train the run in `path`; never raises, so one bad run never stops a grid.

    Returns (run id, outcome, seconds): outcome is the run's final state when this process trained
    it, or "claimed" when another process holds it or has already ended it.
    """
    run = RunDir.open(path)
    t0 = time.time()
    lock = RunLock(run.path)
    if not lock.acquire():
        return run.id, CLAIMED, 0.0
    try:
        state = run.status().get("state", "queued")
        if state in FINISHED or (state == "failed" and not retry_failed):
            return run.id, CLAIMED, 0.0  # another process ended it since this grid was planned
        return run.id, _train(run, threads, device, progress), time.time() - t0
    finally:
        lock.release()


def _train(run: RunDir, threads: int, device: Optional[str], progress) -> str:
    from bench import loop  # torch is imported in the worker, not by `bench status`

    if threads:
        import torch
        torch.set_num_threads(threads)
    try:
        config = resolve(run.read_config(), where=str(run.config_file))
        if device:  # where a run executes is not part of its id (config.NOT_HASHED)
            config = dataclasses.replace(config, loop=dataclasses.replace(config.loop, device=device))
        return loop.train(run, config, progress)
    except KeyboardInterrupt:
        run.set_status("queued", reason="interrupted; run the grid again to resume")
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the run, the grid goes on
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, BenchError):
            write_atomic(run.path / "error.txt", traceback.format_exc())
            message = f"{type(exc).__name__}: {message} (traceback in error.txt)"
        run.set_status("failed", reason=message, finished=time.time())
        return "failed"


def execute_stream(paths: list[str], threads: int, device: Optional[str], retry_failed: bool):
    """Several runs one after another in one worker: how a worker keeps one GPU to itself."""
    return [execute_run(p, threads, device, None, retry_failed) for p in paths]
