"""What each metric is, declared once: the values it writes with their direction, ideal and headline
rank, the data families it serves, and its help line.

The headline, the stability rules, `bench eval --help`, the published-value check and the docs
test all read these tables, so they never keep their own. This module imports neither torch nor
the metric implementations (bench/metrics/families/), whose classes look their facts up here by
their registered name: a report or a `--help` stays free of torch. A new metric declares its
values and itself here (or with `declare_value`/`declare` from its own module) and registers its
class in `bench.registry.metrics` under the same name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# The data families, one vocabulary for datasets (`feature_family`), metrics and the report, with the
# headline's title for each. domain_stacked is the domain family scored per channel (1,000 modes).
FAMILIES = {"points": "2-D mixture", "domain": "images", "domain_stacked": "stacked digits",
            "natural": "natural images"}


def metric_family(family: str) -> str:
    """The family a run's metrics are chosen by: stacked digits use the domain metrics."""
    return "domain" if family == "domain_stacked" else family


@dataclass(frozen=True)
class Measure:
    """One value a metric writes (a record's `name`)."""

    title: str  # headline column title when the label gives none
    higher: bool  # higher is better
    ideal: Optional[float] = None  # what a perfect generator scores, where fixed (stability's distance to ideal)
    headline: dict = field(default_factory=dict)  # family -> rank among that family's headline metrics (0 = primary)
    tie: Optional[str] = None  # the value that breaks ties when this one picks ckpt/best.pt
    rules: dict = field(default_factory=dict)  # stability rule -> its default ("collapse": "-25%"; report/stability.py)


@dataclass(frozen=True)
class Declared:
    """One registered metric: a group of values computed together from one draw of samples."""

    help: str  # one line for `bench eval --help` and the README table
    families: tuple  # the metric families it serves (points, domain, natural)
    writes: tuple  # the value names it records


VALUES: dict[str, Measure] = {}
METRICS: dict[str, Declared] = {}
ANY = tuple(FAMILIES)  # headline in every family where recorded (class accuracy of conditional runs)


def declare_value(name: str, title: str, higher: bool, ideal: Optional[float] = None,
                  headline: Optional[dict] = None, tie: Optional[str] = None, rules: Optional[dict] = None) -> None:
    if name in VALUES:
        raise ValueError(f"value {name!r} is declared twice")
    VALUES[name] = Measure(title, higher, ideal, dict(headline or {}), tie, dict(rules or {}))


def declare(name: str, help: str, families: tuple, writes: tuple) -> None:
    unknown = [v for v in writes if v not in VALUES]
    if name in METRICS or unknown or not set(families) <= set(FAMILIES):
        raise ValueError(f"metric {name!r}: declared twice, or undeclared values {unknown}, or families {families}")
    METRICS[name] = Declared(help, tuple(families), tuple(writes))


def headline(family: str) -> list[str]:
    """The family's headline value names, primary first."""
    ranked = [(m.headline[family], name) for name, m in VALUES.items() if family in m.headline]
    return [name for _, name in sorted(ranked)]


def primary(family: str) -> tuple[str, bool, Optional[str]]:
    """(value, higher is better, tie-breaker) that picks a run's best checkpoint in a metric family."""
    name = headline(family)[0]
    return name, VALUES[name].higher, VALUES[name].tie


def computed_by(value: str, family: str) -> Optional[str]:
    """The registered metric that writes `value` on runs of `family` (what `bench eval --metrics` takes)."""
    family = metric_family(family)
    return next((k for k, d in METRICS.items() if value in d.writes and family in d.families), None)


def direction(value: str) -> Optional[bool]:
    return VALUES[value].higher if value in VALUES else None


def default_rules(kind: str) -> dict[str, str]:
    """value -> its default stability rule of one kind (collapse, reach, divergence)."""
    return {name: m.rules[kind] for name, m in VALUES.items() if kind in m.rules}


P, D, N = "points", "domain", "natural"
# Default stability rules (docs/protocols.md §7.2): a drop from the run's best ("-25%", "+0.10": worse by
# rising), a share of the real-data ceiling never reached, and a distance that ends further from ideal
# than the untrained start.
_RULES = {"modes_covered": {"collapse": "-25%", "reach": "50%"}, "msssim_gap": {"collapse": "+0.10"},
          "coverage": {"reach": "10%"}, "recall": {"reach": "10%"},
          "fd": {"divergence": "start+25%"}, "fid": {"divergence": "start+25%"}}
