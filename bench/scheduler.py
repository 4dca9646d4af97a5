"""Which runs of a grid still need work, and executing them in this process or parallel ones.

A run is a pure function of its run folder (config.yaml in, records out), so any executor can
run it: here, joblib worker processes; later, other engines.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from bench.config import RunConfig, resolve
from bench.errors import BenchError
from bench.runs import FINISHED, RunDir, write_atomic


@dataclass
class PlannedRun:
    run: RunDir
    config: RunConfig

    @property
    def state(self) -> str:
        return self.run.status().get("state", "queued")


def plan(results: Path, grid_name: str, configs: list[RunConfig]) -> list[PlannedRun]:
    return [PlannedRun(RunDir(results, grid_name, c.run_id), c) for c in configs]


def prepare(planned: PlannedRun) -> None:
    """Create the run folder with its config; an existing folder keeps its records."""
    if not planned.run.config_file.exists():
        planned.run.write_config(planned.config.flat())


def execute_run(path: str, threads: int = 0, progress=None) -> tuple[str, str, float]:
    """Train the run in `path` to completion; never raises, so one bad run never stops a grid.

    Returns (run id, final state, seconds).
    """
    from bench import loop  # torch is imported in the worker, not by `bench list`

    if threads:
        import torch
        torch.set_num_threads(threads)
    run = RunDir.open(path)
    t0 = time.time()
    try:
        config = resolve(run.read_config(), where=str(run.config_file))
        state = loop.train(run, config, progress)
    except KeyboardInterrupt:
        run.set_status("queued", reason="interrupted; run the grid again to resume")
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the run, the grid goes on
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, BenchError):
            write_atomic(run.path / "error.txt", traceback.format_exc())
            message = f"{type(exc).__name__}: {message} (traceback in error.txt)"
        run.set_status("failed", reason=message, finished=time.time())
        state = "failed"
    return run.id, state, time.time() - t0


def run_all(planned: list[PlannedRun], jobs: int = 1,
            on_done: Optional[Callable[[str, str, float], None]] = None,
            step_progress: Optional[Callable] = None) -> dict[str, str]:
    """Execute every planned run that is not finished; returns run id -> final state."""
    todo = [p for p in planned if p.state not in FINISHED]
    for p in todo:
        prepare(p)
    results: dict[str, str] = {}
    if jobs <= 1:
        for p in todo:
            rid, state, secs = execute_run(str(p.run.path), 0, step_progress(p) if step_progress else None)
            results[rid] = state
            if on_done:
                on_done(rid, state, secs)
        return results
    from joblib import Parallel, delayed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    calls = (delayed(execute_run)(str(p.run.path), threads) for p in todo)
    for rid, state, secs in Parallel(n_jobs=jobs, return_as="generator_unordered")(calls):
        results[rid] = state
        if on_done:
            on_done(rid, state, secs)
    return results


def is_terminal() -> bool:
    return sys.stderr.isatty()
