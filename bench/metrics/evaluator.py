"""In-training and final evaluation of a run, called by the loop at flushes and at the end.

The loop knows nothing about metrics: it hands G to an Evaluator at each flush and once at the
end. At scheduled flushes the cheap curve protocol runs (kind "curve"); when its primary metric
improves, G's weights go to ckpt/best.pt. At the end the full protocol runs on the final G (kind
"final") and on the best G (kind "best"), never mixed in one column. Evaluation draws from its own
generators (latents.EVAL_SEED), never the training RNG, so a run trains identically with and
without it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from bench.metrics import facts
from bench.store import checkpoint
from bench.store.runs import RunDir

AUTO_EARLY, AUTO_LATE = 5, 15  # auto schedule: log-spaced evals in the first 10%, then even ones


def eval_steps(loop) -> set[int]:
    """Flush steps at which the curve protocol runs. eval_every: -1 none, 0 auto (about 20), else
    every multiple of it; the last step is always included so the final G can be the best one."""
    if loop.eval_every < 0:
        return set()
    flushes = sorted(set(range(loop.log_every, loop.steps + 1, loop.log_every)) | {loop.steps})
    if loop.eval_every > 0:
        return {s for s in flushes if s % loop.eval_every == 0} | {loop.steps}
    targets = list(np.geomspace(0.01, 0.1, AUTO_EARLY) * loop.steps)
    targets += list(np.linspace(0.1, 1.0, AUTO_LATE + 1)[1:] * loop.steps)
    flush = np.array(flushes)
    return {int(flush[min(np.searchsorted(flush, t - 1e-9), len(flush) - 1)]) for t in targets}


class Evaluator:
    """Runs the cheap curve protocol at scheduled flushes and the full protocol at the end."""

    def __init__(self, run: RunDir, config, variant, data, device: torch.device, weights=None):
        from bench.metrics.context import EvalContext

        self.run, self.config, self.variant, self.device = run, config, variant, device
        self.steps = eval_steps(config.loop)
        self.enabled = config.loop.eval_every >= 0
        self.ctx = EvalContext(config, data, variant, device, weights)
        self.primary = facts.primary(self.ctx.family)  # the curve value that picks ckpt/best.pt
        self.best_key = self._restore_best()

    @property
    def best_file(self) -> Path:
        return self.run.path / "ckpt" / "best.pt"

    def at_flush(self, G, step: int) -> list[dict]:
        """Called after every flush with G in train mode; evaluates when the schedule says so and
        returns the curve records it appended (none otherwise)."""
        if step not in self.steps:
            return []
        from bench.metrics.suite import CURVE, run_protocol

        values = run_protocol(self.ctx, G, CURVE, n=self.config.loop.eval_n or None)
        records = self._records(values, step, "curve", "step")
        self.run.append_metrics(records)
        key = _key(values, *self.primary)
        if key is not None and (self.best_key is None or key > self.best_key):
            self.best_key = key
            name = self.primary[0]
            value = next(v.value for v in values if v.name == name)
            state = {"step": step, "metric": name, "value": float(value),
                     "G": {k: v.detach().cpu() for k, v in G.state_dict().items()}}
            checkpoint.save_file(self.best_file, state)
        return records

    def final(self, G, step: int) -> None:
        """Called once when training ends normally: full protocol on the final and the best G."""
        if not self.enabled:
            return
        evaluate_final(self.run, self.ctx, G, step, self.best_file, n=self.config.loop.eval_n or None)

    def _records(self, values, step: int, kind: str, checkpoint: str) -> list[dict]:
        from bench.metrics.records import record

        protocol = self.ctx.protocol()
        return [record(v, step=step, kind=kind, checkpoint=checkpoint, protocol=protocol) for v in values]

    def _restore_best(self):
        """Best-so-far of the primary curve metric from the records a resumed run already has."""
        name, higher, tie = self.primary
        by_step: dict[int, dict[str, float]] = {}
        for r in self.run.read_metrics():
            if r.get("kind") == "curve" and r.get("name") in (name, tie) and isinstance(r.get("value"), (int, float)):
                by_step.setdefault(r["step"], {})[r["name"]] = float(r["value"])
        keys = [_key_of(v.get(name), v.get(tie) if tie else None, higher) for v in by_step.values()]
        keys = [k for k in keys if k is not None]
        return max(keys) if keys else None


def _key(values, name: str, higher: bool, tie: Optional[str]):
    found = {v.name: v.value for v in values}
    return _key_of(found.get(name), found.get(tie) if tie else None, higher)


def _key_of(value, tie_value, higher: bool):
    """A tuple where larger is better, or None for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    sign = 1.0 if higher else -1.0
    tie = 0.0 if tie_value is None or math.isnan(tie_value) else tie_value
    return (sign * value, tie)


def load_best_generator(ctx, best_file: Path):
    """(G with the best curve weights, its step, the metric that chose it), or None without best.pt."""
    if not best_file.is_file():
        return None
    state = checkpoint.load(best_file, ctx.device, fix=checkpoint.DROP_BEST)
    with torch.random.fork_rng(devices=[]):  # building nets initialises weights from the global RNG
        G, _ = ctx.variant.build()
    checkpoint.load_into(best_file, state, fix=checkpoint.DROP_BEST, G=G)
    return G.to(ctx.device), int(state["step"]), str(state.get("metric", "unknown"))


def evaluate_final(run: RunDir, ctx, G, step: int, best_file: Optional[Path], names=None, n=None,
                   timings: Optional[dict] = None, D=None, which: str = "all") -> list[dict]:
    """Full protocol on the final G (which: final|all) and on the best G (which: best|all); appends
    and returns the records. When best.pt holds the final step's weights, its values are reused."""
    from bench.metrics.suite import FINAL, run_protocol
    from bench.metrics.records import record

    protocol = ctx.protocol()
    records: list[dict] = []
    final_values = None
    if which in ("final", "all"):
        final_values = run_protocol(ctx, G, FINAL, names, n, timings, D=D)
        records += [record(v, step=step, kind="final", checkpoint="final", protocol=protocol) for v in final_values]
    # best.pt holds G only, so D-based metrics (the probe) describe the final checkpoint alone.
    best_names = [x for x in names if x != "probe"] if names else names
    wanted = which in ("best", "all") and best_file is not None and (best_names or not names)
    best = load_best_generator(ctx, best_file) if wanted else None
    if best is not None:
        G_best, best_step, metric = best
        reuse = best_step == step and final_values is not None and best_names == names
        values = final_values if reuse else run_protocol(ctx, G_best, FINAL, best_names, n)
        records += [record(v, step=best_step, kind="best", checkpoint=f"best:{metric}", protocol=protocol)
                    for v in values]
    run.append_metrics(records)
    return records
