"""Per-run stability (docs/protocols.md §7.2): collapse onset and divergence (curve summaries: curves.py).

Every rule is relative to the run and its protocol, never an absolute number that fits one
feature space (FD sits near 1,000 on the built-in digits features and near 300 under Inception):
- divergence: a non-finite loss (status.json), or a ruled curve that is non-finite or worse than the
  run's own first evaluation by a share of that evaluation's distance to the metric's ideal, at
  every evaluation to the end ("start+25%": ends 25% further from ideal than the untrained start);
- collapse, drop: worse than its own best so far by delta and never recovering ("-25%", "+0.10");
- collapse, reach: never reaching a share of the real-data ceiling (modes, coverage, recall), onset
  at the run's first evaluation: a run stuck at 1 of 8 ring modes from the start is collapsed;
- collapse, losses: D's loss pinned near zero while G's climbs, a discriminator that has won;
- collapse, gradients: D's loss pinned near zero while G's gradient norm has sunk to a small share of
  the run's own largest (the vanishing gradient of a discriminator that has won, Arjovsky & Bottou 2017);
Every threshold is an option, and the report prints each rule with the runs it flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.metrics import facts
from bench.report.curves import sorted_curves, curve_summaries  # noqa: F401 (curve_summaries: re-exported)

_RULE = re.compile(r"^([+-])(\d+(?:\.\d*)?|\.\d+)(%?)$")
_LIMIT = re.compile(r"^(<=|>=|<|>|==)\s*(-?(?:\d+(?:\.\d*)?|\.\d+)(?:e-?\d+)?)$")
_START = re.compile(r"^start\+(\d+(?:\.\d*)?|\.\d+)%$")
_SHARE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)%$")


@dataclass(frozen=True)
class Thresholds:
    """Detector settings; rule keys match a metric's name or its label up to the first '/'."""

    # Metric rules, by default those the metrics declare (bench.metrics.facts `rules`).
    # Collapse by drop: "-25%" = dropped by 25% of its best so far; "+0.10" = rose by 0.10 (absolute).
    collapse: dict = field(default_factory=lambda: facts.default_rules("collapse"))
    # Collapse by reach: the run's best never reaches this share of the real-data ceiling.
    reach: dict = field(default_factory=lambda: facts.default_rules("reach"))
    # Divergence from evaluations: "start+25%" (relative to the run's first evaluation), or a limit such as ">300".
    divergence: dict = field(default_factory=lambda: facts.default_rules("divergence"))
    loss_d_max: float = 0.05  # D loss below this counts as "near zero"
    loss_g_rise: float = 1.0  # G loss must end this much above its lowest value before the onset
    loss_windows: int = 3  # D loss must stay near zero for at least this many logged windows
    grad_g_share: float = 0.01  # G grad norm at most this share of the run's own largest counts as vanished

    def describe(self) -> list[tuple[str, str]]:
        rows = [(f"divergence.{k}", v) for k, v in self.divergence.items()]
        rows += [(f"collapse.{k}", v) for k, v in self.collapse.items()]
        rows += [(f"reach.{k}", v) for k, v in self.reach.items()]
        return rows + [("loss.d_max", f"{self.loss_d_max:g}"), ("loss.g_rise", f"{self.loss_g_rise:g}"),
                       ("loss.windows", str(self.loss_windows)), ("grad.g_share", f"{self.grad_g_share:g}")]

    def rules(self) -> list[tuple[str, str, str]]:
        """(rule key as counted in the hits, rule, what it means) for the page."""
        out = [("divergence.status", "non-finite loss", "the loop stopped the run on a NaN or inf loss")]
        for k, v in self.divergence.items():
            what = (f"non-finite, or {v[6:]} further from the ideal than the run's first evaluation, at every "
                    "evaluation to the end" if _START.match(v) else f"value {v} at every evaluation to the end")
            out.append((f"divergence.{k}", v, what))
        for k, v in self.collapse.items():
            what = (f"dropped {v[1:]} below its best so far" if v.startswith("-") else f"rose {v[1:]} above its best "
                    "so far") + ", and never recovered"
            out.append((f"collapse.{k}", v, what))
        for k, v in self.reach.items():
            out.append((f"reach.{k}", v, f"best value never reached {v} of the real-data ceiling (onset: first evaluation)"))
        out.append(("collapse.no_hq", "KL undefined", "no high-quality sample from some evaluation to the end "
                    "(docs/protocols.md §3: KL of modes is NaN, the run is collapsed)"))
        out.append(("loss", f"loss_d<{self.loss_d_max:g}, loss_g +{self.loss_g_rise:g}, {self.loss_windows} windows",
                    "D loss near zero to the end while G loss climbs"))
        out.append(("grads", f"loss_d<{self.loss_d_max:g}, grad_norm_g<{self.grad_g_share:g}x its max, "
                    f"{self.loss_windows} windows", "D loss near zero and G's gradient norm vanished (a share of "
                    "the run's own largest) to the end"))
        return out