for _name, _title, _higher, _ideal, _head in [
    ("modes_covered", "modes", True, None, {P: 0, "domain_stacked": 0}),
    ("hq_fraction", "HQ fraction", True, 1.0, {P: 1}),
    ("kl_modes", "KL(modes)", False, 0.0, {P: 2, "domain_stacked": 1}),
    ("jsd_modes", "JSD(modes)", False, 0.0, None),
    ("modes_covered_real", "modes (real)", True, None, None),
    ("kl_modes_real", "KL(modes) (real)", False, None, None),
    ("fd", "FD", False, 0.0, {D: 0}),
    ("fid", "FID", False, 0.0, {N: 0}),
    ("kid", "KID", False, 0.0, {D: 1, N: 1}),
    ("isc", "IS", True, None, None),
    ("precision", "precision", True, 1.0, {D: 2, N: 2}),
    ("recall", "recall", True, 1.0, {D: 3, N: 3}),
    ("f_score", "F-score", True, 1.0, None),
    ("density", "density", True, None, None),
    ("coverage", "coverage", True, 1.0, None),
    ("msssim_gen", "MS-SSIM (generated)", False, None, None),
    ("msssim_real", "MS-SSIM (real)", False, None, None),
    ("msssim_gap", "MS-SSIM gap", False, 0.0, None),
    ("ndb_over_k", "NDB/K", False, None, None),
    ("ndb_jsd", "NDB JSD", False, None, None),
    ("ndb_over_k_real", "NDB/K (real)", False, None, None),
    ("class_acc", "class accuracy", True, 1.0, {f: 9 for f in ANY}),
    ("class_acc_real", "class accuracy (real)", True, None, None),
    ("class_acc_worst", "worst class accuracy", True, None, None),
    ("classes_low_acc", "classes below 10x chance", False, None, None),
    ("label_entropy", "label entropy", True, None, None),
    ("kid_class_mean", "per-class KID", False, None, None),
    ("kid_class_std", "per-class KID std", False, None, None),
    ("kid_class_worst10", "worst-10 per-class KID", False, None, None),
    ("msssim_class_mean", "intra-class MS-SSIM", False, None, None),
    ("msssim_class_real", "intra-class MS-SSIM (real)", False, None, None),
    ("msssim_class_gap", "intra-class MS-SSIM gap", False, None, None),
    ("coverage_class_mean", "per-class coverage", True, None, None),
    ("probe_acc", "probe accuracy (D)", True, None, None),
    ("probe_acc_random_d", "probe accuracy (random D)", True, None, None),
    ("probe_acc_pixels", "probe accuracy (pixels)", True, None, None),
]:
    declare_value(_name, _title, _higher, _ideal, _head, tie="hq_fraction" if _name == "modes_covered" else None,
                  rules=_RULES.get(_name))
_REAL_TWINS = ("fd", "kid", "precision", "recall", "f_score", "density", "coverage")
for _name in _REAL_TWINS:  # the same score of real half against real half: the built-in data's ceiling
    declare_value(f"{_name}_real", f"{VALUES[_name].title} (real)", VALUES[_name].higher)

for _name, _help, _families, _writes in [
    ("fd", "Frechet distance on the built-in data's own feature extractor (digits, shapes, mnist...)", (D,),
     ("fd", "fd_real")),
    ("kid", "kernel distance (KID) on the same features; on natural images the Inception KID", (D,),
     ("kid", "kid_real")),
    ("prc", "improved precision/recall (k = 3) on the same features; on natural images VGG16's", (D,),
     ("precision", "recall", "f_score", "precision_real", "recall_real", "f_score_real")),
    ("density_coverage", "density and coverage (k = 5) on the same features; on natural images VGG16's", (D,),
     ("density", "coverage", "density_real", "coverage_real")),
    ("stacked_modes", "stacked digits: modes covered of 1,000 and KL to uniform", (D,),
     ("modes_covered", "kl_modes", "modes_covered_real", "kl_modes_real")),
    ("inception", "natural images: FID, KID and IS on torch-fidelity's Inception (needs its weights)", (N,),
     ("fid", "kid", "isc")),
    ("vgg_prc", "natural images: precision/recall on VGG16 fc2_relu (needs its weights)", (N,),
     ("precision", "recall", "f_score")),
    ("vgg_density_coverage", "natural images: density and coverage (k = 5) on VGG16 fc2_relu (needs its weights)",
     (N,), ("density", "coverage")),
    ("mode_scores", "ring8/grid25: modes covered, high-quality fraction, KL and JSD to uniform", (P,),
     ("modes_covered", "hq_fraction", "kl_modes", "jsd_modes")),
    ("msssim", "MS-SSIM of generated pairs beside real pairs (diversity; gap = generated - real)", (D, N),
     ("msssim_gen", "msssim_real", "msssim_gap")),
    ("ndb", "NDB over K = 100 k-means bins and its JSD, with a real-data control", (D, N),
     ("ndb_over_k", "ndb_jsd", "ndb_over_k_real")),
    ("class_scores", "conditional runs: judge accuracy on the asked-for labels, per-class KID, diversity", (D,),
     ("class_acc", "class_acc_real", "classes_low_acc", "label_entropy", "kid_class_mean", "kid_class_std",
      "kid_class_worst10", "msssim_class_mean", "coverage_class_mean")),
    ("class_scores_inception", "conditional runs on natural images: linear judge on Inception features, "
     "per-class accuracy and KID (needs its weights)", (N,),
     ("class_acc", "class_acc_real", "class_acc_worst", "classes_low_acc", "kid_class_mean", "kid_class_worst10")),
    ("class_msssim", "conditional runs on natural images: intra-class MS-SSIM beside real pairs of each class "
     "(pixels only)", (N,), ("msssim_class_mean", "msssim_class_real", "msssim_class_gap")),
    ("probe", "opt-in: linear probe on D's features beside a random D and raw pixels", (D, N),
     ("probe_acc", "probe_acc_random_d", "probe_acc_pixels")),
]:
    declare(_name, _help, _families, _writes)
