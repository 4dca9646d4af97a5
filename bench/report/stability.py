"""Per-run stability (PROTOCOLS 7.2): curve summaries, collapse onset, divergence.

Only the best checkpoint would hide a run that collapsed late, so every run gets final, best,
best_step, the time-averaged value (auc) and final minus best, signed so that positive is worse.
Collapse is "worse than its best so far by more than delta, and never recovering"; divergence is a
non-finite loss (status.json) or an eval value past its threshold at every remaining evaluation.
A third detector reads the loss histories: D's loss pinned near zero while G's climbs, the picture
of a discriminator that has won. Every threshold is an option and is printed in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bench.errors import BenchError

_RULE = re.compile(r"^([+-])(\d+(?:\.\d*)?|\.\d+)(%?)$")
_LIMIT = re.compile(r"^(<=|>=|<|>|==)\s*(-?(?:\d+(?:\.\d*)?|\.\d+)(?:e-?\d+)?)$")


@dataclass(frozen=True)
class Thresholds:
    """Detector settings; rule keys match a metric's name or its label up to the first '/'."""

    # Collapse: "-25%" = dropped by 25% of its best so far; "+0.10" = rose by 0.10 (absolute).
    collapse: dict = field(default_factory=lambda: {"modes_covered": "-25%", "msssim_gap": "+0.10"})
    # Divergence from evaluations: the value meets the limit at every eval from then on.
    divergence: dict = field(default_factory=lambda: {"FD@2k": ">300", "modes_covered": "<=0"})
    loss_d_max: float = 0.05  # D loss below this counts as "near zero"
    loss_g_rise: float = 1.0  # G loss must end this much above its lowest value before the onset
    loss_windows: int = 3  # D loss must stay near zero for at least this many logged windows

    def describe(self) -> list[tuple[str, str]]:
        rows = [(f"collapse.{k}", v) for k, v in self.collapse.items()]
        rows += [(f"divergence.{k}", v) for k, v in self.divergence.items()]
        return rows + [("loss.d_max", f"{self.loss_d_max:g}"), ("loss.g_rise", f"{self.loss_g_rise:g}"),
                       ("loss.windows", str(self.loss_windows))]


def parse_thresholds(items: tuple[str, ...] | list[str], base: Thresholds | None = None) -> Thresholds:
    """Options KEY=RULE: collapse.<metric>=-25%|+0.1|off, divergence.<metric>=>300|off, loss.d_max=0.05..."""
    t = base or Thresholds()
    collapse, divergence = dict(t.collapse), dict(t.divergence)
    loss = {"loss.d_max": t.loss_d_max, "loss.g_rise": t.loss_g_rise, "loss.windows": t.loss_windows}
    for item in items:
        key, sep, rule = item.partition("=")
        key, rule = key.strip(), rule.strip()
        if not sep or not rule:
            raise BenchError(f"--threshold {item!r}: expected KEY=RULE, e.g. collapse.modes_covered=-25%")
        group, _, metric = key.partition(".")
        if group in ("collapse", "divergence") and metric:
            target, pattern = (collapse, _RULE) if group == "collapse" else (divergence, _LIMIT)
            if rule == "off":
                target.pop(metric, None)
            elif not pattern.match(rule):
                hint = "-25% or +0.10" if group == "collapse" else ">300 or <=0"
                raise BenchError(f"--threshold {item!r}: rule {rule!r} not understood; write it like {hint}, or off")
            else:
                target[metric] = rule
        elif key in loss:
            try:
                loss[key] = int(rule) if key == "loss.windows" else float(rule)
            except ValueError:
                raise BenchError(f"--threshold {item!r}: {key} takes a number") from None
        else:
            raise BenchError(f"--threshold {item!r}: unknown key {key!r}; valid: collapse.<metric>, "
                             "divergence.<metric>, loss.d_max, loss.g_rise, loss.windows")
    return replace(t, collapse=collapse, divergence=divergence, loss_d_max=loss["loss.d_max"],
                   loss_g_rise=loss["loss.g_rise"], loss_windows=loss["loss.windows"])


