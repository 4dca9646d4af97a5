"""Per-run curve summaries (docs/protocols.md §7.2): final, best, best_step, the time-averaged value (auc)
and final minus best, signed so that positive is worse. Only the best checkpoint would hide a run
that collapsed late, so every run gets all five."""

from __future__ import annotations

import numpy as np
import pandas as pd


def sorted_curves(records: pd.DataFrame, columns: pd.DataFrame) -> pd.DataFrame:
    curve_cols = columns.loc[columns["kind"] == "curve", "column"]
    cur = records.loc[records["column"].isin(curve_cols), ["run_id", "column", "step", "value"]]
    return cur.sort_values(["column", "run_id", "step"], kind="stable").reset_index(drop=True)


def curve_summaries(records: pd.DataFrame, columns: pd.DataFrame) -> pd.DataFrame:
    """Per run and curve column: final, best, best_step, auc, final_minus_best (positive = worse)."""
    cur = sorted_curves(records, columns)
    if cur.empty:
        return pd.DataFrame(columns=["run_id", "column", "final", "best", "best_step", "auc", "final_minus_best"])
    sign_of = {c: {True: 1.0, False: -1.0}.get(h, np.nan) for c, h in zip(columns["column"], columns["higher_is_better"])}
    sign = cur["column"].map(sign_of).to_numpy(float)
    good = cur["value"].to_numpy() * np.nan_to_num(sign)  # bigger is better in every column
    cur["good"] = np.where(np.isnan(good), -np.inf, good)
    g = cur.groupby(["column", "run_id"], sort=False, observed=True)
    out = g.agg(final=("value", "last"))
    bi = g["good"].idxmax().reindex(out.index).to_numpy().astype(int)
    ok = np.isfinite(cur["good"].to_numpy()[bi]) & ~np.isnan(sign[bi])  # no direction, no best
    out["best"] = np.where(ok, cur["value"].to_numpy()[bi], np.nan)
    out["best_step"] = np.where(ok, cur["step"].to_numpy()[bi], np.nan)
    out["auc"] = _time_average(cur, g)
    sign_by = out.index.get_level_values("column").map(sign_of)
    out["final_minus_best"] = (out["best"] - out["final"]) * np.asarray(sign_by, float)
    return out.reset_index()


def _time_average(cur: pd.DataFrame, g) -> pd.Series:
    """Trapezoid area under value(step) over the step span: the value averaged over training time."""
    same = (cur["column"].to_numpy()[1:] == cur["column"].to_numpy()[:-1]) & \
           (cur["run_id"].to_numpy()[1:] == cur["run_id"].to_numpy()[:-1])
    v, s = cur["value"].to_numpy(), cur["step"].to_numpy().astype(float)
    seg = np.zeros(len(cur))
    seg[1:] = np.where(same, (v[1:] + v[:-1]) / 2 * (s[1:] - s[:-1]), 0.0)
    area = pd.Series(seg, index=cur.index).groupby([cur["column"], cur["run_id"]], sort=False, observed=True).sum()
    span = g["step"].last() - g["step"].first()
    single = g["value"].last()
    return (area / span.replace(0, np.nan)).where(span > 0, single)
