"""2-D Gaussian mixtures: mode scores against the known centres, no feature extractor (docs/protocols.md §3)."""

from __future__ import annotations

from bench import registry
from bench.metrics import modes
from bench.metrics.families.base import CURVE, FINAL, N_POINTS, Metric
from bench.metrics.records import count_label


@registry.metrics.register("mode_scores")
class ModeScores(Metric):
    """Modes covered, high-quality fraction, KL and JSD to uniform over modes (docs/protocols.md §3)."""

    stages = (CURVE, FINAL)

    def n_gen(self, ctx, stage, n):
        return n or N_POINTS

    def outputs(self, ctx, stage, n):
        c = count_label(n)
        return {"modes_covered": f"modes@{c}", "hq_fraction": f"HQ@{c}",
                "kl_modes": f"KL-modes@{c}", "jsd_modes": f"JSD-modes@{c}"}

    def compute(self, ctx, gen, stage, n):
        scores = modes.mixture_scores(gen.points[:n], ctx.data.centres, ctx.data.std)
        return self.values(ctx, stage, n, scores, {"n_gen": n, "hq_sigmas": modes.HQ_SIGMAS,
                                                   "extractor": "none (sigma-normalised distance)"})
