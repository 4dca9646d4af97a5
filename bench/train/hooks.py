"""What a run writes at each flush and at its end besides its loss records: one hook per output.

The loop hands every hook of a run the same `Flush` (the step, the run's nets, the records written so
far) in order, and charges each hook's time to the hook's phase (bench/train/timing.py). A hook keeps
its own state, so a new per-flush output is a new hook in `for_run`, not an edit of the loop.
Order matters only where a hook reads what an earlier one left: TensorBoard shows the curve records
and the timeline strip, so it runs after both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from torch import nn


@dataclass
class Flush:
    """One run's flush (or its end), as its hooks see it."""

    step: int
    G: nn.Module
    D: nn.Module
    records: list[dict] = field(default_factory=list)  # the window's records, then the hooks' own
    strip: Optional[Path] = None  # the timeline picture written at this step, if one was


class Hook:
    phase = "records"  # the timing phase of at_flush
    end_phase = "records"  # and of at_end

    def at_flush(self, f: Flush) -> None:
        pass

    def at_end(self, f: Flush) -> None:
        pass

    def close(self) -> None:
        pass


class Samples(Hook):
    """The sample grid every `sample_every` steps and at the end; the timeline strip at curve steps."""

    phase = end_phase = "samples"

    def __init__(self, writer, loop, curve_steps: set[int]):
        self.writer, self.loop, self.curve_steps = writer, loop, curve_steps

    def at_flush(self, f: Flush) -> None:
        every, done = self.loop.sample_every, f.step
        if every and done % every == 0 and done != self.loop.steps:
            self.writer.write(f.G, done)
        if done in self.curve_steps:
            f.strip = self.writer.timeline(f.G, done)  # fixed latents

    def at_end(self, f: Flush) -> None:
        self.writer.write(f.G, f.step)


class Evaluation(Hook):
    """The curve protocol at its steps; the full protocol at the end (bench/metrics/evaluator.py)."""

    phase, end_phase = "curve_eval", "final_eval"

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def at_flush(self, f: Flush) -> None:
        f.records += self.evaluator.at_flush(f.G, f.step) or []

    def at_end(self, f: Flush) -> None:
        self.evaluator.final(f.G, f.step)


class Events(Hook):
    """TensorBoard: a view of the records just written and of the strip, never a host copy of its own."""

    def __init__(self, events):
        self.events = events

    def at_flush(self, f: Flush) -> None:
        self.events.write(f.records, f.strip, f.step)

    def close(self) -> None:
        self.events.close()


class Checkpoint(Hook):
    """ckpt/latest.pt every `ckpt_every` steps and at the last one, with the optimizers and RNG states."""

    phase = end_phase = "checkpoint"

    def __init__(self, save, loop, path: Path):
        self.save, self.loop, self.path = save, loop, path  # save(path, step, G, D): the loop's, for its group

    def at_flush(self, f: Flush) -> None:
        if f.step % self.loop.ckpt_every == 0 or f.step == self.loop.steps:
            self.save(self.path, f.step, f.G, f.D)
