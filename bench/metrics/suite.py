"""The registered metrics: which runs each applies to, how many samples it needs, and its records.

Each entry is a small class registered by name in `bench.registry.metrics`. It says which data
family it serves (points, domain images, natural images), whether it belongs to the cheap curve
protocol, and turns one shared draw of generated samples into Values with their protocol fields.
The math lives in modes.py, diversity.py, fidelity.py and conditional.py; this module only wires it.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Optional

import torch

from bench import registry
from bench.errors import BenchError
from bench.metrics import conditional, diversity, fidelity, modes
from bench.metrics.context import EvalContext, Generated, metrics_cache
from bench.metrics.records import Value, count_label, fidelity_library

CURVE, FINAL = "curve", "final"
N_CURVE = 2_000  # FID@2k-style curves (PROTOCOLS 2)
N_FINAL = 10_000
N_POINTS = 2_500  # PROTOCOLS 3, curve and final alike
N_STACKED = 26_000  # PROTOCOLS 4
PAIRS = {CURVE: 1_000, FINAL: 10_000}  # MS-SSIM pairs (PROTOCOLS 5.1, 7.2)


class Metric:
    """Base class: a group of related values computed from one draw of samples."""

    name = "metric"  # set by the registry
    families: tuple[str, ...] = ()  # points, domain, natural
    stages: tuple[str, ...] = (FINAL,)  # CURVE too when cheap enough for in-training evaluation
    opt_in = False  # computed only when asked for by name (bench eval --metrics)

    def applies(self, ctx: EvalContext) -> bool:
        return ctx.family in self.families

    def n_gen(self, ctx: EvalContext, stage: str, n: Optional[int]) -> int:
        return n or (N_CURVE if stage == CURVE else N_FINAL)

    def outputs(self, ctx: EvalContext, stage: str, n: int) -> dict[str, tuple[str, bool]]:
        """name -> (label, higher_is_better) of every value this metric writes."""
        raise NotImplementedError

    def compute(self, ctx: EvalContext, gen: Generated, stage: str, n: int) -> list[Value]:
        raise NotImplementedError

    def values(self, ctx, stage, n, numbers: dict, params: dict, std: Optional[dict] = None) -> list[Value]:
        out = []
        for name, (label, higher) in self.outputs(ctx, stage, n).items():
            s = (std or {}).get(name)
            out.append(Value(name, numbers[name], label, higher, params,
                             None if s is None else s[0], None if s is None else s[1]))
        return out

    def skipped(self, ctx, stage, n, reason: str) -> list[Value]:
        return [Value(name, math.nan, label, higher, {"n_gen": n, "skipped": reason})
                for name, (label, higher) in self.outputs(ctx, stage, n).items()]


def _tag(ctx: EvalContext) -> str:
    return f"{ctx.ref_split}/{ctx.dataset}-mlp"


# ------------------------------------------------------------------ 2-D mixtures

@registry.metrics.register("mode_scores")
class ModeScores(Metric):
    """Modes covered, high-quality fraction, KL and JSD to uniform over modes (PROTOCOLS 3)."""

    families = ("points",)
    stages = (CURVE, FINAL)

    def n_gen(self, ctx, stage, n):
        return n or N_POINTS

    def outputs(self, ctx, stage, n):
        c = count_label(n)
        return {"modes_covered": (f"modes@{c}", True), "hq_fraction": (f"HQ@{c}", True),
                "kl_modes": (f"KL-modes@{c}", False), "jsd_modes": (f"JSD-modes@{c}", False)}

    def compute(self, ctx, gen, stage, n):
        scores = modes.mixture_scores(gen.points[:n], ctx.data.centres, ctx.data.std)
        return self.values(ctx, stage, n, scores, {"n_gen": n, "hq_sigmas": modes.HQ_SIGMAS,
                                                   "extractor": "none (sigma-normalised distance)"})


# ------------------------------------------------------------------ domain feature space

class _DomainFeatures(Metric):
    families = ("domain",)

    def base(self, ctx, n_gen, n_ref) -> dict:
        return {**ctx.extractor.record(), "n_gen": n_gen, "n_ref": n_ref, "library": fidelity_library()}


@registry.metrics.register("fd")
class FD(_DomainFeatures):
    """Frechet distance in the domain extractor's hidden layer: the curve's quality measure."""

    stages = (CURVE, FINAL)

    def outputs(self, ctx, stage, n):
        return {"fd": (f"FD@{count_label(n)}/{_tag(ctx)}", False)}

    def compute(self, ctx, gen, stage, n):
        real = ctx.real_features
        return self.values(ctx, stage, n, {"fd": fidelity.fd(gen.features(n), real)}, self.base(ctx, n, len(real)))


@registry.metrics.register("kid")
class KID(_DomainFeatures):
    """Unbiased KID with its std over subsets; subset size adapts to small sets and is recorded."""

    def outputs(self, ctx, stage, n):
        return {"kid": (f"KID@{count_label(n)}/{_tag(ctx)}", False)}

    def compute(self, ctx, gen, stage, n):
        real = ctx.real_features
        mean, std, size = fidelity.kid(gen.features(n), real, ctx.eval_seed)
        params = {**self.base(ctx, n, len(real)), "kid_subsets": fidelity.KID_SUBSETS, "kid_subset_size": size,
                  "kid_kernel": "poly3"}
        return self.values(ctx, stage, n, {"kid": mean}, params, {"kid": (std, "subsets")})


def _equal_sides(ctx, gen, n) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Generated and real features with N = M = min(n_gen, n_ref), so ball radii share a scale."""
    real = ctx.real_features
    m = min(n, len(real))
    if m < len(real):
        g = torch.Generator().manual_seed(ctx.eval_seed)
        real = real[torch.randperm(len(real), generator=g)[:m]]
    return gen.features(m), real, m


