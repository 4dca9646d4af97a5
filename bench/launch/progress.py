"""Progress over a grid and over steps: bars on a terminal, sparse plain lines otherwise."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Optional

import click


class GridProgress:
    def __init__(self, planned, slots: int, grid=None, grid_text: str = ""):
        self.planned = {p.run.id: p for p in planned}
        from bench.launch.status import describer

        # What varies over the whole grid (`grid`, default the runs to train) names each run, in the
        # grid file's words (named bundles by their names).
        self.describer = describer([p.config.flat() for p in (grid or planned)], grid_text, bare=True)
        self.total, self.done, self.slots = len(planned), 0, max(slots, 1)
        self.trained = [0, 0.0]  # steps this process trained and their wall seconds, for the ETA
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
        return f"{rid} {self.describer(self.planned[rid].config.flat())}"

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
        counts from where it resumed), and the grid's rest: its steps still to train at the wall time
        per step of the runs trained so far, evaluation pauses included (status.json's started and
        updated span every flush's evaluation and the final one)."""
        if outcome == "claimed":
            return ""
        status = self.planned[rid].run.inspect().status or {}
        steps = int(status.get("step", 0) or 0) - int(status.get("start_step", 0) or 0)
        rate = f", {steps / seconds:.1f} steps/s" if seconds > 0 and steps > 0 else ""
        wall = wall_seconds(status)
        if steps > 0 and wall:
            self.trained[0] += steps
            self.trained[1] += wall
        left = self.total - self.done
        if not left or not self.trained[0]:
            return rate
        eta = self.trained[1] / self.trained[0] * self.steps_left() / min(self.slots, left)
        return rate + (f"; ETA {eta / 60:.1f} min" if eta >= 60 else f"; ETA {eta:.0f}s")

    def steps_left(self) -> int:
        """Steps the grid's unfinished runs still have to train, each from where its folder says it is."""
        left = 0
        for p in self.planned.values():
            status = p.run.inspect().status or {}
            if status.get("state") not in ("done", "diverged", "failed"):
                left += max(p.config.loop.steps - int(status.get("step", 0) or 0), 0)
        return left

    def steps_for(self, unit: list[str]):
        """A per-unit step callback: a second bar on a terminal, nothing otherwise (runs are lines)."""
        if not self.tty:
            return None
        from tqdm import tqdm

        planned = self.planned[Path(unit[0]).name]
        desc = planned.run.id + (f" +{len(unit) - 1} packed" if len(unit) > 1 else "")
        status = planned.run.inspect().status or {}
        resumed = int(status.get("step", 0) or 0) if planned.run.checkpoint_file.exists() else 0
        bar = tqdm(total=planned.config.loop.steps, initial=resumed, desc=desc, unit="step", position=1,
                   leave=False, file=sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total}{postfix}")
        return StepBar(bar, desc, resumed)


def wall_seconds(status: dict) -> Optional[float]:
    """Wall seconds between the run's (re)start and its last write: every step trained since, every
    evaluation at its flushes and, for an ended run, its final evaluation."""
    started, end = status.get("started"), status.get("finished") or status.get("updated")
    return end - started if isinstance(started, (int, float)) and isinstance(end, (int, float)) and end > started \
        else None


class StepBar:
    """The loop's progress callback for one unit: the bar shows the run's step from the start (a resumed
    run's checkpoint step, never 0), and its rate counts only the steps trained in this process, over the
    wall time since training started here (evaluation pauses included), so a resume does not inflate it.

    The loop calls it once where training starts and then at each flush: plain ints it already holds on
    the host, so it adds no sync; between flushes the bar cannot move, its description says what it is at.
    """

    def __init__(self, bar, desc: str, resumed: int, clock: Callable[[], float] = time.monotonic):
        self.bar, self.desc, self.clock = bar, desc, clock
        self.start, self.t0, self.done = resumed, clock(), resumed
        self.started = False
        self.bar.set_description_str(f"{desc} {'resuming at step ' + str(resumed) if resumed else 'setting up'}")

    def rate(self) -> Optional[float]:
        seconds = self.clock() - self.t0
        done = self.done - self.start
        return done / seconds if self.started and seconds > 0 and done > 0 else None

    def __call__(self, done: int, total: int) -> None:
        if not self.started:  # the loop's first call: where (the checkpoint's step) and when training starts
            self.started, self.start, self.t0 = True, done, self.clock()
            self.bar.initial = done
            self.bar.set_description_str(f"{self.desc} training from step {done}")
        self.done = self.bar.n = done
        rate = self.rate()
        if rate:
            eta = (total - done) / rate
            self.bar.set_postfix_str(f"{rate:.1f} steps/s, ETA {eta / 60:.1f} min" if eta >= 60
                                     else f"{rate:.1f} steps/s, ETA {eta:.0f}s", refresh=False)
        self.bar.refresh()
        if done >= total:
            self.bar.close()
