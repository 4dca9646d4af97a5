"""Class-conditional runs on built-in labelled images: the per-class scores of docs/protocols.md §6, in the
domain extractor's space (the math is bench/metrics/conditional.py)."""

from __future__ import annotations

from bench import registry
from bench.metrics import conditional
from bench.metrics.families.base import Metric, domain_tag


@registry.metrics.register("class_scores")
class ClassScores(Metric):
    """Conditional runs: judge accuracy on requested labels, per-class KID, intra-class diversity."""

    def applies(self, ctx):
        return ctx.family == "domain" and ctx.conditional and not ctx.stacked

    def n_gen(self, ctx, stage, n):
        return n or conditional.PER_CLASS * ctx.spec.num_classes

    def outputs(self, ctx, stage, n):
        per = n // ctx.spec.num_classes
        t = domain_tag(ctx)
        return {"class_acc": f"class-acc@{per}/class/{t}",
                "class_acc_real": f"class-acc-real-heldout/{t}",
                "classes_low_acc": f"classes<10x-chance@{per}/class/{t}",
                "label_entropy": f"label-entropy@{per}/class/{t}",
                "kid_class_mean": f"KID-class-mean@{per}/class/{t}",
                "kid_class_std": f"KID-class-std@{per}/class/{t}",
                "kid_class_worst10": f"KID-class-worst10@{per}/class/{t}",
                "msssim_class_mean": f"MS-SSIM-class@{conditional.PAIRS_PER_CLASS}pairs",
                "coverage_class_mean": f"coverage-class@{per}/class/{t}"}

    def compute(self, ctx, gen, stage, n):
        scores, params = conditional.class_scores(ctx, gen, n)
        return self.values(ctx, stage, n, scores, {**ctx.extractor.record(), **params})
