"""`--jobs auto` (the default): how many runs to train at once here, and with how many threads each.

Decided from a measurement, once per machine. The probe trains a small convolutional G/D pair (the
step of the shipped grids' runs: 16 px, batch 64, Adam) in every layout that fills the cores, P worker
processes of T threads with P x T = cores, all P started together and timed over the same seconds,
and keeps the layout with the most steps per second summed over its processes; a layout with more
processes must beat the one with fewer by MARGIN, since each extra process also costs its memory and
start-up. The answer is cached in <cache>/jobs-<host>-<cores>cores.json with what was measured;
delete the file to measure again, or pass --jobs N.

A run's float sums depend on its thread count (docs/protocols.md §12), so a thread count you set is
kept as you set it: with OMP_NUM_THREADS in the environment auto trains one run at a time with that
many threads, as a plain `bench run` always did, and measures nothing (--jobs N for more at once).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

MARGIN = 1.05  # more processes must be this much faster in total to be chosen


@dataclass(frozen=True)
class Layout:
    processes: int
    threads: int
    why: str
    measured: bool = True  # False where OMP_NUM_THREADS decided


def layouts(cores: int) -> list[tuple[int, int]]:
    """(processes, threads) pairs that fill the cores exactly, fewest processes first."""
    return [(p, cores // p) for p in range(1, cores + 1) if cores % p == 0]


def choose(measured: dict[tuple[int, int], float]) -> tuple[int, int]:
    """The layout to use from steps per second per layout: fewest processes unless more win by MARGIN."""
    best = min(measured)
    for layout in sorted(measured):
        if measured[layout] > measured[best] * MARGIN:
            best = layout
    return best


def decide(cache: Path, cores: Optional[int] = None, probe=None) -> Layout:
    cores = cores or os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return Layout(1, int(omp), f"OMP_NUM_THREADS={omp} is set; --jobs N trains more at once", measured=False)
    path = cache / f"jobs-{socket.gethostname()}-{cores}cores.json"
    try:
        saved = json.loads(path.read_text())
        return Layout(int(saved["processes"]), int(saved["threads"]), f"measured, cached in {path}")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    measured = {pair: (probe or measure)(*pair) for pair in layouts(cores)}
    processes, threads = choose(measured)
    from bench.store.runs import write_atomic

    write_atomic(path, json.dumps({"processes": processes, "threads": threads, "cores": cores,
                                   "steps_per_s": {f"{p}x{t}": round(v, 2) for (p, t), v in measured.items()},
                                   "measured": time.time()}, indent=1))
    return Layout(processes, threads, f"measured now, cached in {path}")


def measure(processes: int, threads: int) -> float:
    """Steps per second summed over `processes` probe workers of `threads` threads, timed together."""
    import multiprocessing as mp

    from bench.train.probe import probe  # the probe's step calls backward(): training code

    ctx = mp.get_context("spawn")
    start = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [ctx.Process(target=probe, args=(threads, start, results)) for _ in range(processes)]
    for w in workers:
        w.start()
    rates = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    return sum(rates)