@registry.metrics.register("prc")
class PRC(_DomainFeatures):
    """Improved precision/recall (k = 3) from torch-fidelity on domain features, equal set sizes."""

    def outputs(self, ctx, stage, n):
        m = count_label(min(n, len(ctx.reference[0])))
        return {"precision": (f"P@{m}/{_tag(ctx)}", True), "recall": (f"R@{m}/{_tag(ctx)}", True),
                "f_score": (f"F@{m}/{_tag(ctx)}", True)}

    def compute(self, ctx, gen, stage, n):
        fake, real, m = _equal_sides(ctx, gen, n)
        params = {**self.base(ctx, m, m), "prc_neighborhood": fidelity.PRC_NEIGHBOURHOOD, "ball": "<="}
        return self.values(ctx, stage, n, fidelity.prc(fake, real), params)


@registry.metrics.register("density_coverage")
class DensityCoverage(_DomainFeatures):
    """Density and coverage, k = 5, equal set sizes (PROTOCOLS 5.2)."""

    def outputs(self, ctx, stage, n):
        m = count_label(min(n, len(ctx.reference[0])))
        return {"density": (f"density@{m}/{_tag(ctx)}", True), "coverage": (f"coverage@{m}/{_tag(ctx)}", True)}

    def compute(self, ctx, gen, stage, n):
        fake, real, m = _equal_sides(ctx, gen, n)
        params = {**self.base(ctx, m, m), "k": 5, "library": "own (Naeem et al. 2020 definitions)"}
        return self.values(ctx, stage, n, diversity.density_coverage(real, fake, k=5), params)


