"""The comparison table: per configuration and metric column, statistics over seeds and a test
against its stratum's baseline configuration.

The multiple-testing family is the grid's question, not the whole table (docs/protocols.md §7.3): Holm runs
over the tests of the stratum's headline metrics (headline.py); every other test keeps its raw p
and is labelled exploratory. Real-data ceilings (MS-SSIM-real, NDB-real, modes-real) are reference
lines, never tested; a metric at one constant value for every run of a stratum (all zeros, all
ones) is reported as uninformative, not tested. Only finished runs (done or diverged) enter;
diverged runs keep their final value and are counted beside the mean.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st

from bench.report import stats
from bench.report.baseline import Baseline, config_order, partners
from bench.report.load import GridData
from bench.report.names import View

CEILING_SUFFIX = "_real"  # msssim_real, ndb_over_k_real, modes_covered_real, class_acc_real: measured on real data


TABLE_COLUMNS = ["column", "config_id", "config", "runs", "diverged", "collapsed", "n", "mean", "std", "median", "iqm",
                 "best_mean", "auc_mean", "final_minus_best_mean", "best_step_median", "baseline_id", "note",
                 "stratum", "row", "family", "no_hq", "ci_low", "ci_high", "p", "effect", "effect_kind", "p_holm",
                 "significant"]


def is_ceiling(name: str) -> bool:
    return name.endswith(CEILING_SUFFIX)


def run_scores(data: GridData, curves: pd.DataFrame, records: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per finished run and column: value (final record, or a curve's last value), curve summaries,
    and no_hq: the value is a KL-of-modes that had no high-quality sample (headline.fill_no_hq)."""
    finished = data.runs.loc[data.runs["finished"], "run_id"]
    rec = data.records if records is None else records
    ev = rec[(rec["column"] >= 0) & rec["run_id"].isin(finished)]
    if "no_hq" not in ev:
        ev = ev.assign(no_hq=False)
    last = ev.sort_values("step", kind="stable").groupby(["column", "run_id"], observed=True)[["value", "no_hq"]].last()
    kinds = dict(zip(data.columns["column"], data.columns["kind"]))
    last = last.reset_index()
    is_curve = last["column"].map(kinds).eq("curve")
    point = last[~is_curve]
    cur = curves[curves["run_id"].isin(finished)].rename(columns={"final": "value"})
    cur = cur.merge(last.loc[is_curve, ["column", "run_id", "no_hq"]], on=["column", "run_id"], how="left")
    out = pd.concat([point, cur], ignore_index=True)
    out["no_hq"] = out["no_hq"].fillna(False).astype(bool)
    return out


def comparison(data: GridData, scores: pd.DataFrame, stability: pd.DataFrame, baseline: Baseline | None,
               view: View, headline: dict[str, set[int]] | None = None, test: str = "mannwhitney") -> pd.DataFrame:
    """One row per (column, configuration): statistics, the test against the stratum's baseline, and
    the Holm-adjusted p for the headline family (`headline`: stratum id -> its headline column ids)."""
    headline = headline or {}
    runs = data.runs[data.runs["finished"]].merge(stability, on="run_id", how="left")
    per_cfg = runs.groupby("config_id").agg(runs=("run_id", "size"), diverged=("diverged", "sum"),
                                            collapsed=("collapsed", "sum"))
    cfg_rows = per_cfg.to_dict("index")
    scores = scores.merge(runs[["run_id", "config_id"]], on="run_id")
    for c in ("best", "best_step", "auc", "final_minus_best", "no_hq"):
        if c not in scores:
            scores[c] = np.nan if c != "no_hq" else False
    keys = ["column", "config_id"]
    extra = scores.groupby(keys).agg(best_mean=("best", "mean"), auc_mean=("auc", "mean"),
                                     final_minus_best_mean=("final_minus_best", "mean"),
                                     best_step_median=("best_step", "median"), no_hq=("no_hq", "sum"))
    values = {k: g.to_numpy(float) for k, g in scores.groupby(keys)["value"]}
    extra_rows = extra.to_dict("index")
    pairs = partners(view, baseline)
    names = dict(zip(data.columns["column"], data.columns["name"]))
    constant = _constant_columns(values, view)
    rows = []
    order = [c for c in config_order(view, baseline) if c in cfg_rows]
    for col in data.columns["column"]:
        for cid in order:
            x = values.get((col, cid))
            if x is None:
                continue
            sid = view.stratum[cid]
            base, note = pairs.get(cid, (None, ""))
            y = values.get((col, base)) if base else None
            family = "headline" if col in headline.get(sid, ()) else "exploratory"
            if is_ceiling(names[col]):
                note, y, family = "real-data ceiling: not tested", None, "ceiling"
            elif (col, sid) in constant:
                note, y, family = f"uninformative: every run scores {constant[(col, sid)]:g}", None, "uninformative"
            elif base and y is None:
                note = "baseline lacks this column"
            rows.append({"column": col, "config_id": cid, "config": view.label[cid], "row": view.row[cid],
                         "stratum": sid, "family": family, **cfg_rows[cid], **stats.describe(x, ci=False),
                         **extra_rows.get((col, cid), {}), "baseline_id": base, "note": note, "_x": x, "_y": y})
    if not rows:  # training losses only: an empty table with the usual columns
        return pd.DataFrame(columns=TABLE_COLUMNS)
    table = pd.DataFrame(rows)
    table["no_hq"] = table["no_hq"].fillna(0).astype(int)
    _fill_ci(table)
    _fill_tests(table, test)
    table["p_holm"], table["significant"] = np.nan, False
    for sid, idx in table[table["family"] == "headline"].groupby("stratum").groups.items():
        adjusted, reject = stats.holm(table.loc[idx, "p"].to_numpy())
        table.loc[idx, "p_holm"], table.loc[idx, "significant"] = adjusted, reject
    table["significant"] = table["significant"].astype(bool)
    return table.drop(columns=["_x", "_y"])


def _constant_columns(values: dict, view: View) -> dict[tuple[int, str], float]:
    """(column, stratum) whose every finite value, over every run of every configuration, is one number."""
    pooled: dict[tuple[int, str], list[np.ndarray]] = {}
    for (col, cid), x in values.items():
        pooled.setdefault((col, view.stratum[cid]), []).append(x)
    out = {}
    for key, parts in pooled.items():
        if len(parts) < 2:
            continue  # one configuration: nothing is compared anyway
        x = np.concatenate(parts)
        x = x[~np.isnan(x)]
        if len(x) > 1 and np.isfinite(x).all() and x.max() - x.min() <= 1e-12 * max(1.0, abs(x.max())):
            out[key] = float(x[0])
    return out


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
