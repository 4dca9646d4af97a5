"""Report statistics against scipy on known data, and Holm on a hand-worked set of p-values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import stats as st

from bench.report import stats

X = np.array([12.1, 14.3, 11.8, 13.0, 15.2])
Y = np.array([16.4, 17.9, 15.6, 18.3, 16.0])


def test_describe_matches_numpy_and_scipy():
    d = stats.describe(X)
    assert d["n"] == 5
    assert d["mean"] == pytest.approx(np.mean(X))
    assert d["std"] == pytest.approx(np.std(X, ddof=1))
    assert d["median"] == pytest.approx(13.0)
    ref = st.bootstrap((X,), np.mean, n_resamples=10_000, confidence_level=0.95, method="percentile",
                       rng=np.random.default_rng(stats.BOOTSTRAP_SEED)).confidence_interval
    assert (d["ci_low"], d["ci_high"]) == (ref.low, ref.high)
    assert d["ci_low"] < d["mean"] < d["ci_high"]


@pytest.mark.parametrize("x", [[1.0, 2.0, 3.0, 4.0, 100.0], [5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0], [3.0], [2.0, 9.0]])
def test_iqm_is_scipy_trim_mean_quarter(x):
    assert stats.iqm(x) == pytest.approx(st.trim_mean(x, 0.25))


def test_iqm_ignores_one_wild_seed():
    assert stats.iqm([1.0, 2.0, 3.0, 4.0, 1e6]) == pytest.approx(3.0)


def test_batched_bootstrap_equals_one_call_per_group():
    rng = np.random.default_rng(3)
    groups = rng.normal(size=(6, 5))
    lo, hi = stats.bootstrap_ci_batch(groups)
    for i, g in enumerate(groups):
        assert (lo[i], hi[i]) == stats.bootstrap_ci(g)


def test_bootstrap_is_nan_for_one_value_or_infinite():
    assert all(math.isnan(v) for v in stats.bootstrap_ci([3.0]))
    assert all(math.isnan(v) for v in stats.bootstrap_ci([3.0, math.inf, 2.0]))
    d = stats.describe([1.0, math.inf, 2.0, math.nan])
    assert d["n"] == 3 and d["mean"] == math.inf and math.isnan(d["ci_low"])


def test_mann_whitney_exact_p_and_rank_biserial():
    res = stats.compare(X, Y)
    ref = st.mannwhitneyu(X, Y, alternative="two-sided", method="exact")
    assert res["stat"] == ref.statistic == 0.0
    assert res["p"] == pytest.approx(ref.pvalue) and res["p"] == pytest.approx(2 / math.comb(10, 5))
    assert res["effect"] == -1.0  # every x below every y
    # protocol form: 1 - 2U'/(n1 n2) with U' the second sample's U
    u2 = st.mannwhitneyu(Y, X, method="exact").statistic
    assert res["effect"] == pytest.approx(1 - 2 * u2 / 25)


def test_mann_whitney_partial_overlap():
    x, y = [1.0, 4.0, 6.0, 8.0, 9.0], [2.0, 3.0, 5.0, 7.0, 10.0]
    res = stats.compare(x, y)
    ref = st.mannwhitneyu(x, y, alternative="two-sided", method="exact")
    assert res["p"] == pytest.approx(ref.pvalue)
    assert res["effect"] == pytest.approx(2 * ref.statistic / 25 - 1) and res["stat"] == 13.0  # pairs with x > y


def test_below_five_seeds_no_p_but_effect_size():
    res = stats.compare(X[:3], Y[:3])
    assert math.isnan(res["p"]) and res["effect"] == -1.0
    # the trap behind the rule: with n=3 per side the smallest exact two-sided p is 0.1
    assert st.mannwhitneyu(X[:3], Y[:3], method="exact").pvalue == pytest.approx(0.1)


def test_welch_and_hedges_g():
    res = stats.compare(X, Y, test="welch")
    ref = st.ttest_ind(X, Y, equal_var=False)
    assert res["p"] == pytest.approx(ref.pvalue) and res["stat"] == pytest.approx(ref.statistic)
    sp = math.sqrt((4 * np.var(X, ddof=1) + 4 * np.var(Y, ddof=1)) / 8)
    assert res["effect"] == pytest.approx((X.mean() - Y.mean()) / sp * (1 - 3 / (4 * 8 - 1)))


def test_holm_known_set():
    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    adjusted, reject = stats.holm(p)
    # m = 4 (NaN = no test): sorted 0.005, 0.01, 0.03, 0.04 against 0.05/4, 0.05/3, 0.05/2, 0.05/1;
    # 0.03 > 0.025 stops the procedure, so 0.04 is not rejected although 0.04 <= 0.05.
    assert list(reject) == [True, False, False, True, False]
    assert np.allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02]) and math.isnan(adjusted[4])


def test_holm_all_rejected_and_none():
    adjusted, reject = stats.holm([0.001, 0.002])
    assert reject.all() and np.allclose(adjusted, [0.002, 0.002])
    adjusted, reject = stats.holm([math.nan])
    assert not reject.any()


def _holm_loop(p, alpha=0.05):
    """The textbook procedure, written as a loop: reject in ascending order until the first failure."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    reject = [False] * len(p)
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        reject[i] = True
    return reject


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.floats(0, 0.2), min_size=1, max_size=12))
def test_holm_matches_the_textbook_loop(p):
    adjusted, reject = stats.holm(p)
    assert list(reject) == _holm_loop(p)
    assert all(a >= q for a, q in zip(adjusted, p))
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0)  # adjusted p keeps the order of the raw p
