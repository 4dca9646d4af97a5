"""How long `bench report` takes on a synthetic grid, the old figure path beside the new one.

    python -m bench.report.benchmark                 # 1,000 runs (200 configurations x 5 seeds), 50 evals
    python -m bench.report.benchmark --runs 200 --evals 20

Builds the grid once (no training), then writes the full report twice into fresh folders, so both
start cold (no table cache, no figure cache): first with the figure path as it was (a second
layout pass for bbox_inches="tight", PNG zlib level 6, one process), then with the current one.
Prints seconds per stage, wall and CPU, for each. A benchmark, not a test: wall time on a shared
2-core machine moves with whatever else runs there, so CPU seconds are printed beside it.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the figure workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--evals", type=int, default=50)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    a = ap.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from bench.report import figures
    from bench.report.build import Options, write_report
    from bench.report.synthetic import make_grid

    root = a.dir or Path(tempfile.mkdtemp(prefix="bench-report-"))
    t0 = time.perf_counter()
    grid = make_grid(root / "results", "synth", configs=a.runs // a.seeds, seeds=a.seeds, evals=a.evals)
    print(f"grid: {a.runs // a.seeds * a.seeds} runs, {a.evals} evaluations each, built in "
          f"{time.perf_counter() - t0:.1f}s under {root}", file=sys.stderr)
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    rows = []
    for name, how in [("old figure path", figures.Drawing.legacy()), ("current", figures.Drawing())]:
        figures.DRAWING = how
        c0, w0 = _cpu(), time.perf_counter()
        stages = write_report(grid, root / f"report-{name.replace(' ', '-')}", Options())
        wall, cpu = time.perf_counter() - w0, _cpu() - c0
        rows.append((name, stages, wall, cpu))
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in stages.items())
        print(f"{name:>16}: wall {wall:5.1f}s, cpu {cpu:5.1f}s ({parts})")
    (_, old, old_wall, _), (_, new, new_wall, _) = rows
    print(f"figures {old['figures']:.1f}s -> {new['figures']:.1f}s; report {old_wall:.1f}s -> {new_wall:.1f}s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
