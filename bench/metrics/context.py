"""What every metric of one run shares: the real data, its fingerprint, the fitted extractors, the
generated samples of one pass, and the protocol fields common to all its records.

Nothing here draws from the training RNG: samples come from `latents.eval_latents` (its own
generator), subsets from generators seeded with EVAL_SEED, and sklearn models from their own
random_state, so a run trains identically with and without evaluation.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Optional

import torch

from bench import registry
from bench.errors import BenchError
from bench.metrics import diversity, extractors, facts
from bench.metrics.fidelity import Weights, to_uint8
from bench.metrics.records import own_library
from bench.metrics.latents import EVAL_SEED, eval_latents, generate

# Each registered dataset class names the feature space its metrics use (`feature_family`), and that
# picks the metric family. points: distances to the known centres. domain: built-in images whose own
# labels give a meaningful space (docs/protocols.md §1.5); a small extractor is fitted on them. domain_stacked:
# the same, per channel, plus the digit judge (R, G, B are three digits, 1,000 modes; docs/protocols.md §4).
# natural: Inception and VGG16. A domain dataset loaded without labels falls back to natural.
FEATURE_FAMILIES = {family: facts.metric_family(family) for family in facts.FAMILIES}
MAX_REFERENCE = 50_000  # larger train splits use a fixed subset chosen with eval_seed (docs/protocols.md §2)


def metrics_cache() -> Path:
    from bench.datasets.files import cache_root

    return cache_root() / "metrics"


class EvalContext:
    """One run's evaluation setting: dataset, device, weights, and lazily built shared pieces."""

    def __init__(self, config, data, variant, device: torch.device, weights: Optional[Weights] = None,
                 eval_seed: int = EVAL_SEED, dataset: Optional[str] = None):
        """config and variant are None where no run stands behind the samples (bench score's image
        sets): then `dataset` names the data, and nothing is generated."""
        self.config, self.data, self.variant, self.device = config, data, variant, device
        self.weights = weights or Weights.from_env()
        self.eval_seed = eval_seed
        self.dataset = dataset or config.dataset
        self.seed = config.loop.seed if config is not None else None
        self.spec = data.spec
        self.info = data.info
        self.family = family_of(self.dataset, data)
        self.stacked = self.family == "domain" and feature_family(self.dataset) == "domain_stacked"
        self.conditional = bool(variant is not None and variant.conditional and self.spec.num_classes)
        self._real_msssim: dict[int, float] = {}
        self._ceilings: dict[str, dict] = {}

    # ---- facts recorded with every value
    @property
    def image_size(self) -> int:
        return int(self.spec.shape[-1]) if self.spec.kind == "images" else 0

    @property
    def ref_split(self) -> str:
        return str(self.info.get("split", "all"))

    @property
    def ref_fingerprint(self) -> str:
        return str(self.info.get("ref_fingerprint") or self.info.get("fingerprint", ""))

    def protocol(self) -> dict:
        """Fields shared by every record of this run; metrics add theirs (n_gen, extractor, ...)."""
        out = {"ref_dataset": self.dataset, "ref_split": self.ref_split, "ref_fingerprint": self.ref_fingerprint,
               "eval_seed": self.eval_seed, "seed": self.seed, "library": own_library()}
        if self.spec.kind == "images":
            prep = self.info.get("preprocess") or {}
            out.update(image_size=self.image_size, resize=str(prep.get("filter", self.info.get("resize", "none"))),
                       crop=str(prep.get("crop", "center" if prep else "none")))
        else:
            out.update(modes=int(len(self.data.centres)), mode_std=float(self.data.std))
            # the mixture's geometry beside its std: protocols differ in radius / spacing (docs/protocols.md §3)
            out.update({f"mode_{k}": float(self.info[k]) for k in ("radius", "spacing") if k in self.info})
        return out

    @property
    def domain_source(self) -> str:
        """The domain extractor's name in its id and in labels: an MLP fitted on this dataset."""
        return f"{self.dataset}-mlp"

    @property
    def cache_key(self) -> str:
        return f"{self.dataset}-{self.ref_split}-{self.image_size}px-{self.ref_fingerprint[:16]}"

    # ---- real data
    @functools.cached_property
    def reference(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The train split as uint8 on the host (at most 50,000, chosen with eval_seed) and its labels."""
        images = self.data.images.cpu()
        labels = None if self.data.labels is None else self.data.labels.cpu()
        if len(images) > MAX_REFERENCE:
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.eval_seed))[:MAX_REFERENCE]
            keep = keep.sort().values
            images, labels = images[keep], None if labels is None else labels[keep]
        return to_uint8_images(images), labels

    def real_subset(self, n: int, seed_offset: int = 0) -> torch.Tensor:
        """n reference images (all of them when n >= the reference size), chosen with eval_seed."""
        images = self.reference[0]
        if n >= len(images):
            return images
        g = torch.Generator().manual_seed(self.eval_seed + seed_offset)
        return images[torch.randperm(len(images), generator=g)[:n].sort().values]

    # ---- fitted pieces, built once per process
    @functools.cached_property
    def extractor(self) -> extractors.DomainExtractor:
        images, labels = self.data.images.cpu(), self.data.labels.cpu()
        if self.stacked:
            images, labels = extractors.distinct_channels(images, extractors.digits_of_modes(labels))
        path = metrics_cache() / f"{self.cache_key}-domain-v{extractors.FORMAT}.pt"
        return extractors.load_or_fit(path, images, labels, self.domain_source, self.stacked, self.eval_seed)

    @functools.cached_property
    def real_features(self) -> torch.Tensor:
        return self.extractor.features(self.reference[0])

    @functools.cached_property
    def real_halves(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's features in two disjoint random halves (eval_seed): the real-vs-real ceiling
        of every distance in this space is one half scored against the other (docs/protocols.md §1.5)."""
        f = self.real_features
        order = torch.randperm(len(f), generator=torch.Generator().manual_seed(self.eval_seed + 2))
        half = len(f) // 2
        return f[order[:half]], f[order[half:2 * half]]

    def ceiling(self, name: str, compute) -> dict:
        """compute(a, b) on the real halves, once per process and metric name."""
        if name not in self._ceilings:
            self._ceilings[name] = compute(*self.real_halves)
        return self._ceilings[name]

    @functools.cached_property
    def judge(self):
        """The per-channel digit judge the dataset declares (`judge`): the RBF SVC for scikit-learn's
        8 x 8 digits, the cached CNN for MNIST digits, where the SVC stays below 0.98 (§4)."""
        images, labels = self.data.images.cpu(), self.data.labels.cpu()
        channels, digits = extractors.distinct_channels(images, extractors.digits_of_modes(labels))
        if getattr(registry.datasets.get(self.dataset), "judge", "svc") == "cnn":
            from bench.metrics import cnn_judge

            path = metrics_cache() / cnn_judge.cache_name(channels, digits, self.eval_seed)
            return cnn_judge.CNNJudge.load_or_fit(path, channels, digits, self.eval_seed)
        return extractors.DigitJudge.fit(channels, digits, self.eval_seed)

    @functools.cached_property
    def ndb_bins(self) -> diversity.NDBBins:
        path = metrics_cache() / f"{self.cache_key}-ndb-K100-v2.pt"
        return load_or_fit_bins(path, self.real_subset(20_000, seed_offset=1), self.eval_seed)

    def real_msssim(self, pairs: int) -> float:
        """Mean MS-SSIM of `pairs` real pairs: the same for every run of this reference, so it is cached
        on disk beside the NDB bins (the final protocol's pairs take seconds on a CPU thread; README, Speed)."""
        if pairs not in self._real_msssim:
            name = f"{self.cache_key}-msssim-real-{pairs}pairs-seed{self.eval_seed}-{self.device.type}.json"
            path = metrics_cache() / name
            self._real_msssim[pairs] = load_or_compute_value(path, lambda: diversity.mean_msssim(
                self.reference[0], pairs, torch.Generator().manual_seed(self.eval_seed + 1), device=self.device))
        return self._real_msssim[pairs]


def feature_family(dataset: str) -> str:
    """The `feature_family` the registered dataset class declares (a key of FEATURE_FAMILIES)."""
    choice = getattr(registry.datasets.get(dataset), "feature_family", None)
    if choice not in FEATURE_FAMILIES:
        raise BenchError(f"dataset {dataset!r} declares feature_family {choice!r}; set it on the dataset class "
                         f"to one of {', '.join(FEATURE_FAMILIES)}")
    return choice


def family_of(dataset: str, data) -> str:
    """points, domain (built-in images with labels) or natural (Inception/VGG backbones)."""
    if data.spec.kind == "points":
        return "points"
    family = FEATURE_FAMILIES[feature_family(dataset)]
    return "domain" if family == "domain" and getattr(data, "labels", None) is not None else "natural"


def to_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """Stored uint8 images with 3 channels (grey is replicated), as every extractor expects."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def load_or_fit_bins(path: Path, images: torch.Tensor, seed: int):
    """NDB bins cached as tensors (k-means on 20,000 images takes seconds; the curve must not)."""
    from bench.store.runs import save_atomic

    if path.is_file():
        try:
            return diversity.NDBBins(**torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # noqa: BLE001 - a damaged cache file is refitted
            pass
    # K = 100 (docs/protocols.md §5.3) unless the set is too small for it: then one bin per ten images, recorded.
    bins = diversity.NDBBins.fit(images, k=min(100, max(2, len(images) // 10)), seed=seed)
    save_atomic(path, lambda tmp: torch.save(vars(bins), tmp))
    return bins


def load_or_compute_value(path: Path, compute) -> float:
    """A float cached as JSON (repr round-trips exactly); a damaged file is recomputed."""
    from bench.store.runs import save_atomic

    try:
        return float(json.loads(path.read_text())["value"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = float(compute())
    save_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps({"value": value})))
    return value


class Generated:
    """One draw from G on the fixed evaluation latents, shared by every metric of one pass, with the
    run's D when the caller has it (bench eval does; the probe reads it)."""

    def __init__(self, ctx: EvalContext, G, n: int, D=None):
        self.ctx, self.G, self.D = ctx, G, D
        self.z, self.y = eval_latents(ctx.variant, n, ctx.device, ctx.spec.num_classes, seed=ctx.eval_seed)
        x = generate(ctx.variant, G, self.z, self.y)
        self.labels = None if self.y is None else self.y.cpu()
        self.images = to_uint8(x) if ctx.spec.kind == "images" else None
        self.points = x if ctx.spec.kind == "points" else None
        self.n = n

    @functools.cached_property
    def _run(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ctx.extractor.run(self.images)

    def features(self, n: int) -> torch.Tensor:
        return self._run[0][:n]

    def logits(self, n: int) -> torch.Tensor:
        return self._run[1][:n]