def rule_for(rules: dict, name: str, label: str) -> str | None:
    """The rule whose key is the metric name or the label's first part (case-insensitive)."""
    wanted = {name.lower(), label.split("/")[0].lower(), label.lower()}
    for key, rule in rules.items():
        if key.lower() in wanted:
            return rule
    return None


def _sorted_curves(records: pd.DataFrame, columns: pd.DataFrame) -> pd.DataFrame:
    curve_cols = columns.loc[columns["kind"] == "curve", "column"]
    cur = records.loc[records["column"].isin(curve_cols), ["run_id", "column", "step", "value"]]
    return cur.sort_values(["column", "run_id", "step"], kind="stable").reset_index(drop=True)


def curve_summaries(records: pd.DataFrame, columns: pd.DataFrame) -> pd.DataFrame:
    """Per run and curve column: final, best, best_step, auc, final_minus_best (positive = worse)."""
    cur = _sorted_curves(records, columns)
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


def _onset(frame: pd.DataFrame, bad: np.ndarray) -> pd.Series:
    """First step of each (column, run) group from which `bad` holds at every later row."""
    frame = frame.assign(bad=bad)
    rev = frame.iloc[::-1]
    stays = rev.groupby(["column", "run_id"], sort=False, observed=True)["bad"].cummin().iloc[::-1].astype(bool)
    hit = frame.loc[stays, ["column", "run_id", "step"]]
    return hit.groupby(["column", "run_id"], sort=False, observed=True)["step"].first()