def parse_thresholds(items: tuple[str, ...] | list[str], base: Thresholds | None = None) -> Thresholds:
    """Options KEY=RULE: collapse.<metric>=-25%|+0.1|off, reach.<metric>=50%|off,
    divergence.<metric>=start+25%|>300|off, loss.d_max=0.05..."""
    t = base or Thresholds()
    groups = {"collapse": dict(t.collapse), "reach": dict(t.reach), "divergence": dict(t.divergence)}
    loss = {"loss.d_max": t.loss_d_max, "loss.g_rise": t.loss_g_rise, "loss.windows": t.loss_windows,
            "grad.g_share": t.grad_g_share}
    hints = {"collapse": "-25% or +0.10", "reach": "50%", "divergence": "start+25% or >300"}
    for item in items:
        key, sep, rule = item.partition("=")
        key, rule = key.strip(), rule.strip()
        if not sep or not rule:
            raise BenchError(f"--threshold {item!r}: expected KEY=RULE, e.g. collapse.modes_covered=-25%")
        group, _, metric = key.partition(".")
        if group in groups and metric:
            ok = {"collapse": _RULE.match(rule), "reach": _SHARE.match(rule),
                  "divergence": _START.match(rule) or _LIMIT.match(rule)}[group]
            if rule == "off":
                groups[group].pop(metric, None)
            elif not ok:
                raise BenchError(f"--threshold {item!r}: rule {rule!r} not understood; write it like "
                                 f"{hints[group]}, or off")
            else:
                groups[group][metric] = rule
        elif key in loss:
            try:
                loss[key] = int(rule) if key == "loss.windows" else float(rule)
            except ValueError:
                raise BenchError(f"--threshold {item!r}: {key} takes a number") from None
        else:
            raise BenchError(f"--threshold {item!r}: unknown key {key!r}; valid: divergence.<metric>, "
                             "collapse.<metric>, reach.<metric>, loss.d_max, loss.g_rise, loss.windows, grad.g_share")
    return replace(t, collapse=groups["collapse"], reach=groups["reach"], divergence=groups["divergence"],
                   loss_d_max=loss["loss.d_max"], loss_g_rise=loss["loss.g_rise"], loss_windows=loss["loss.windows"],
                   grad_g_share=loss["grad.g_share"])


def rule_for(rules: dict, name: str, label: str) -> str | None:
    """The rule whose key is the metric name or the label's first part (case-insensitive)."""
    wanted = {name.lower(), label.split("/")[0].lower(), label.lower()}
    for key, rule in rules.items():
        if key.lower() in wanted:
            return rule
    return None


def _onset(frame: pd.DataFrame, bad: np.ndarray) -> pd.Series:
    """First step of each (column, run) group from which `bad` holds at every later row."""
    frame = frame.assign(bad=bad)
    rev = frame.iloc[::-1]
    stays = rev.groupby(["column", "run_id"], sort=False, observed=True)["bad"].cummin().iloc[::-1].astype(bool)
    hit = frame.loc[stays, ["column", "run_id", "step"]]
    return hit.groupby(["column", "run_id"], sort=False, observed=True)["step"].first()


def column_ideal(name: str, label: str, proto: dict) -> float | None:
    """What a perfect generator scores on this column: 0 for distances, 1 for shares, every mode for modes."""
    declared = facts.VALUES.get(name)
    if declared is not None and declared.ideal is not None:
        return declared.ideal
    if name == "modes_covered":
        if proto.get("modes"):
            return float(proto["modes"])
        return 1000.0 if label.endswith("/1000") else None
    return None


