"""Pixel-space diversity of any image family: MS-SSIM of random pairs and NDB over k-means bins,
each beside the same number on real images, so a gap to the data reads directly."""

from __future__ import annotations

import torch

from bench import registry
from bench.metrics import diversity
from bench.metrics.families.base import CURVE, FINAL, N_CURVE, N_FINAL, PAIRS, Metric
from bench.metrics.records import count_label


@registry.metrics.register("msssim")
class MSSSIM(Metric):
    """Mean MS-SSIM of random distinct generated pairs beside real pairs; gap = gen - real."""

    stages = (CURVE, FINAL)

    def n_gen(self, ctx, stage, n):
        return n or (N_CURVE if stage == CURVE else N_FINAL)

    def outputs(self, ctx, stage, n):
        p = count_label(min(PAIRS[stage], n * 5))
        return {"msssim_gen": f"MS-SSIM-gen@{p}pairs", "msssim_real": f"MS-SSIM-real@{p}pairs",
                "msssim_gap": f"MS-SSIM-gap@{p}pairs"}

    def compute(self, ctx, gen, stage, n):
        pairs = min(PAIRS[stage], n * 5)
        settings = diversity.msssim_settings(ctx.image_size)
        fake = diversity.mean_msssim(gen.images[:n], pairs, torch.Generator().manual_seed(ctx.eval_seed),
                                     device=ctx.device)
        real = ctx.real_msssim(pairs)
        params = {**settings.record(), "pairs": pairs, "n_gen": n, "n_ref": len(ctx.reference[0]),
                  "extractor": "none (pixels)"}
        return self.values(ctx, stage, n, {"msssim_gen": fake, "msssim_real": real, "msssim_gap": fake - real},
                           params)


@registry.metrics.register("ndb")
class NDB(Metric):
    """Number of statistically different bins over K = 100 k-means bins, with a real-data control."""

    def outputs(self, ctx, stage, n):
        c, k = count_label(n), len(ctx.ndb_bins.centres)
        return {"ndb_over_k": f"NDB/K@{c}/K{k}", "ndb_jsd": f"NDB-JSD@{c}/K{k}",
                "ndb_over_k_real": f"NDB/K-real@{c}/K{k}"}

    def compute(self, ctx, gen, stage, n):
        bins = ctx.ndb_bins
        scores = bins.score(gen.images[:n])
        reference = ctx.reference[0]
        g = torch.Generator().manual_seed(ctx.eval_seed + 2)
        control = reference[torch.randint(len(reference), (n,), generator=g)]  # a bootstrap resample
        scores["ndb_over_k_real"] = bins.score(control)["ndb_over_k"]
        params = {"K": len(bins.centres), "alpha": 0.05, "whiten": True, "kmeans_n_init": bins.n_init,
                  "kmeans_n_fit": int(bins.train_counts.sum()), "dims_used": int(len(bins.dims)), "n_gen": n,
                  "n_ref": len(reference), "ndb_control": "bootstrap resample of the reference",
                  "extractor": "none (pixels)"}
        return self.values(ctx, stage, n, scores, params)
