"""Natural images (folders, CIFAR-10, Stanford Dogs...): FID, KID and IS on Inception, and
precision/recall on VGG16, each through torch-fidelity's own pipeline with the generator fed directly;
density/coverage on the same VGG16 features, extracted by the library's own VGG16 extractor.
Missing weights raise fidelity.MissingWeights, which the protocol records as a skipped value."""

from __future__ import annotations

import torch

from bench import registry
from bench.metrics import diversity, fidelity
from bench.metrics.context import metrics_cache
from bench.metrics.families.base import CURVE, FINAL, Metric
from bench.metrics.records import count_label, fidelity_library


@registry.metrics.register("inception")
class Inception(Metric):
    """FID, KID and IS through torch-fidelity's own pipeline, the generator fed directly."""

    stages = (CURVE, FINAL)

    def outputs(self, ctx, stage, n):
        c, split = count_label(n), ctx.ref_split
        out = {"fid": f"FID@{c}/{split}", "kid": f"KID@{c}/{split}/inception"}
        if stage == FINAL:
            out["isc"] = f"IS@{c}"
        return out

    def compute(self, ctx, gen, stage, n):
        path = fidelity.inception_weights(ctx.weights)
        reference = ctx.reference[0]
        wid = fidelity.weights_id("inception-v3-compat", path)
        cache_name = f"{ctx.cache_key}-n{len(reference)}-{wid.split('@')[1]}"
        wrapped = fidelity.generator_input(ctx.variant, gen.G, gen.z[:n], None if gen.y is None else gen.y[:n])
        with evaluating(gen.G):
            out = fidelity.inception_scores(wrapped, n, reference, cache_name, path, ctx.device, ctx.eval_seed,
                                            isc=stage == FINAL, cache_root=metrics_cache() / "fidelity")
        numbers = {"fid": out["frechet_inception_distance"], "kid": out["kernel_inception_distance_mean"]}
        std = {"kid": (out["kernel_inception_distance_std"], "subsets")}
        if stage == FINAL:
            numbers["isc"] = out["inception_score_mean"]
            std["isc"] = (out["inception_score_std"], "subsets")
        params = {"extractor": wid, "extractor_layer": "2048 (IS: logits_unbiased)",
                  "extractor_input": "uint8, native size", "n_gen": n, "n_ref": len(reference),
                  "library": fidelity_library(), "kid_subsets": fidelity.KID_SUBSETS,
                  "kid_subset_size": out["kid_subset_size"], "isc_splits": fidelity.ISC_SPLITS}
        return self.values(ctx, stage, n, numbers, params, std)


@registry.metrics.register("vgg_prc")
class VGGPRC(Metric):
    """Improved precision/recall on VGG16 fc2_relu: torch-fidelity's second call."""

    def outputs(self, ctx, stage, n):
        c, split = count_label(n), ctx.ref_split
        return {"precision": f"P@{c}/{split}/vgg16", "recall": f"R@{c}/{split}/vgg16",
                "f_score": f"F@{c}/{split}/vgg16"}

    def compute(self, ctx, gen, stage, n):
        path = fidelity.vgg16_weights(ctx.weights)
        reference = ctx.reference[0]
        wid = fidelity.weights_id("vgg16", path if path else _hub_vgg())
        cache_name = f"{ctx.cache_key}-n{len(reference)}-{wid.split('@')[1]}"
        wrapped = fidelity.generator_input(ctx.variant, gen.G, gen.z[:n], None if gen.y is None else gen.y[:n])
        with evaluating(gen.G):
            out = fidelity.vgg_prc(wrapped, n, reference, cache_name, path, ctx.device, ctx.eval_seed,
                                   cache_root=metrics_cache() / "fidelity")
        params = {"extractor": wid, "extractor_layer": "fc2_relu", "extractor_input": "uint8, native size",
                  "n_gen": n, "n_ref": len(reference), "library": fidelity_library(),
                  "prc_neighborhood": fidelity.PRC_NEIGHBOURHOOD}
        return self.values(ctx, stage, n, out, params)


@registry.metrics.register("vgg_density_coverage")
class VGGDensityCoverage(Metric):
    """Density and coverage (k = 5) on VGG16 fc2_relu, the layer and weights of `vgg_prc`, with equal
    sides N = M = min(n_gen, n_ref), the real side a fixed random subset (docs/protocols.md §5.2)."""

    def outputs(self, ctx, stage, n):
        m, split = count_label(min(n, len(ctx.reference[0]))), ctx.ref_split
        return {"density": f"density@{m}/{split}/vgg16", "coverage": f"coverage@{m}/{split}/vgg16"}

    def compute(self, ctx, gen, stage, n):
        path = fidelity.vgg16_weights(ctx.weights)
        wid = fidelity.weights_id("vgg16", path if path else _hub_vgg())
        reference = ctx.reference[0]
        m = min(n, len(reference))
        if m < len(reference):
            reference = reference[torch.randperm(len(reference), generator=torch.Generator().manual_seed(ctx.eval_seed))[:m]]
        fake = fidelity.vgg_features(gen.images[:m], path, ctx.device)
        real = _cached_real(ctx, wid, m, lambda: fidelity.vgg_features(reference, path, ctx.device))
        params = {"extractor": wid, "extractor_layer": "fc2_relu", "extractor_input": "uint8, native size",
                  "n_gen": m, "n_ref": m, "k": 5, "library": "own (Naeem et al. 2020 definitions)",
                  "features_library": fidelity_library()}
        return self.values(ctx, stage, n, diversity.density_coverage(real, fake, k=5), params)


def _cached_real(ctx, wid: str, m: int, compute):
    """The real side's features, cached per reference, weights, subset size and seed: one VGG16 pass
    over the reference is the slow half, and it is the same for every run of that reference."""
    from bench.store.runs import save_atomic

    path = metrics_cache() / "fidelity" / f"{ctx.cache_key}-{wid.replace('@', '-')}-fc2_relu-m{m}-s{ctx.eval_seed}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    feats = compute()
    save_atomic(path, lambda tmp: torch.save(feats, tmp))
    return feats


def _hub_vgg():
    path = fidelity.hub_checkpoints() / fidelity.VGG16_FILE
    return path if path.is_file() else None


class evaluating:
    """G in eval mode (BN running statistics) for the duration, then back to what it was."""

    def __init__(self, G):
        self.G, self.was = G, G.training

    def __enter__(self):
        self.G.eval()

    def __exit__(self, *exc):
        self.G.train(self.was)
