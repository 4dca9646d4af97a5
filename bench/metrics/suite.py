"""Running a protocol: which registered metrics a run gets at a stage, and one shared draw for all.

The metrics are the registry's (bench/metrics/families/, one module per data family, loaded on first
lookup); the callers (the Evaluator, bench eval, bench speed) need only `selected`, `run_protocol` and the
stage names.
"""

from __future__ import annotations

import sys
import time
from typing import Optional

from bench import registry
from bench.errors import BenchError
from bench.metrics.context import EvalContext, Generated
from bench.metrics.families.base import CURVE, FINAL, Metric
from bench.metrics.records import Value

__all__ = ["CURVE", "FINAL", "Metric", "applicable", "run_protocol", "selected"]


def selected(ctx: EvalContext, stage: str, names: Optional[list[str]] = None) -> list[Metric]:
    """The metrics of `stage` that apply to this run, or exactly `names` (each must apply)."""
    if names:
        chosen, missing = resolve_names(ctx, names)
        if missing:
            raise BenchError(f"metric {missing[0]!r} does not apply to dataset {ctx.dataset!r} "
                             f"({ctx.family}); applicable: {', '.join(applicable(ctx))}")
        return [registry.metrics.get(name)() for name in chosen]
    return [m for m in (registry.metrics.get(k)() for k in registry.metrics.names())
            if stage in m.stages and not m.opt_in and m.applies(ctx)]


def resolve_names(ctx: EvalContext, names: list[str]) -> tuple[list[str], list[str]]:
    """(registered names to run, asked-for names that fit no metric of this run). An alias stands
    for its first target that applies (`fid` is `fd` on digits, `inception` on a folder); two names
    for one metric run it once. Unknown names raise, listing the valid ones."""
    chosen, missing = [], []
    for name in names:
        fits = [c for c in registry.metrics.candidates(name) if registry.metrics.get(c)().applies(ctx)]
        if not fits:
            missing.append(name)
        elif fits[0] not in chosen:
            chosen.append(fits[0])
    return chosen, missing


def applicable(ctx: EvalContext) -> list[str]:
    return [k for k in registry.metrics.names() if registry.metrics.get(k)().applies(ctx)]


def run_protocol(ctx: EvalContext, G, stage: str, names: Optional[list[str]] = None, n: Optional[int] = None,
                 timings: Optional[dict] = None, D=None) -> list[Value]:
    """Every selected metric on one shared draw of samples from G (D rides along for the probe). In
    the default selection a metric that cannot run (missing weights, a judge below its accuracy
    floor) writes NaN values saying why at the final stage, so a training run never fails on it;
    one asked for by name raises instead."""
    metrics = selected(ctx, stage, names)
    if not metrics:
        return []
    sized = [(m, m.n_gen(ctx, stage, n)) for m in metrics]
    t0 = time.perf_counter()
    gen = Generated(ctx, G, max(k for _, k in sized), D=D)
    if timings is not None:
        timings["generate"] = time.perf_counter() - t0
    values: list[Value] = []
    for metric, k in sized:
        t0 = time.perf_counter()
        try:
            values += metric.compute(ctx, gen, stage, k)
        except BenchError as exc:
            if names:
                raise  # asked for by name (bench eval --metrics): the one-line reason is the answer
            if stage == CURVE:
                continue  # the curve stays quiet; the final evaluation records the reason once
            print(f"warning: {metric.name} skipped: {exc}", file=sys.stderr)
            values += metric.skipped(ctx, stage, k, str(exc))
        if timings is not None:
            timings[metric.name] = time.perf_counter() - t0
    return values