def collapse_onsets(records: pd.DataFrame, columns: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """Per run and ruled curve column: collapse onset (first step of a drop that never recovers)."""
    cur = sorted_curves(records, columns)
    found = []
    for col, name, label, higher in columns.loc[columns["kind"] == "curve",
                                               ["column", "name", "label", "higher_is_better"]].itertuples(index=False):
        rule = rule_for(t.collapse, name, label)
        if rule is None:
            continue
        key = _rule_key(t.collapse, name, label)
        sign_char, amount, pct = _RULE.match(rule).groups()
        part = cur[cur["column"] == col]
        worse_up = sign_char == "+"  # "+0.10": worse means higher
        v = part["value"].to_numpy() * (-1.0 if worse_up else 1.0)  # bigger = better in this frame
        best = pd.Series(v, index=part.index).groupby(part["run_id"], observed=True).cummax().ffill().to_numpy()
        delta = float(amount) * (np.abs(best) / 100 if pct else 1.0)
        bad = np.isnan(v) | ((best - v >= delta - 1e-12) & (delta > 0))  # a best of 0 has nothing to drop from
        onset = _onset(part, bad)
        found += [{"run_id": rid, "column": c, "collapse_onset": int(step), "collapse_by": f"{label} {rule}",
                   "rule": f"collapse.{key}"} for (c, rid), step in onset.items()]
    return pd.DataFrame(found, columns=["run_id", "column", "collapse_onset", "collapse_by", "rule"])


def _rule_key(rules: dict, name: str, label: str) -> str:
    wanted = {name.lower(), label.split("/")[0].lower(), label.lower()}
    return next(k for k in rules if k.lower() in wanted)


def reach_collapse(records: pd.DataFrame, columns: pd.DataFrame, protocols: dict, t: Thresholds) -> pd.DataFrame:
    """Runs whose best value of a ruled metric (any kind) stays below a share of the real-data ceiling.

    The ceiling is the run's own `<name>_real` measurement when the protocol records one (stacked
    digits: the modes real stacks cover at the same sample count), else the metric's ideal (every
    mode of a 2-D mixture, 1 for coverage and recall). The onset is the run's first evaluation.
    """
    cols = ["run_id", "collapse_onset", "collapse_by", "rule"]
    ev = records[records["column"] >= 0]
    if ev.empty or not t.reach:
        return pd.DataFrame(columns=cols)
    first = {str(k): v for k, v in ev.groupby("run_id", observed=True)["step"].min().items()}
    found = []
    for col, name, label, proto_key in columns[["column", "name", "label", "protocol"]].itertuples(index=False):
        rule = rule_for(t.reach, name, label)
        if rule is None:
            continue
        share = float(_SHARE.match(rule).group(1)) / 100
        part = ev[ev["column"] == col]
        ceiling = column_ideal(name, label, protocols.get(proto_key, {}))
        real = ev[(ev["name"] == f"{name}_real") & (ev["protocol"] == proto_key)]
        per_run_ceiling = {str(k): v for k, v in real.groupby("run_id", observed=True)["value"].mean().items()}
        best = part.groupby("run_id", observed=True)["value"].max()
        for rid, b in zip(best.index.astype(str), best.to_numpy(float)):
            c = per_run_ceiling.get(rid, ceiling)
            if c is None or not np.isfinite(c) or c <= 0:
                continue
            if not (b >= share * c):  # NaN best: never reached it either
                found.append({"run_id": rid, "collapse_onset": int(first[rid]),
                              "collapse_by": f"{label} best {b:.3g} < {rule} of {c:.3g}",
                              "rule": f"reach.{_rule_key(t.reach, name, label)}"})
    return pd.DataFrame(found, columns=cols)


def eval_divergence(records: pd.DataFrame, columns: pd.DataFrame, protocols: dict, t: Thresholds) -> pd.DataFrame:
    """Per run and ruled curve: the first eval step from which the curve stays past its divergence rule.

    "start+X%": non-finite, or further from the ideal than the run's first evaluation by X% of that
    evaluation's own distance to the ideal. The first evaluation is the untrained generator when the
    run evaluates at step 0, else the earliest one (1% of the steps on the auto schedule).
    """
    cur = sorted_curves(records, columns)
    found = []
    for col, name, label, higher, proto_key in columns.loc[
            columns["kind"] == "curve", ["column", "name", "label", "higher_is_better", "protocol"]].itertuples(index=False):
        rule = rule_for(t.divergence, name, label)
        if rule is None:
            continue
        key = _rule_key(t.divergence, name, label)
        part = cur[cur["column"] == col]
        v = part["value"].to_numpy(float)
        m = _START.match(rule)
        if m:
            ideal = column_ideal(name, label, protocols.get(proto_key, {}))
            sign = 1.0 if higher else -1.0  # bigger = better after multiplying
            start = part.groupby("run_id", observed=True)["value"].transform("first").to_numpy(float)
            if ideal is None:
                ideal_arr = np.zeros_like(start)
            else:
                ideal_arr = np.full_like(start, ideal)
            scale = np.abs(start - ideal_arr)
            scale = np.where(scale > 0, scale, np.abs(start) + 1e-12)
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(v) | (sign * (start - v) >= float(m.group(1)) / 100 * scale)
        else:
            op, limit = _LIMIT.match(rule).groups()
            with np.errstate(invalid="ignore"):
                bad = np.isnan(v) | {"<": v < float(limit), "<=": v <= float(limit), ">": v > float(limit),
                                     ">=": v >= float(limit), "==": v == float(limit)}[op]
        found += [{"run_id": rid, "diverged_at": int(step), "diverged_by": f"{label} {rule}", "rule": f"divergence.{key}"}
                  for (_, rid), step in _onset(part, bad).items()]
    return pd.DataFrame(found, columns=["run_id", "diverged_at", "diverged_by", "rule"])


def _training_wide(records: pd.DataFrame, names: list[str]):
    """Training records of `names` as one row per (run, step), sorted; None when a name is missing."""
    tr = records.loc[(records["kind"] == "train") & records["name"].isin(names), ["run_id", "step", "name", "value"]]
    if tr.empty:
        return None
    wide = tr.pivot_table(index=["run_id", "step"], columns="name", values="value", observed=True, dropna=False)
    if any(n not in wide for n in names):
        return None
    return wide.reset_index().sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)


