"""The comparison table: per configuration and metric column, statistics over seeds and a test
against the baseline configuration, Holm-corrected across the whole table.

The baseline is a KEY=VALUE: each configuration is compared with the configuration that equals it
in every other varying key and has KEY=VALUE, so `--baseline variant=dcgan` on a variant x dataset
grid compares wgan on digits with dcgan on digits, never with dcgan on ring8. Only finished runs
(done or diverged) enter; diverged runs keep their final value and are counted beside the mean.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats as st

from bench.errors import BenchError
from bench.report import stats
from bench.report.load import GridData


@dataclass(frozen=True)
class Baseline:
    key: str
    value: str  # canonical JSON of the value

    @property
    def text(self) -> str:
        v = json.loads(self.value)
        return f"{self.key}={v if isinstance(v, str) else self.value}"


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def parse_baseline(text: str | None, data: GridData) -> Baseline | None:
    """The user's KEY=VALUE, checked against the grid; None with no text picks the default."""
    if text is None:
        return default_baseline(data)
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise BenchError(f"--baseline {text!r}: expected KEY=VALUE, e.g. variant=dcgan")
    if key not in data.varying:
        raise BenchError(f"--baseline {text!r}: {key!r} does not vary in grid {data.name}; "
                         f"varying keys: {', '.join(data.varying) or '(none)'}")
    try:
        value = _canon(yaml.safe_load(raw))
    except yaml.YAMLError:
        value = _canon(raw)
    values = {_canon(c[key]) for c in data.configs.values() if key in c}
    if value not in values and _canon(raw) in values:
        value = _canon(raw)  # a string that YAML would have read as a number or bool
    if value not in values:
        raise BenchError(f"--baseline {text!r}: no run has {key}={raw}; values in grid {data.name}: "
                         + ", ".join(sorted(values)))
    return Baseline(key, value)


def default_baseline(data: GridData) -> Baseline | None:
    """variant=dcgan when the grid varies the variant (PROTOCOLS 7.3), else the grid file's first axis value."""
    if not data.varying:
        return None
    variants = {c.get("variant") for c in data.configs.values()}
    if "variant" in data.varying and "dcgan" in variants:
        return Baseline("variant", _canon("dcgan"))
    try:
        axes = (yaml.safe_load(data.grid_text) or {}).get("grid") or {}
    except (yaml.YAMLError, AttributeError):
        axes = {}
    present = {k: {_canon(c[k]) for c in data.configs.values() if k in c} for k in data.varying}
    for axis, values in axes.items() if isinstance(axes, dict) else ():
        key = axis if axis in present else str(axis).split(".")[-1]
        if key in present and isinstance(values, list) and values and _canon(values[0]) in present[key]:
            return Baseline(key, _canon(values[0]))
    key = data.varying[0]
    return Baseline(key, sorted(present[key])[0])


def partners(data: GridData, baseline: Baseline | None) -> dict[str, tuple[str | None, str]]:
    """config id -> (its baseline config id or None, note)."""
    if baseline is None:
        return {cid: (None, "no baseline") for cid in data.configs}
    others = [k for k in data.varying if k != baseline.key]
    canon = {cid: {k: _canon(c[k]) for k in others if k in c} for cid, c in data.configs.items()}
    bases = [cid for cid, c in data.configs.items() if _canon(c.get(baseline.key)) == baseline.value]
    out: dict[str, tuple[str | None, str]] = {}
    for cid, mine in canon.items():
        if cid in bases:
            out[cid] = (None, "baseline")
            continue
        match = [b for b in bases if all(v == canon[b].get(k, v) for k, v in mine.items())]
        out[cid] = (match[0], "") if len(match) == 1 else (None, "no baseline match" if not match else "baseline ambiguous")
    return out


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


def config_order(data: GridData, baseline: Baseline | None) -> list[str]:
    """Config ids grouped by the non-baseline keys (natural order), the baseline first in each group:
    every block of rows, like every figure panel, reads as one ablation."""
    def key(cid):
        cfg = data.configs[cid]
        others = tuple(_natural(cfg[k]) for k in data.varying if k in cfg and (baseline is None or k != baseline.key))
        if baseline is None:
            return others, False, (0, 0.0, "")
        return others, _canon(cfg.get(baseline.key)) != baseline.value, _natural(cfg.get(baseline.key))
    return sorted(data.configs, key=key)


def _natural(value) -> tuple:
    """Sort key: numbers by value before text, so lr=1e-4 comes before lr=2e-4 and 10 after 9."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, value if isinstance(value, str) else _canon(value))


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
