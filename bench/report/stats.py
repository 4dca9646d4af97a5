"""The numbers behind every cell across seeds (docs/protocols.md §7.3), kept apart from tables so tests can
pin them against scipy.

Bootstrap: percentile method, 10,000 resamples, a fixed generator seed (BCa is unstable at n=5).
Tests: two-sided Mann-Whitney U, exact for n <= 8, with rank-biserial r; or Welch's t with Hedges' g.
Below MIN_TEST_N seeds on either side no p-value is printed: with n=3 the smallest exact two-sided
p is 0.1, so a test there can only mislead. Holm's step-down correction spans one table.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as st

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20_240_607  # fixed so a report is reproducible to the last digit
MIN_TEST_N = 5
EXACT_MAX_N = 8
ALPHA = 0.05
TESTS = ("mannwhitney", "welch")


def iqm(x: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (Agarwal et al. 2021), robust to one wild seed."""
    x = np.sort(np.asarray(x, dtype=float))
    cut = int(0.25 * len(x))  # what scipy.stats.trim_mean(x, 0.25) cuts from each end
    return float(np.mean(x[cut:len(x) - cut])) if len(x) else math.nan


def bootstrap_ci(x: Sequence[float]) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean; NaN when fewer than 2 values or any is non-finite."""
    lo, hi = bootstrap_ci_batch(np.asarray(x, dtype=float)[None, :])
    return float(lo[0]), float(hi[0])


def bootstrap_ci_batch(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CIs for many groups of equal size at once (rows). Each row gets exactly what scipy gives it
    alone, because the generator is re-seeded per call and draws one index set for all rows."""
    samples = np.asarray(samples, dtype=float)
    lo = np.full(len(samples), math.nan)
    hi = np.full(len(samples), math.nan)
    ok = np.isfinite(samples).all(axis=1) if samples.size else np.zeros(len(samples), bool)
    if samples.ndim != 2 or samples.shape[1] < 2 or not ok.any():
        return lo, hi
    res = st.bootstrap((samples[ok],), np.mean, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                       method="percentile", axis=-1, rng=np.random.default_rng(BOOTSTRAP_SEED))
    lo[ok], hi[ok] = res.confidence_interval.low, res.confidence_interval.high
    return lo, hi


def describe(x: Sequence[float], ci: bool = True) -> dict[str, float]:
    """n, mean, std (ddof 1), median, IQM and the bootstrap CI of the values that are not NaN.

    Infinite values stay in (a diverged run's inf is a result); they make the mean inf and the CI NaN.
    """
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    with np.errstate(invalid="ignore"):
        out = {"n": n, "mean": float(np.mean(x)) if n else math.nan,
               "std": float(np.std(x, ddof=1)) if n > 1 else math.nan,
               "median": float(np.median(x)) if n else math.nan, "iqm": iqm(x)}
    if ci:  # tables batch their CIs by group size instead (summary._fill_ci)
        out["ci_low"], out["ci_high"] = bootstrap_ci(x) if n > 1 else (math.nan, math.nan)
    return out


def rank_biserial(u: float, n1: int, n2: int) -> float:
    """r = 2U/(n1 n2) - 1 with U counted for the first sample: +1 when every x exceeds every y.

    This is docs/protocols.md §7.3's 1 - 2U'/(n1 n2) with U' = n1 n2 - U, the U of the second sample.
    """
    return 2.0 * u / (n1 * n2) - 1.0


def hedges_g(x: Sequence[float], y: Sequence[float]) -> float:
    """Standardised mean difference (x - y) with the small-sample correction J = 1 - 3/(4 df - 1)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n1, n2 = len(x), len(y)
    df = n1 + n2 - 2
    pooled = math.sqrt(((n1 - 1) * np.var(x, ddof=1) + (n2 - 1) * np.var(y, ddof=1)) / df)
    if pooled == 0:
        return math.nan
    return float((np.mean(x) - np.mean(y)) / pooled * (1 - 3 / (4 * df - 1)))


def compare(x: Sequence[float], y: Sequence[float], test: str = "mannwhitney") -> dict[str, float]:
    """Two-sided test of x against the baseline y: statistic, p (NaN below MIN_TEST_N), effect size."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}")
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    n1, n2 = len(x), len(y)
    out = {"n": n1, "n_base": n2, "stat": math.nan, "p": math.nan, "effect": math.nan,
           "effect_kind": "rank-biserial r" if test == "mannwhitney" else "Hedges g"}
    if n1 == 0 or n2 == 0:
        return out
    if test == "mannwhitney":
        method = "exact" if max(n1, n2) <= EXACT_MAX_N else "asymptotic"
        res = st.mannwhitneyu(x, y, alternative="two-sided", method=method)
        out["stat"], out["effect"] = float(res.statistic), rank_biserial(float(res.statistic), n1, n2)
    elif n1 > 1 and n2 > 1 and np.isfinite(x).all() and np.isfinite(y).all():
        with np.errstate(invalid="ignore", divide="ignore"):
            res = st.ttest_ind(x, y, equal_var=False)
        out["stat"], out["effect"] = float(res.statistic), hedges_g(x, y)
    else:
        return out
    if min(n1, n2) >= MIN_TEST_N:
        out["p"] = float(res.pvalue)
    return out


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down: adjusted p-values and rejections; NaN entries (no test) are left out of m.

    Sorted ascending, p_(i) is rejected while p_(i) <= alpha / (m - i + 1), stopping at the first
    failure; the adjusted value max_{j<=i} min(1, (m - j + 1) p_(j)) reads against alpha directly.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    reject = np.zeros(p.shape, dtype=bool)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    if m == 0:
        return adjusted, reject
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    passed = p[order] <= alpha / (m - np.arange(m))
    stop = m if passed.all() else int(np.argmin(passed))
    reject[order[:stop]] = True
    return adjusted, reject