def _to_the_end(wide: pd.DataFrame, bad: pd.Series) -> tuple[pd.Series, pd.DataFrame]:
    """Rows where `bad` holds from there to the run's last window, and per run: how many such windows,
    D's lowest loss and the onset step (the first of those windows)."""
    bad = bad.astype(int)
    stays = bad.iloc[::-1].groupby(wide["run_id"].iloc[::-1], sort=False, observed=True).cummin().iloc[::-1] == 1
    by = wide.groupby("run_id", sort=False, observed=True)
    per_run = pd.DataFrame({"windows": stays.groupby(wide["run_id"], observed=True).sum(), "d_min": by["loss_d"].min()})
    first = wide[stays].groupby("run_id", sort=False, observed=True).head(1)
    per_run["onset"] = pd.Series(first["step"].to_numpy(), index=first["run_id"].to_numpy())
    return first, per_run


def _flagged(hit: pd.DataFrame, by: str, rule: str) -> pd.DataFrame:
    return pd.DataFrame({"run_id": hit.index.astype(str), "collapse_onset": hit["onset"].astype(int).to_numpy(),
                         "collapse_by": by, "rule": rule})


def loss_collapse(records: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """Runs whose D loss sinks below loss_d_max for good while G's loss climbs by loss_g_rise.

    Only runs whose D loss is never negative are read: a Wasserstein critic's loss is unbounded
    below, and zero there means the opposite of a winning discriminator.
    """
    wide = _training_wide(records, ["loss_d", "loss_g"])
    if wide is None:
        return pd.DataFrame(columns=["run_id", "collapse_onset", "collapse_by", "rule"])
    first, per_run = _to_the_end(wide, wide["loss_d"] < t.loss_d_max)
    g_low = wide.groupby("run_id", sort=False, observed=True)["loss_g"].cummin()  # lowest G loss so far
    per_run["g_last"] = wide.groupby("run_id", sort=False, observed=True)["loss_g"].last()
    per_run["g_low"] = pd.Series(g_low[first.index].to_numpy(), index=first["run_id"].to_numpy())
    hit = per_run[(per_run["d_min"] >= 0) & (per_run["windows"] >= max(t.loss_windows, 1))
                  & (per_run["g_last"] - per_run["g_low"] >= t.loss_g_rise)]
    return _flagged(hit, f"loss_d<{t.loss_d_max:g}, loss_g +{t.loss_g_rise:g}", "loss")


def grad_collapse(records: pd.DataFrame, t: Thresholds) -> pd.DataFrame:
    """Runs whose D loss stays below loss_d_max while G's gradient norm stays at most grad_g_share of the
    run's own largest, for at least loss_windows windows to the end. Relative to the run, since a norm's
    size depends on the architecture; runs with a negative D loss (a Wasserstein critic) are not read."""
    wide = _training_wide(records, ["loss_d", "grad_norm_g"])
    if wide is None:
        return pd.DataFrame(columns=["run_id", "collapse_onset", "collapse_by", "rule"])
    peak = wide.groupby("run_id", sort=False, observed=True)["grad_norm_g"].transform("max")
    _, per_run = _to_the_end(wide, (wide["loss_d"] < t.loss_d_max) & (wide["grad_norm_g"] <= t.grad_g_share * peak))
    hit = per_run[(per_run["d_min"] >= 0) & (per_run["windows"] >= max(t.loss_windows, 1))]
    return _flagged(hit, f"loss_d<{t.loss_d_max:g}, grad_norm_g<{t.grad_g_share:g}x max", "grads")


def no_hq_collapse(records: pd.DataFrame) -> pd.DataFrame:
    """Runs with no high-quality sample (kl_modes undefined) from some evaluation to their last."""
    cols = ["run_id", "collapse_onset", "collapse_by", "rule"]
    if "no_hq" not in records:
        return pd.DataFrame(columns=cols)
    kl = records[(records["name"] == "kl_modes") & (records["column"] >= 0)]
    if not kl["no_hq"].any():
        return pd.DataFrame(columns=cols)
    kl = kl.sort_values(["run_id", "step"], kind="stable")
    frame = kl.assign(column=0)[["column", "run_id", "step"]]
    onset = _onset(frame.reset_index(drop=True), kl["no_hq"].to_numpy(bool))
    return pd.DataFrame([{"run_id": str(rid), "collapse_onset": int(step), "collapse_by": "no high-quality sample",
                          "rule": "collapse.no_hq"} for (_, rid), step in onset.items()], columns=cols)


@dataclass
class Stability:
    runs: pd.DataFrame  # one row per run: diverged, diverged_at, diverged_by, collapsed, collapse_onset, collapse_by
    hits: pd.DataFrame  # one row per (run, rule) that fired: run_id, rule, step

    def counts(self) -> dict[str, int]:
        """Runs flagged per rule key (a run may be flagged by several rules)."""
        return self.hits.groupby("rule")["run_id"].nunique().to_dict() if len(self.hits) else {}


def detect(runs: pd.DataFrame, records: pd.DataFrame, columns: pd.DataFrame, t: Thresholds,
           protocols: dict | None = None) -> Stability:
    """Every detector on every run; the per-run row keeps the earliest divergence and collapse."""
    protocols = protocols or {}
    out = runs[["run_id", "state", "status_step"]].copy()
    out["run_id"] = out["run_id"].astype(str)
    status_div = out["state"] == "diverged"
    status_hits = pd.DataFrame({"run_id": out.loc[status_div, "run_id"], "rule": "divergence.status",
                                "step": pd.to_numeric(out.loc[status_div, "status_step"], errors="coerce")})
    out["diverged_at"] = np.where(status_div, pd.to_numeric(out["status_step"], errors="coerce"), np.nan)
    out["diverged_by"] = np.where(status_div, "non-finite loss", "")
    div = eval_divergence(records, columns, protocols, t)
    div["run_id"] = div["run_id"].astype(str)
    ev = div.sort_values("diverged_at", kind="stable").groupby("run_id").first()
    m = out["run_id"].map(ev["diverged_at"]) if len(ev) else pd.Series(np.nan, index=out.index)
    take = m.notna() & (out["diverged_at"].isna() | (m < out["diverged_at"]))
    out.loc[take, "diverged_at"] = m[take]
    out.loc[take, "diverged_by"] = out.loc[take, "run_id"].map(ev["diverged_by"])
    out["diverged"] = out["diverged_at"].notna() | status_div
    col = pd.concat([collapse_onsets(records, columns, t).drop(columns="column"),
                     reach_collapse(records, columns, protocols, t), no_hq_collapse(records), loss_collapse(records, t),
                     grad_collapse(records, t)])
    col["run_id"] = col["run_id"].astype(str)
    first = col.sort_values("collapse_onset", kind="stable").groupby("run_id").first()
    out["collapse_onset"] = out["run_id"].map(first["collapse_onset"]) if len(first) else np.nan
    out["collapse_by"] = out["run_id"].map(first["collapse_by"]).fillna("") if len(first) else ""
    out["collapsed"] = out["collapse_onset"].notna()
    hits = pd.concat([status_hits, div.rename(columns={"diverged_at": "step"})[["run_id", "rule", "step"]],
                      col.rename(columns={"collapse_onset": "step"})[["run_id", "rule", "step"]]], ignore_index=True)
    return Stability(out.drop(columns=["state", "status_step"]), hits)


def run_stability(runs: pd.DataFrame, records: pd.DataFrame, columns: pd.DataFrame, t: Thresholds,
                  protocols: dict | None = None) -> pd.DataFrame:
    """One row per run: diverged, diverged_at, diverged_by, collapsed, collapse_onset, collapse_by."""
    return detect(runs, records, columns, t, protocols).runs
