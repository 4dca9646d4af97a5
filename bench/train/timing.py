"""Where a run's wall time goes: contiguous laps of the host clock, each charged to one phase.

The clock is read only where the loop is on the host anyway (setup, flushes, the end), never inside
a step, so timing adds no device sync. Laps are contiguous, so the phases add up to the time since
the clock started. status.json keeps them under `seconds`; a resumed run adds its new laps to what its
earlier processes recorded (up to their last flush). In a pack a lap of one member's own work (its
evaluation, samples, checkpoint) is charged to it alone and a shared lap (start-up, a training window)
is split evenly between the members still training, so the members' seconds add up to the pack's.
"""

from __future__ import annotations

import time
from typing import Optional

# startup: imports, data, nets, cache loads; train: the training windows, up to the flush's host copy;
# curve_eval / final_eval: the evaluator; checkpoint, samples: their files; records: metrics.jsonl,
# status.json and TensorBoard writes
PHASES = ("startup", "train", "curve_eval", "final_eval", "checkpoint", "samples", "records")


class Clock:
    def __init__(self, members: int = 1, start: Optional[float] = None):
        self.last = time.perf_counter() if start is None else start
        self.seconds = [dict.fromkeys(PHASES, 0.0) for _ in range(members)]
        self.active = list(range(members))  # members a shared lap is split between

    def lap(self, phase: str, member: Optional[int] = None) -> None:
        """Charge the time since the previous lap to `phase` of one member, or of the active ones."""
        now = time.perf_counter()
        spent, self.last = now - self.last, now
        who = self.active if member is None else [member]
        for k in who:
            self.seconds[k][phase] += spent / len(who)

    def record(self, member: int, earlier: Optional[dict] = None) -> dict[str, float]:
        """A member's phases so far (plus what a resumed run's earlier processes recorded), in seconds."""
        earlier = earlier or {}
        return {p: round(self.seconds[member][p] + float(earlier.get(p, 0.0)), 3) for p in PHASES}


def phase_seconds(statuses: list[dict]) -> dict[str, float]:
    """Seconds per phase summed over runs' status.json `seconds`, in PHASES order."""
    total = dict.fromkeys(PHASES, 0.0)
    for status in statuses:
        for phase, seconds in (status.get("seconds") or {}).items():
            total[phase] = total.get(phase, 0.0) + float(seconds)
    return total


def time_split(statuses: list[dict]) -> str:
    """'time in runs: 812 s (startup 3%, train 61%, ...)', or '' when no run recorded its phases."""
    total = phase_seconds(statuses)
    wall = sum(total.values())
    if not wall:
        return ""
    parts = ", ".join(f"{phase.replace('_', ' ')} {100 * s / wall:.0f}%" for phase, s in total.items())
    return f"time in runs: {wall:.0f} s ({parts})"