@registry.metrics.register("stacked_modes")
class StackedModes(Metric):
    """Modes covered of 1,000 and KL to uniform, each channel judged on its own (PROTOCOLS 4)."""

    families = ("domain",)
    stages = (CURVE, FINAL)

    def applies(self, ctx):
        return ctx.stacked

    def n_gen(self, ctx, stage, n):
        return n or (N_CURVE if stage == CURVE else N_STACKED)

    def outputs(self, ctx, stage, n):
        c = count_label(n)
        return {"modes_covered": (f"modes@{c}/1000", True), "kl_modes": (f"KL-modes@{c}/1000", False),
                "modes_covered_real": (f"modes-real@{c}/1000", True)}

    def compute(self, ctx, gen, stage, n):
        judge = ctx.judge
        judge.check()
        scores = modes.stacked_scores(judge.predict(gen.images[:n]))
        real = ctx.reference
        # The ceiling row: the same count on real stacks (labels are exact, no judge needed).
        real_digits = torch.stack([real[1] // 100, real[1] // 10 % 10, real[1] % 10], dim=1)[:n]
        scores["modes_covered_real"] = modes.stacked_scores(real_digits)["modes_covered"]
        params = {**judge.record(), "n_gen": n, "n_ref": min(n, len(real[0])), "threshold": "none"}
        return self.values(ctx, stage, n, scores, params)


# ------------------------------------------------------------------ any images

@registry.metrics.register("msssim")
class MSSSIM(Metric):
    """Mean MS-SSIM of random distinct generated pairs beside real pairs; gap = gen - real."""

    families = ("domain", "natural")
    stages = (CURVE, FINAL)

    def n_gen(self, ctx, stage, n):
        return n or (N_CURVE if stage == CURVE else N_FINAL)

    def outputs(self, ctx, stage, n):
        p = count_label(min(PAIRS[stage], n * 5))
        return {"msssim_gen": (f"MS-SSIM-gen@{p}pairs", False), "msssim_real": (f"MS-SSIM-real@{p}pairs", False),
                "msssim_gap": (f"MS-SSIM-gap@{p}pairs", False)}

    def compute(self, ctx, gen, stage, n):
        pairs = min(PAIRS[stage], n * 5)
        settings = diversity.msssim_settings(ctx.image_size)
        fake = diversity.mean_msssim(gen.images[:n], pairs, torch.Generator().manual_seed(ctx.eval_seed),
                                     device=ctx.device)
        real = real_msssim(ctx, pairs)
        params = {**settings.record(), "pairs": pairs, "n_gen": n, "n_ref": len(ctx.reference[0]),
                  "extractor": "none (pixels)"}
        return self.values(ctx, stage, n, {"msssim_gen": fake, "msssim_real": real, "msssim_gap": fake - real},
                           params)


_real_msssim: dict = {}


def real_msssim(ctx: EvalContext, pairs: int) -> float:
    key = (ctx.cache_key, pairs, ctx.eval_seed)
    if key not in _real_msssim:
        _real_msssim[key] = diversity.mean_msssim(ctx.reference[0], pairs,
                                                  torch.Generator().manual_seed(ctx.eval_seed + 1), device=ctx.device)
    return _real_msssim[key]


@registry.metrics.register("ndb")
class NDB(Metric):
    """Number of statistically different bins over K = 100 k-means bins, with a real-data control."""

    families = ("domain", "natural")

    def outputs(self, ctx, stage, n):
        c, k = count_label(n), len(ctx.ndb_bins.centres)
        return {"ndb_over_k": (f"NDB/K@{c}/K{k}", False), "ndb_jsd": (f"NDB-JSD@{c}/K{k}", False),
                "ndb_over_k_real": (f"NDB/K-real@{c}/K{k}", False)}

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


# ------------------------------------------------------------------ natural images: Inception and VGG16

def _inception_available(ctx) -> bool:
    try:
        fidelity.inception_weights(ctx.weights)
        return True
    except fidelity.MissingWeights:
        return False


@registry.metrics.register("inception")
class Inception(Metric):
    """FID, KID and IS through torch-fidelity's own pipeline, the generator fed directly."""

    families = ("natural",)
    stages = (CURVE, FINAL)

    def applies(self, ctx):
        return ctx.family == "natural"

    def outputs(self, ctx, stage, n):
        c, split = count_label(n), ctx.ref_split
        out = {"fid": (f"FID@{c}/{split}", False), "kid": (f"KID@{c}/{split}/inception", False)}
        if stage == FINAL:
            out["isc"] = (f"IS@{c}", True)
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

    families = ("natural",)

    def outputs(self, ctx, stage, n):
        c, split = count_label(n), ctx.ref_split
        return {"precision": (f"P@{c}/{split}/vgg16", True), "recall": (f"R@{c}/{split}/vgg16", True),
                "f_score": (f"F@{c}/{split}/vgg16", True)}

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


# ------------------------------------------------------------------ conditional runs

@registry.metrics.register("class_scores")
class ClassScores(Metric):
    """Conditional runs: judge accuracy on requested labels, per-class KID, intra-class diversity."""

    families = ("domain",)

    def applies(self, ctx):
        return ctx.family == "domain" and ctx.conditional and not ctx.stacked

    def n_gen(self, ctx, stage, n):
        return n or conditional.PER_CLASS * ctx.spec.num_classes

    def outputs(self, ctx, stage, n):
        per = n // ctx.spec.num_classes
        t = _tag(ctx)
        return {"class_acc": (f"class-acc@{per}/class/{t}", True),
                "class_acc_real": (f"class-acc-real-heldout/{t}", True),
                "classes_low_acc": (f"classes<10x-chance@{per}/class/{t}", False),
                "label_entropy": (f"label-entropy@{per}/class/{t}", True),
                "kid_class_mean": (f"KID-class-mean@{per}/class/{t}", False),
                "kid_class_std": (f"KID-class-std@{per}/class/{t}", False),
                "kid_class_worst10": (f"KID-class-worst10@{per}/class/{t}", False),
                "msssim_class_mean": (f"MS-SSIM-class@{conditional.PAIRS_PER_CLASS}pairs", False),
                "coverage_class_mean": (f"coverage-class@{per}/class/{t}", True)}

    def compute(self, ctx, gen, stage, n):
        scores, params = conditional.class_scores(ctx, gen, n)
        return self.values(ctx, stage, n, scores, {**ctx.extractor.record(), **params})


# ------------------------------------------------------------------ the discriminator probe

@registry.metrics.register("probe")
class Probe(Metric):
    """Linear probe on the frozen D beside a random D and raw pixels (PROTOCOLS 8). Opt-in: a 5-fold
    search over C for three feature sets takes tens of seconds, too long for every run's final."""

    families = ("domain", "natural")
    opt_in = True
    needs_discriminator = True

    def applies(self, ctx):
        return ctx.spec.kind == "images" and getattr(ctx.data, "labels", None) is not None

    def n_gen(self, ctx, stage, n):
        return n or 2  # the probe reads real images: all of the reference, or n of them (bench eval --n)

    def outputs(self, ctx, stage, n):
        split = ctx.ref_split + (f"@{count_label(n)}" if n > 2 else "")
        return {"probe_acc": (f"probe-acc/D/{split}", True), "probe_acc_random_d": (f"probe-acc/random-D/{split}", True),
                "probe_acc_pixels": (f"probe-acc/pixels/{split}", True)}

    def compute(self, ctx, gen, stage, n, D=None):
        from bench.metrics.probe import probe_scores

        if D is None:
            raise BenchError("the probe needs the run's discriminator; run it with bench eval on a run folder")
        with torch.random.fork_rng(devices=[]):  # the random D's init must not move any RNG stream
            torch.manual_seed(ctx.eval_seed)
            _, random_D = ctx.variant.build()
        images, labels = ctx.reference
        if 2 < n < len(images):  # a fixed random subset, the same for every run of this reference
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(ctx.eval_seed))[:n]
            images, labels = images[keep], labels[keep]
        scores, params = probe_scores(D, random_D.to(ctx.device), images, labels, ctx.device, ctx.eval_seed)
        return self.values(ctx, stage, n, scores, {**params, "n_ref": len(images), "extractor": "D conv blocks"})


# ------------------------------------------------------------------ running a protocol

def selected(ctx: EvalContext, stage: str, names: Optional[list[str]] = None) -> list[Metric]:
    """The metrics of `stage` that apply to this run, or exactly `names` (each must apply)."""
    if names:
        chosen = []
        for name in names:
            metric = registry.metrics.get(name)()
            if not metric.applies(ctx):
                raise BenchError(f"metric {name!r} does not apply to dataset {ctx.dataset!r} "
                                 f"({ctx.family}); applicable: {', '.join(applicable(ctx))}")
            chosen.append(metric)
        return chosen
    return [m for m in (registry.metrics.get(k)() for k in registry.metrics.names())
            if stage in m.stages and not m.opt_in and m.applies(ctx)]


def applicable(ctx: EvalContext) -> list[str]:
    return [k for k in registry.metrics.names() if registry.metrics.get(k)().applies(ctx)]


def run_protocol(ctx: EvalContext, G, stage: str, names: Optional[list[str]] = None, n: Optional[int] = None,
                 timings: Optional[dict] = None, D=None) -> list[Value]:
    """Every selected metric on one shared draw of samples from G. In the default selection a metric
    that cannot run (missing weights, a judge below its accuracy floor) writes NaN values saying why
    at the final stage, so a training run never fails on it; one asked for by name raises instead."""
    metrics = selected(ctx, stage, names)
    if not metrics:
        return []
    sized = [(m, m.n_gen(ctx, stage, n)) for m in metrics]
    t0 = time.perf_counter()
    gen = Generated(ctx, G, max(k for _, k in sized))
    if timings is not None:
        timings["generate"] = time.perf_counter() - t0
    values: list[Value] = []
    for metric, k in sized:
        t0 = time.perf_counter()
        try:
            if getattr(metric, "needs_discriminator", False):
                values += metric.compute(ctx, gen, stage, k, D)
            else:
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
