"""Executors for run folders: in this process, joblib worker processes, dask or ray.

Every backend calls the same scheduler.execute_unit on a unit of work (one run folder path, or
several that differ only in seed, trained as one pack) and yields (run id, outcome, seconds) as
runs end. dask and ray are optional extras, imported only here. A run stopped by a full disk stops the
grid: every later write would fail too, so no further run is started and running ones are cancelled.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from bench.errors import BenchError, Terminated
from bench.launch.scheduler import DISK_FULL, execute_stream, execute_unit

Unit = list[str]  # run folder paths trained together (one unless --pack)

BACKENDS = ("local", "dask", "ray")


@dataclass(frozen=True)
class Placement:
    """How many runs at once and where: `jobs` slots, optionally spread over GPUs."""

    jobs: int = 1
    gpus: tuple[int, ...] = ()  # CUDA device indices; empty = the run's own `device` key
    per_gpu: int = 1  # runs sharing one GPU
    threads_per_run: int = 0  # CPU threads of each run (--jobs auto decides it); 0: the cores over the slots

    @property
    def slots(self) -> int:
        return len(self.gpus) * self.per_gpu if self.gpus else self.jobs

    def threads(self) -> int:
        """CPU threads per run so that the slots do not oversubscribe the cores."""
        return self.threads_per_run or max(1, (os.cpu_count() or 1) // self.slots)

    def device(self, slot: int) -> Optional[str]:
        return f"cuda:{self.gpus[slot % len(self.gpus)]}" if self.gpus else None


def run_local(units: list[Unit], placement: Placement, retry_failed: bool,
              step_progress: Optional[Callable] = None) -> Iterator[tuple[str, str, float]]:
    if placement.slots <= 1:
        for unit in units:
            progress = step_progress(unit) if step_progress else None
            outcomes = execute_unit(unit, placement.threads_per_run, placement.device(0), progress, retry_failed)
            yield from outcomes
            if _disk_full(outcomes):
                return
        return
    from joblib import Parallel, delayed

    threads = placement.threads()
    if placement.gpus:
        # One stream of runs per slot, so each GPU slot is held by one worker at a time.
        streams = [units[i::placement.slots] for i in range(placement.slots)]
        calls = (delayed(execute_stream)(s, threads, placement.device(i), retry_failed)
                 for i, s in enumerate(streams) if s)
    else:
        calls = (delayed(execute_unit)(u, threads, None, None, retry_failed) for u in units)
    with sigterm_as_interrupt():
        results = Parallel(n_jobs=placement.slots, return_as="generator_unordered")(calls)
        try:
            for outcomes in results:
                yield from outcomes
                if _disk_full(outcomes):
                    return
        finally:  # also on Ctrl-C and SIGTERM: joblib kills the workers; their runs resume later
            with warnings.catch_warnings():  # joblib warns that it cancelled the runs still going
                warnings.simplefilter("ignore", UserWarning)
                results.close()


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises Terminated in the launcher while its workers train. Its default action ended the
    launcher at once and left the workers orphaned, still training; as an interrupt, the `finally`
    above stops them. Only here: a process forked while the handler is set (a report's figure pool)
    would inherit it, and the workers are exec'd, so they do not."""
    if threading.current_thread() is not threading.main_thread():  # only it may set handlers
        yield
        return

    def terminated(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run_dask(units: list[Unit], placement: Placement, retry_failed: bool,
             address: Optional[str] = None) -> Iterator[tuple[str, str, float]]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise BenchError("the dask backend needs dask.distributed; pip install -e '.[dask]'") from None
    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=placement.slots, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    try:
        client = Client(address or cluster)
    except OSError as exc:
        raise BenchError(f"cannot reach the dask scheduler at {address} ({exc}); start it or drop --address") from None
    futures = []
    try:
        futures = [client.submit(execute_unit, u, placement.threads(), placement.device(i), None, retry_failed,
                                 key=f"bench-run-{os.path.basename(u[0])}", pure=False)
                   for i, u in enumerate(units)]
        for future in as_completed(futures):
            outcomes = future.result()
            yield from outcomes
            if _disk_full(outcomes):
                return
    finally:
        client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()


def run_ray(units: list[Unit], placement: Placement, retry_failed: bool,
            address: Optional[str] = None) -> Iterator[tuple[str, str, float]]:
    try:
        import ray
    except ImportError:
        raise BenchError("the ray backend needs ray; pip install -e '.[ray]'") from None
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    num_gpus = (1.0 / placement.per_gpu) if placement.gpus else 0
    remote = ray.remote(num_cpus=placement.threads(), num_gpus=num_gpus)(execute_unit)
    # Ray assigns the GPU (CUDA_VISIBLE_DEVICES per task), so the run uses its first visible one.
    device = "cuda" if placement.gpus else None
    pending = [remote.remote(u, placement.threads(), device, None, retry_failed) for u in units]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            outcomes = ray.get(done[0])
            yield from outcomes
            if _disk_full(outcomes):
                return
    finally:
        for task in pending:
            ray.cancel(task, force=True)


def _disk_full(outcomes: list[tuple[str, str, float]]) -> bool:
    return any(outcome == DISK_FULL for _, outcome, _ in outcomes)


def execute(units: list[Unit], backend: str, placement: Placement, retry_failed: bool = False,
            address: Optional[str] = None, step_progress: Optional[Callable] = None):
    if backend == "local":
        if address:
            raise BenchError("--address is for the dask and ray backends; add --backend dask or ray")
        return run_local(units, placement, retry_failed, step_progress)
    if backend == "dask":
        return run_dask(units, placement, retry_failed, address)
    if backend == "ray":
        return run_ray(units, placement, retry_failed, address)
    raise BenchError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
