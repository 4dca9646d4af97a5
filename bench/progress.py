"""Progress over a grid and over steps: bars on a terminal, sparse plain lines otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import click


class GridProgress:
    def __init__(self, planned, slots: int, grid=None):
        self.planned = {p.run.id: p for p in planned}
        from bench.status import varying_config_keys

        # The keys that vary over the whole grid (`grid`, default the runs to train) name each run.
        self.keys = varying_config_keys([p.config.flat() for p in (grid or planned)])
        self.total, self.done, self.slots = len(planned), 0, max(slots, 1)
        self.seconds: list[float] = []  # wall time of each run this process trained, for the ETA
        self.tty = sys.stderr.isatty()
        self.bar = None

    def __enter__(self):
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="runs", unit="run", position=0, file=sys.stderr)
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def describe(self, rid: str) -> str:
        flat = self.planned[rid].config.flat()
        return " ".join([rid, flat["variant"], flat["dataset"]] +
                        [f"{k}={flat.get(k)}" for k in self.keys if k not in ("variant", "dataset")])

    def run_done(self, rid: str, outcome: str, seconds: float) -> None:
        self.done += 1
        note = " by another process" if outcome == "claimed" else ""
        timing = self.timing(rid, outcome, seconds)
        line = f"[{self.done}/{self.total}] {self.describe(rid)}: {outcome}{note} ({seconds:.1f}s{timing})"
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
            self.bar.update(1)
        else:
            click.echo(line, err=True)

    def timing(self, rid: str, outcome: str, seconds: float) -> str:
        """', N steps/s; ETA M min': the run's own rate over the steps it trained now (a resumed run
        counts from where it resumed), and the grid's rest at the mean time of the runs trained so far."""
        if outcome == "claimed":
            return ""
        status = self.planned[rid].run.inspect().status or {}
        steps = int(status.get("step", 0) or 0) - int(status.get("start_step", 0) or 0)
        rate = f", {steps / seconds:.1f} steps/s" if seconds > 0 and steps > 0 else ""
        self.seconds.append(seconds)
        left = self.total - self.done
        if not left:
            return rate
        eta = sum(self.seconds) / len(self.seconds) * left / min(self.slots, left)
        return rate + (f"; ETA {eta / 60:.1f} min" if eta >= 60 else f"; ETA {eta:.0f}s")

    def steps_for(self, unit: list[str]):
        """A per-unit step callback: a second bar on a terminal, nothing otherwise (runs are lines)."""
        if not self.tty:
            return None
        from tqdm import tqdm

        planned = self.planned[Path(unit[0]).name]
        desc = planned.run.id + (f" +{len(unit) - 1} packed" if len(unit) > 1 else "")
        bar = tqdm(total=planned.config.loop.steps, desc=desc, unit="step", position=1,
                   leave=False, file=sys.stderr)

        def update(done: int, total: int) -> None:
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()

        return update
