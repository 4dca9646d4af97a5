"""The Metric base class, the two protocol stages and their sample counts.

A metric is a small class registered by name in `bench.registry.metrics`. It says which data
families it serves, whether it belongs to the cheap curve protocol, and turns one shared draw of
generated samples (`context.Generated`) into Values with their protocol fields.
"""

from __future__ import annotations

import math
from typing import Optional

from bench.metrics import facts
from bench.metrics.context import EvalContext, Generated
from bench.metrics.records import Value

CURVE, FINAL = "curve", "final"
N_CURVE = 2_000  # FID@2k-style curves (docs/protocols.md §2)
N_FINAL = 10_000
N_POINTS = 2_500  # docs/protocols.md §3, curve and final alike
N_STACKED = 26_000  # docs/protocols.md §4
PAIRS = {CURVE: 1_000, FINAL: 10_000}  # MS-SSIM pairs (docs/protocols.md §5.1, 7.2)


class Metric:
    """Base class: a group of related values computed from one draw of samples."""

    name = "metric"  # set by the registry; its facts (families, values, help) are facts.METRICS[name]
    stages: tuple[str, ...] = (FINAL,)  # CURVE too when cheap enough for in-training evaluation
    opt_in = False  # computed only when asked for by name (bench eval --metrics)

    @property
    def families(self) -> tuple[str, ...]:
        return facts.METRICS[self.name].families

    def applies(self, ctx: EvalContext) -> bool:
        return ctx.family in self.families

    def n_gen(self, ctx: EvalContext, stage: str, n: Optional[int]) -> int:
        return n or (N_CURVE if stage == CURVE else N_FINAL)

    def outputs(self, ctx: EvalContext, stage: str, n: int) -> dict[str, str]:
        """name -> label of every value this metric writes; its direction is facts.VALUES[name]."""
        raise NotImplementedError

    def compute(self, ctx: EvalContext, gen: Generated, stage: str, n: int) -> list[Value]:
        raise NotImplementedError

    def values(self, ctx, stage, n, numbers: dict, params: dict, std: Optional[dict] = None) -> list[Value]:
        out = []
        for name, label in self.outputs(ctx, stage, n).items():
            s = (std or {}).get(name)
            out.append(Value(name, numbers[name], label, facts.VALUES[name].higher, params,
                             None if s is None else s[0], None if s is None else s[1]))
        return out

    def skipped(self, ctx, stage, n, reason: str) -> list[Value]:
        return [Value(name, math.nan, label, facts.VALUES[name].higher, {"n_gen": n, "skipped": reason})
                for name, label in self.outputs(ctx, stage, n).items()]


def domain_tag(ctx: EvalContext) -> str:
    """The label suffix of a value measured in the domain extractor's space: split and extractor."""
    return f"{ctx.ref_split}/{ctx.domain_source}"
