"""Class-conditional runs on natural images (folders, Stanford Dogs, Cartoon Set attributes...): the
per-class scores of docs/protocols.md §6 in the Inception protocol's features, with a linear judge
fitted on the real train split (the math is bench/metrics/inception_judge.py). Missing Inception
weights raise fidelity.MissingWeights, recorded as skipped like the other natural-image metrics; the
intra-class MS-SSIM is pixels only and is computed offline too."""

from __future__ import annotations

from bench import registry
from bench.metrics import conditional, diversity, fidelity, inception_judge
from bench.metrics.context import metrics_cache
from bench.metrics.families.base import N_FINAL, Metric
from bench.metrics.records import fidelity_library


class _NaturalConditional(Metric):
    """Conditional runs on labelled natural images, scored on balanced blocks of max(10,000, 100 x K)."""

    def applies(self, ctx):
        return ctx.family == "natural" and ctx.conditional and ctx.reference[1] is not None

    def n_gen(self, ctx, stage, n):
        return n or max(N_FINAL, inception_judge.MIN_PER_CLASS * ctx.spec.num_classes)


@registry.metrics.register("class_scores_inception")
class ClassScoresInception(_NaturalConditional):
    """Conditional runs on natural images: judge accuracy on requested labels (overall, worst class,
    the real held-out ceiling) and per-class KID, all on Inception pool features."""

    def outputs(self, ctx, stage, n):
        per, t = n // ctx.spec.num_classes, f"{ctx.ref_split}/inception-lr"
        return {"class_acc": f"class-acc@{per}/class/{t}",
                "class_acc_real": f"class-acc-real-heldout/{t}",
                "class_acc_worst": f"class-acc-worst@{per}/class/{t}",
                "classes_low_acc": f"classes<10x-chance@{per}/class/{t}",
                "kid_class_mean": f"KID-class-mean@{per}/class/{t}",
                "kid_class_worst10": f"KID-class-worst10@{per}/class/{t}"}

    def compute(self, ctx, gen, stage, n):
        path = fidelity.inception_weights(ctx.weights)  # MissingWeights first, before any work
        wid = fidelity.weights_id("inception-v3-compat", path)
        digest = wid.split("@")[1]
        images, labels = ctx.reference
        root = metrics_cache() / "fidelity"
        base = f"{ctx.cache_key}-n{len(images)}-{digest}"
        real = inception_judge.cached(root / f"{base}-pool2048.pt", lambda: {
            "features": fidelity.inception_features(images, path, ctx.device)})["features"]
        judge = inception_judge.LinearJudge(inception_judge.cached(
            root / f"{base}-judge-lr-v{inception_judge.FORMAT}-s{ctx.eval_seed}.pt",
            lambda: inception_judge.LinearJudge.fit(real, labels, ctx.eval_seed).state))
        fake = fidelity.inception_features(gen.images[:n], path, ctx.device)
        scores, params = inception_judge.class_scores(fake, gen.labels[:n], real, labels, judge,
                                                      ctx.spec.num_classes, ctx.spec.class_names, ctx.eval_seed)
        params.update({"extractor": wid, "extractor_layer": "2048", "extractor_input": "uint8, native size",
                       "judge": f"logreg-standardised@{digest}", "judge_heldout_acc": round(judge.heldout_accuracy, 4),
                       "judge_n_fit": int(judge.state["n_fit"]), "judge_n_heldout": int(judge.state["n_heldout"]),
                       "n_gen": n, "n_ref": len(images), "library": fidelity_library()})
        return self.values(ctx, stage, n, scores, params)


@registry.metrics.register("class_msssim")
class ClassMSSSIM(_NaturalConditional):
    """Conditional runs on natural images: intra-class MS-SSIM of generated pairs beside real pairs of the
    same class (Odena et al. 2017's per-class diversity). Pixels only, so it needs no weights offline."""

    def outputs(self, ctx, stage, n):
        p = conditional.PAIRS_PER_CLASS
        return {"msssim_class_mean": f"MS-SSIM-class@{p}pairs/class",
                "msssim_class_real": f"MS-SSIM-class-real@{p}pairs/class",
                "msssim_class_gap": f"MS-SSIM-class-gap@{p}pairs/class"}

    def compute(self, ctx, gen, stage, n):
        fake, real, used = conditional.intra_class_msssim(gen.images[:n], gen.labels[:n], *ctx.reference,
                                                          ctx.spec.num_classes, ctx.eval_seed, ctx.device)
        params = {**diversity.msssim_settings(ctx.image_size).record(), "pairs_per_class": conditional.PAIRS_PER_CLASS,
                  "classes_scored": used, "classes": ctx.spec.num_classes, "n_gen": n, "n_ref": len(ctx.reference[0]),
                  "extractor": "none (pixels)", "labels": "balanced blocks (i % K)"}
        return self.values(ctx, stage, n, {"msssim_class_mean": fake, "msssim_class_real": real,
                                           "msssim_class_gap": fake - real}, params)
