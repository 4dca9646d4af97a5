"""The linear probe on a run's frozen D (docs/protocols.md §8), for labelled images of any family. The
discriminator comes with the draw (`Generated.D`), so the probe computes like every other metric."""

from __future__ import annotations

import torch

from bench import registry
from bench.errors import BenchError
from bench.metrics.families.base import Metric
from bench.metrics.records import count_label


@registry.metrics.register("probe")
class Probe(Metric):
    """Linear probe on the frozen D beside a random D and raw pixels (docs/protocols.md §8). Opt-in: a 5-fold
    search over C for three feature sets is too slow for every run's final (README, Speed)."""

    opt_in = True

    def applies(self, ctx):
        return ctx.spec.kind == "images" and getattr(ctx.data, "labels", None) is not None

    def n_gen(self, ctx, stage, n):
        return n or 2  # the probe reads real images: all of the reference, or n of them (bench eval --n)

    def outputs(self, ctx, stage, n):
        split = ctx.ref_split + (f"@{count_label(n)}" if n > 2 else "")
        return {"probe_acc": f"probe-acc/D/{split}", "probe_acc_random_d": f"probe-acc/random-D/{split}",
                "probe_acc_pixels": f"probe-acc/pixels/{split}"}

    def compute(self, ctx, gen, stage, n):
        from bench.metrics.probe import probe_scores

        if gen.D is None:
            raise BenchError("the probe needs the run's discriminator; run it with bench eval on a run folder")
        with torch.random.fork_rng(devices=[]):  # the random D's init must not move any RNG stream
            torch.manual_seed(ctx.eval_seed)
            _, random_D = ctx.variant.build()
        images, labels = ctx.reference
        if 2 < n < len(images):  # a fixed random subset, the same for every run of this reference
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(ctx.eval_seed))[:n]
            images, labels = images[keep], labels[keep]
        scores, params = probe_scores(gen.D, random_D.to(ctx.device), images, labels, ctx.device, ctx.eval_seed)
        return self.values(ctx, stage, n, scores, {**params, "n_ref": len(images), "extractor": "D conv blocks"})