def collapse_onsets(records: pd.DataFrame, columns: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """Per run and ruled curve column: collapse onset (first step of a drop that never recovers)."""
    cur = _sorted_curves(records, columns)
    found = []
    for col, name, label, higher in columns.loc[columns["kind"] == "curve",
                                               ["column", "name", "label", "higher_is_better"]].itertuples(index=False):
        rule = rule_for(t.collapse, name, label)
        if rule is None:
            continue
        sign_char, amount, pct = _RULE.match(rule).groups()
        part = cur[cur["column"] == col]
        worse_up = sign_char == "+"  # "+0.10": worse means higher
        v = part["value"].to_numpy() * (-1.0 if worse_up else 1.0)  # bigger = better in this frame
        best = pd.Series(v, index=part.index).groupby(part["run_id"], observed=True).cummax().ffill().to_numpy()
        delta = float(amount) * (np.abs(best) / 100 if pct else 1.0)
        bad = np.isnan(v) | (best - v >= delta - 1e-12)
        onset = _onset(part, bad)
        found += [{"run_id": rid, "column": c, "collapse_onset": int(step), "collapse_by": f"{label} {rule}"}
                  for (c, rid), step in onset.items()]
    return pd.DataFrame(found, columns=["run_id", "column", "collapse_onset", "collapse_by"])


def eval_divergence(records: pd.DataFrame, columns: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """Per run: the first eval step from which a ruled curve stays past its divergence limit."""
    cur = _sorted_curves(records, columns)
    found = []
    for col, name, label in columns.loc[columns["kind"] == "curve", ["column", "name", "label"]].itertuples(index=False):
        rule = rule_for(t.divergence, name, label)
        if rule is None:
            continue
        op, limit = _LIMIT.match(rule).groups()
        part = cur[cur["column"] == col]
        v = part["value"].to_numpy()
        with np.errstate(invalid="ignore"):
            bad = np.isnan(v) | {"<": v < float(limit), "<=": v <= float(limit), ">": v > float(limit),
                                 ">=": v >= float(limit), "==": v == float(limit)}[op]
        found += [{"run_id": rid, "diverged_at": int(step), "diverged_by": f"{label} {rule}"}
                  for (_, rid), step in _onset(part, bad).items()]
    return pd.DataFrame(found, columns=["run_id", "diverged_at", "diverged_by"])


def loss_collapse(records: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """Runs whose D loss sinks below loss_d_max for good while G's loss climbs by loss_g_rise.

    Only runs whose D loss is never negative are read: a Wasserstein critic's loss is unbounded
    below, and zero there means the opposite of a winning discriminator.
    """
    tr = records.loc[(records["kind"] == "train") & records["name"].isin(["loss_d", "loss_g"]),
                     ["run_id", "step", "name", "value"]]
    if tr.empty:
        return pd.DataFrame(columns=["run_id", "collapse_onset", "collapse_by"])
    wide = tr.pivot_table(index=["run_id", "step"], columns="name", values="value", observed=True, dropna=False)
    if "loss_d" not in wide or "loss_g" not in wide:
        return pd.DataFrame(columns=["run_id", "collapse_onset", "collapse_by"])
    wide = wide.reset_index().sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)
    by = wide.groupby("run_id", sort=False, observed=True)
    low = (wide["loss_d"] < t.loss_d_max).astype(int)
    stays = low.iloc[::-1].groupby(wide["run_id"].iloc[::-1], sort=False, observed=True).cummin().iloc[::-1] == 1
    g_low = by["loss_g"].cummin()  # lowest G loss so far, read at the onset
    per_run = pd.DataFrame({"windows": stays.groupby(wide["run_id"], observed=True).sum(),
                            "d_min": by["loss_d"].min(), "g_last": by["loss_g"].last()})
    first = wide[stays].groupby("run_id", sort=False, observed=True).head(1)
    per_run["onset"] = pd.Series(first["step"].to_numpy(), index=first["run_id"].to_numpy())
    per_run["g_low"] = pd.Series(g_low[first.index].to_numpy(), index=first["run_id"].to_numpy())
    hit = per_run[(per_run["d_min"] >= 0) & (per_run["windows"] >= max(t.loss_windows, 1))
                  & (per_run["g_last"] - per_run["g_low"] >= t.loss_g_rise)]
    return pd.DataFrame({"run_id": hit.index.astype(str), "collapse_onset": hit["onset"].astype(int).to_numpy(),
                         "collapse_by": f"loss_d<{t.loss_d_max:g}, loss_g +{t.loss_g_rise:g}"})


def run_stability(runs: pd.DataFrame, records: pd.DataFrame, columns: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """One row per run: diverged, diverged_at, diverged_by, collapsed, collapse_onset, collapse_by."""
    out = runs[["run_id", "state", "status_step"]].copy()
    status_div = out["state"] == "diverged"
    out["diverged_at"] = np.where(status_div, pd.to_numeric(out["status_step"], errors="coerce"), np.nan)
    out["diverged_by"] = np.where(status_div, "non-finite loss", "")
    ev = eval_divergence(records, columns, t).groupby("run_id").first()
    m = out["run_id"].map(ev["diverged_at"]) if len(ev) else pd.Series(np.nan, index=out.index)
    take = m.notna() & (out["diverged_at"].isna() | (m < out["diverged_at"]))
    out.loc[take, "diverged_at"] = m[take]
    out.loc[take, "diverged_by"] = out.loc[take, "run_id"].map(ev["diverged_by"])
    out["diverged"] = out["diverged_at"].notna() | status_div
    col = pd.concat([collapse_onsets(records, columns, t).drop(columns="column"), loss_collapse(records, t)])
    col = col.sort_values("collapse_onset", kind="stable").groupby("run_id").first()
    out["collapse_onset"] = out["run_id"].map(col["collapse_onset"]) if len(col) else np.nan
    out["collapse_by"] = out["run_id"].map(col["collapse_by"]).fillna("") if len(col) else ""
    out["collapsed"] = out["collapse_onset"].notna()
    return out.drop(columns=["state", "status_step"])
