"""The answer to the grid's question, per stratum: which metrics are the headline, their table,
and one sentence per configuration against the baseline.

Headline metrics by data family, primary first (the one drawn in the headline figure), are declared
with the metrics (`bench.metrics.facts`: each value's `headline` ranks). Their tests are the stratum's Holm family; every other test is exploratory (summary.py).

KL of modes is undefined when no generated sample is high quality (docs/protocols.md §3). Dropping those
values would shrink n in silence and flatter the worst runs, so fill_no_hq counts them as log K,
the largest KL to uniform over K modes (all mass in one mode), and flags them; the headline says
how many there were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.metrics import facts
from bench.report.load import GridData
from bench.report.names import View

KIND_RANK = {"final": 0, "best": 1, "curve": 2}


def fill_no_hq(records: pd.DataFrame, protocols: dict) -> pd.DataFrame:
    """A copy of records where NaN kl_modes of a K-mode mixture reads log K, flagged in `no_hq`."""
    out = records.copy()
    out["no_hq"] = False
    nan_kl = (out["name"] == "kl_modes") & out["value"].isna() & (out["column"] >= 0)
    if not nan_kl.any():
        return out
    modes = out.loc[nan_kl, "protocol"].map(lambda k: (protocols.get(k) or {}).get("modes")
                                            if "skipped" not in (protocols.get(k) or {}) else None)
    ok = modes.notna() & (pd.to_numeric(modes, errors="coerce") > 1)
    idx = modes[ok].index
    out.loc[idx, "value"] = np.log(pd.to_numeric(modes[ok]).astype(float))
    out.loc[idx, "no_hq"] = True
    return out


@dataclass
class HeadMetric:
    name: str
    title: str  # column header: "FD@10k"
    column: int | None  # data.columns id, None when nothing was recorded
    kind: str = "final"
    higher: bool | None = None
    reason: str = ""  # why there is no value (skipped) or why it is not tested (uninformative)
    state: str = "ok"  # ok | not computed | uninformative


@dataclass
class HeadRow:
    config_id: str
    label: str
    baseline: bool
    cells: list[str]  # "mean [lo, hi]" per metric, mark included
    marks: list[str]  # "*" where Holm-significant against the baseline, else ""
    n: int
    runs: int
    diverged: int
    collapsed: int


@dataclass
class Headline:
    stratum: str
    title: str  # "digits"
    family: str  # a key of facts.FAMILIES, or "unknown"
    metrics: list[HeadMetric]
    rows: list[HeadRow] = field(default_factory=list)
    ceiling: list[str] | None = None  # the real-data line, one cell per metric
    sentences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline: str = ""  # row label of the baseline
    holm_m: int = 0  # tests in the Holm family

    @property
    def family_title(self) -> str:
        return facts.FAMILIES.get(self.family, self.family)

    @property
    def primary(self) -> HeadMetric | None:
        return next((m for m in self.metrics if m.column is not None and m.state != "not computed"), None)


def family_of(names: set[str], labels: dict[str, list[str]]) -> str | None:
    """The stratum's family (a key of facts.FAMILIES), read from the values its runs recorded."""
    if "hq_fraction" in names:
        return "points"
    if any(lab.endswith("/1000") for lab in labels.get("modes_covered", [])):
        return "domain_stacked"
    if "fid" in names:
        return "natural"
    if "fd" in names:
        return "domain"
    return None


def stratum_columns(data: GridData, view: View, scores: pd.DataFrame) -> dict[str, set[int]]:
    """stratum id -> the columns with a recorded value (NaN included) from its runs."""
    cfg = data.runs.set_index("run_id")["config_id"]
    rec = data.records[data.records["column"] >= 0]
    pairs = rec[["run_id", "column"]].drop_duplicates()
    pairs = pairs.assign(stratum=pairs["run_id"].astype(str).map(cfg).map(view.stratum))
    return {s: set(g["column"]) for s, g in pairs.groupby("stratum")}


def select(data: GridData, view: View, scores: pd.DataFrame) -> dict[str, Headline]:
    """Per stratum: its family and one column per headline metric (final checkpoint first)."""
    cols = data.columns.set_index("column")
    out = {}
    per_stratum = stratum_columns(data, view, scores)
    for sid, title in view.strata.items():
        mine = cols.loc[sorted(per_stratum.get(sid, ()))] if per_stratum.get(sid) else cols.iloc[:0]
        names = set(mine["name"])
        labels = {n: list(g["label"]) for n, g in mine.groupby("name")}
        family = family_of(names, labels)
        metrics = []
        for name in facts.headline(family) if family else []:
            cand = mine[mine["name"] == name]
            if family == "natural" and name == "kid":
                cand = cand[cand["label"].str.contains("inception")] if len(cand) else cand
            if cand.empty:
                continue
            skipped = cand["protocol"].map(lambda k: "skipped" in (data.protocols.get(k) or {}))
            rank = pd.DataFrame({"skipped": skipped.astype(int), "kind": cand["kind"].map(KIND_RANK).fillna(3)},
                                index=cand.index).sort_values(["skipped", "kind"], kind="stable")
            col = int(rank.index[0])
            row = cols.loc[col]
            m = HeadMetric(name, row["label"].split("/")[0] or facts.VALUES[name].title, col, row["kind"],
                           row["higher_is_better"])
            if rank["skipped"].iloc[0]:
                reason = (data.protocols.get(row["protocol"]) or {}).get("skipped", "")
                how = facts.computed_by(name, family)
                m.state, m.reason = "not computed", reason + (
                    f"; then run 'bench eval {data.name} --metrics {how}' to fill it in" if how else "")
            metrics.append(m)
        out[sid] = Headline(sid, title, family or "unknown", metrics)
    return out


def family_columns(heads: dict[str, Headline]) -> dict[str, set[int]]:
    return {sid: {m.column for m in h.metrics if m.column is not None and m.state == "ok"} for sid, h in heads.items()}
