"""The comparison table: per configuration and metric column, statistics over seeds and a test
against the baseline configuration, Holm-corrected across the whole table.

Each configuration is tested against its baseline partner (baseline.py). Only finished runs (done
or diverged) enter; diverged runs keep their final value and are counted beside the mean.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st

from bench.report import stats
from bench.report.baseline import Baseline, config_order, partners
from bench.report.load import GridData


TABLE_COLUMNS = ["column", "config_id", "config", "runs", "diverged", "collapsed", "n", "mean", "std", "median", "iqm",
                 "best_mean", "auc_mean", "final_minus_best_mean", "best_step_median", "baseline_id", "note",
                 "ci_low", "ci_high", "p", "effect", "effect_kind", "p_holm", "significant"]


def run_scores(data: GridData, curves: pd.DataFrame) -> pd.DataFrame:
    """Per finished run and column: value (final record, or a curve's last value) and curve summaries."""
    finished = data.runs.loc[data.runs["finished"], "run_id"]
    rec = data.records
    point = rec[(rec["column"] >= 0) & (rec["kind"] != "curve") & rec["run_id"].isin(finished)]
    point = point.sort_values("step", kind="stable").groupby(["column", "run_id"], observed=True)["value"].last()
    point = point.reset_index()
    cur = curves[curves["run_id"].isin(finished)].rename(columns={"final": "value"})
    return pd.concat([point, cur], ignore_index=True)


def comparison(data: GridData, scores: pd.DataFrame, stability: pd.DataFrame,
               baseline: Baseline | None, test: str = "mannwhitney") -> pd.DataFrame:
    """One row per (column, configuration) with the statistics, the test and the Holm-adjusted p."""
    runs = data.runs[data.runs["finished"]].merge(stability, on="run_id", how="left")
    per_cfg = runs.groupby("config_id").agg(config=("config", "first"), runs=("run_id", "size"),
                                            diverged=("diverged", "sum"), collapsed=("collapsed", "sum"))
    cfg_rows = per_cfg.to_dict("index")
    scores = scores.merge(runs[["run_id", "config_id"]], on="run_id")
    for c in ("best", "best_step", "auc", "final_minus_best"):
        if c not in scores:
            scores[c] = np.nan
    keys = ["column", "config_id"]
    extra = scores.groupby(keys).agg(best_mean=("best", "mean"), auc_mean=("auc", "mean"),
                                     final_minus_best_mean=("final_minus_best", "mean"),
                                     best_step_median=("best_step", "median"))
    values = {k: g.to_numpy(float) for k, g in scores.groupby(keys)["value"]}
    extra_rows = extra.to_dict("index")
    pairs = partners(data, baseline)
    rows = []
    order = [c for c in config_order(data, baseline) if c in cfg_rows]
    for col in data.columns["column"]:
        for cid in order:
            x = values.get((col, cid))
            if x is None:
                continue
            base, note = pairs.get(cid, (None, ""))
            y = values.get((col, base)) if base else None
            if base and y is None:
                note = "baseline lacks this column"
            rows.append({"column": col, "config_id": cid, **cfg_rows[cid], **stats.describe(x, ci=False),
                         **extra_rows.get((col, cid), {}), "baseline_id": base, "note": note, "_x": x, "_y": y})
    if not rows:  # training losses only: an empty table with the usual columns
        return pd.DataFrame(columns=TABLE_COLUMNS)
    table = pd.DataFrame(rows)
    _fill_ci(table)
    _fill_tests(table, test)
    table["p_holm"], table["significant"] = stats.holm(table["p"].to_numpy())
    return table.drop(columns=["_x", "_y"])


def _clean(x: np.ndarray) -> np.ndarray:
    return x[~np.isnan(x)]


def _fill_ci(table: pd.DataFrame) -> None:
    """Bootstrap CIs, one scipy call per group size: same numbers as one call per cell, much faster."""
    table["ci_low"], table["ci_high"] = math.nan, math.nan
    by_n: dict[int, list[int]] = {}
    for i, x in enumerate(table["_x"]):
        x = _clean(x)
        if len(x) > 1 and np.isfinite(x).all():
            by_n.setdefault(len(x), []).append(i)
    for n, idx in by_n.items():
        lo, hi = stats.bootstrap_ci_batch(np.stack([_clean(table["_x"].iat[i]) for i in idx]))
        table.loc[table.index[idx], "ci_low"] = lo
        table.loc[table.index[idx], "ci_high"] = hi


def _fill_tests(table: pd.DataFrame, test: str) -> None:
    """Tests against the baseline, batched by (n, n_base) like the CIs; effect sizes at every n."""
    table["p"], table["effect"] = math.nan, math.nan
    table["effect_kind"] = "rank-biserial r" if test == "mannwhitney" else "Hedges g"
    batches: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(zip(table["_x"], table["_y"])):
        if y is None:
            continue
        x, y = _clean(x), _clean(y)
        if len(x) and len(y) and (test == "mannwhitney" or (len(x) > 1 and len(y) > 1 and np.isfinite(x).all()
                                                            and np.isfinite(y).all())):
            batches.setdefault((len(x), len(y)), []).append(i)
    for (n1, n2), idx in batches.items():
        X = np.stack([_clean(table["_x"].iat[i]) for i in idx])
        Y = np.stack([_clean(table["_y"].iat[i]) for i in idx])
        if test == "mannwhitney":
            method = "exact" if max(n1, n2) <= stats.EXACT_MAX_N else "asymptotic"
            res = st.mannwhitneyu(X, Y, alternative="two-sided", method=method, axis=-1)
            effect = stats.rank_biserial(np.asarray(res.statistic), n1, n2)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                res = st.ttest_ind(X, Y, equal_var=False, axis=-1)
            effect = np.array([stats.hedges_g(a, b) for a, b in zip(X, Y)])
        rows = table.index[idx]
        table.loc[rows, "effect"] = effect
        if min(n1, n2) >= stats.MIN_TEST_N:
            table.loc[rows, "p"] = np.asarray(res.pvalue, dtype=float)
        else:  # say which side is short: the row's own n may be fine while its baseline's is not
            side = "" if n1 < stats.MIN_TEST_N else "baseline "
            table.loc[rows, "note"] = f"{side}n<{stats.MIN_TEST_N}: no test"
