"""The headline's rows and words, from the comparison table: "mean [95% CI]" cells at 3 significant
digits, the real-data ceiling line, one sentence per configuration against the baseline (the
difference of means with a stratified bootstrap interval, Holm p, seeds), and the notes that say
what the numbers cannot (not computed, uninformative, no-HQ KL, seeds too few for any Holm rejection).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report import stats
from bench.report.headline import HeadRow
from bench.report.load import GridData
from bench.report.names import View

RELATIVE = {"fd", "fid", "kid"}  # differences in %; modes, shares and KL as absolute differences
DIFF_RESAMPLES = 10_000


def sig3(value: float, digits: int = 3) -> int:
    """Decimals that show `value` at `digits` significant digits (0 for large numbers)."""
    if not np.isfinite(value) or value == 0:
        return digits - 1
    return max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))


def num(value: float, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if decimals == 0:
        exp = int(math.floor(math.log10(abs(value)))) if value else 0
        value = round(value, -(exp - 2)) if exp > 2 else round(value)  # 1327 -> 1330: 3 significant digits
        return f"{value:.0f}".replace("-", "−")
    return f"{value:.{decimals}f}".replace("-", "−")


def interval(mean: float, lo: float, hi: float) -> str:
    """'mean [lo, hi]' with every number at the mean's decimals (3 significant digits)."""
    d = sig3(mean)
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return num(mean, d)
    return f"{num(mean, d)} [{num(lo, d)}, {num(hi, d)}]"


def diff_ci(x: np.ndarray, y: np.ndarray, relative: bool, seed: int = stats.BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """Difference of means x - y (or x/y - 1) with a 95% percentile bootstrap, each group resampled
    on its own (stratified, as rliable does)."""
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, len(x), (DIFF_RESAMPLES, len(x)))].mean(axis=1)
    my = y[rng.integers(0, len(y), (DIFF_RESAMPLES, len(y)))].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = x.mean() / y.mean() - 1 if relative else x.mean() - y.mean()
        boots = mx / my - 1 if relative else mx - my
    if len(x) < 2 and len(y) < 2:
        return float(point), math.nan, math.nan
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return float(point), float(lo), float(hi)


def _diff_text(point: float, lo: float, hi: float, relative: bool, decimals: int) -> str:
    if math.isnan(point):
        return "–"
    if relative:
        d = 1 if max(abs(point), abs(lo) if not math.isnan(lo) else 0) < 0.1 else 0
        f = lambda v: f"{v * 100:+.{d}f}%".replace("-", "−")  # noqa: E731
        return f(point) + ("" if math.isnan(lo) else f" [{f(lo)}, {f(hi)}]")
    f = lambda v: ("+" if v >= 0 else "") + num(v, decimals)  # noqa: E731
    return f(point) + ("" if math.isnan(lo) else f" [{f(lo)}, {f(hi)}]")


def _p_text(row) -> str:
    if isinstance(row.note, str) and row.note:
        return row.note
    if math.isnan(row.p):
        return "no test"
    return f"p = {stats_p(row.p_holm)} (Holm)" if row.family == "headline" else f"p = {stats_p(row.p)} (exploratory)"


def stats_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def _verdict(row, higher: bool | None, point: float) -> str:
    if not bool(row.significant):
        return "not significant" if not math.isnan(row.p) else ""
    if higher is None or math.isnan(point):
        return "significant"
    return "better" if (point > 0) == bool(higher) else "worse"


def min_exact_p(n1: int, n2: int) -> float:
    """Smallest two-sided exact Mann-Whitney p at these sizes: complete separation, 2 / C(n1+n2, n1)."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1)) if n1 and n2 else 1.0


def fill(heads: dict, table: pd.DataFrame, scores: pd.DataFrame, data: GridData, view: View,
         order: list[str], baseline, test: str) -> None:
    """Rows, ceiling line, sentences and notes of every stratum's headline (in place)."""
    runs = data.runs.set_index("run_id")["config_id"]
    scores = scores.assign(config_id=scores["run_id"].astype(str).map(runs))
    values = {k: g.to_numpy(float) for k, g in scores.groupby(["column", "config_id"])["value"]}
    cols = data.columns.set_index("column")
    for sid, h in heads.items():
        t = table[table["stratum"] == sid] if len(table) else table
        by = {(r.column, r.config_id): r for r in t.itertuples(index=False)}
        base = baseline.of(sid) if baseline else None
        h.baseline = view.row.get(base, "") if base else ""
        cids = [c for c in order if view.stratum[c] == sid]
        for m in h.metrics:
            notes = {by[(m.column, c)].note for c in cids if (m.column, c) in by}
            uninf = next((n for n in notes if isinstance(n, str) and n.startswith("uninformative")), None)
            if m.state == "ok" and uninf:
                m.state, m.reason = "uninformative", uninf.split(": ", 1)[1] + " in every configuration"
        fam = t[(t["family"] == "headline") & t["p"].notna()] if len(t) else t
        h.holm_m = len(fam)
        for cid in cids:
            cells, marks, ns = [], [], []
            first = next((by[(m.column, cid)] for m in h.metrics if (m.column, cid) in by), None)
            for m in h.metrics:
                r = by.get((m.column, cid))
                if m.state == "not computed":
                    cells.append("not computed")
                    marks.append("")
                    continue
                if r is None:
                    cells.append("–")
                    marks.append("")
                    continue
                cells.append(interval(r.mean, r.ci_low, r.ci_high) if r.n > 1 else (num(r.mean, sig3(r.mean)) + f" (n={r.n})"))
                marks.append("*" if bool(r.significant) else "")
                ns.append(int(r.n))
            runs_done = int(first.runs) if first is not None else 0
            h.rows.append(HeadRow(cid, view.row[cid], cid == base, cells, marks, max(ns) if ns else 0, runs_done,
                                  int(first.diverged) if first is not None else 0,
                                  int(first.collapsed) if first is not None else 0))
        h.ceiling = _ceiling(h, data, cols, cids, values)
        _sentences(h, by, values, view, cids, base)
        _notes(h, t, data, cids, test)


def _ceiling(h, data: GridData, cols: pd.DataFrame, cids: list[str], values: dict) -> list[str] | None:
    """The real-data line: each metric's `<name>_real` column of the same protocol, or every mode."""
    line, any_value, counts = [], False, set()
    for m in h.metrics:
        cell = "–"
        if m.column is not None:
            me = cols.loc[m.column]
            real = cols[(cols["name"] == f"{m.name}_real") & (cols["protocol"] == me["protocol"])
                        & (cols["kind"] == me["kind"])]
            if len(real):
                x = np.concatenate([values.get((int(real.index[0]), c), np.array([])) for c in cids] or [np.array([])])
                x = x[np.isfinite(x)]
                if len(x):
                    cell, any_value = num(float(x.mean()), sig3(float(x.mean()))), True
                    fields = data.protocols.get(real.iloc[0]["protocol"]) or {}
                    half, n_gen = fields.get("ceiling_n"), fields.get("n_gen")
                    if half and n_gen and half != n_gen:
                        counts.add((int(half), int(n_gen)))
            elif m.name == "modes_covered" and (data.protocols.get(me["protocol"]) or {}).get("modes"):
                cell, any_value = f"{int(data.protocols[me['protocol']]['modes'])} (all)", True
        line.append(cell)
    for half in sorted({h for h, _ in counts}):  # the reference has fewer images than two generated sets would need
        n = " and ".join(f"{g:,}" for g in sorted(g for h2, g in counts if h2 == half))
        h.notes.append(f"Ceiling line: one half of {half:,} real images against the other half, while the columns "
                       f"score {n} generated images (the reference holds too few for two such sets); FD's "
                       f"small-sample bias is larger at {half:,}, so read the line as the reach of real data, not "
                       f"an exact bound at the columns' counts.")
    return line if any_value else None


def _sentences(h, by: dict, values: dict, view: View, cids: list[str], base: str | None) -> None:
    usable = [m for m in h.metrics if m.state == "ok" and m.column is not None]
    if base is None:
        h.sentences.append("No baseline configuration in this stratum: nothing is tested.")
        return
    if not usable:
        h.sentences.append("No headline metric can be compared here (not computed or uninformative; see the notes).")
        return
    for cid in cids:
        if cid == base:
            continue
        parts = []
        for i, m in enumerate(usable):
            r = by.get((m.column, cid))
            x, y = values.get((m.column, cid)), values.get((m.column, base))
            if r is None or x is None or y is None:
                continue
            rel = m.name in RELATIVE and np.isfinite(y).all() and y.mean() > 0
            point, lo, hi = diff_ci(x, y, rel)
            verdict = _verdict(r, m.higher, point)
            text = f"{m.title} {_diff_text(point, lo, hi, rel, sig3(float(np.nanmean(y))))}"
            if i == 0:
                n1, n2 = int(np.isfinite(x).sum()), int(np.isfinite(y).sum())
                seeds = f"{n1} seeds" if n1 == n2 else f"{n1} vs {n2} seeds"
                parts.append(f"{view.row[cid]}: {text} vs {view.row[base]}"
                             + (f" ({verdict})" if verdict else "") + f", {_p_text(r)}, {seeds}")
            elif bool(r.significant):
                parts.append(f"also {text} ({verdict}, {_p_text(r)})")
        if not parts:
            continue
        r0 = next((by.get((m.column, cid)) for m in usable if by.get((m.column, cid)) is not None), None)
        flags = []
        if r0 is not None and r0.diverged:
            flags.append(f"{int(r0.diverged)} of {int(r0.runs)} runs diverged")
        if r0 is not None and r0.collapsed:
            flags.append(f"{int(r0.collapsed)} of {int(r0.runs)} collapsed")
        h.sentences.append("; ".join(parts + flags) + ".")


def _notes(h, t: pd.DataFrame, data: GridData, cids: list[str], test: str) -> None:
    for m in h.metrics:
        if m.state == "not computed":
            h.notes.append(f"{m.title} not computed: {m.reason}.")
        elif m.state == "uninformative":
            h.notes.append(f"{m.title} uninformative for this grid: {m.reason}; not tested.")
    kl = [m for m in h.metrics if m.name == "kl_modes" and m.column is not None]
    for m in kl:
        rows = t[t["column"] == m.column]
        k = int(rows["no_hq"].sum()) if len(rows) else 0
        if k:
            total = int(rows["n"].sum())
            modes = next(((data.protocols.get(p) or {}).get("modes") for p in data.columns.loc[
                data.columns["column"] == m.column, "protocol"]), None)
            worst = f"log {modes} = {math.log(modes):.3g}" if modes else "log K"
            h.notes.append(f"{m.title}: {k} of {total} runs had no high-quality sample (KL undefined); "
                           f"counted as {worst}, the worst value, not dropped.")
    if h.holm_m:
        fam = t[(t["family"] == "headline") & t["p"].notna()]
        h.notes.append(f"* = Holm-corrected p < {stats.ALPHA} against {h.baseline}, over the {h.holm_m} tests of the "
                       "headline metrics in this stratum; every other test in the report is exploratory (unadjusted).")
        if test == "mannwhitney":
            base_n = dict(zip(t.loc[t["note"] == "baseline", "column"], t.loc[t["note"] == "baseline", "n"]))
            floor = min(min_exact_p(int(r.n), int(base_n.get(r.column, r.n))) for r in fam.itertuples())
            if floor > stats.ALPHA / h.holm_m:
                h.notes.append(f"With these seeds the smallest exact Mann-Whitney p is {floor:.2g}, above the "
                               f"{stats.ALPHA}/{h.holm_m} = {stats.ALPHA / h.holm_m:.2g} the first Holm step needs: "
                               "no headline difference can reach significance; add seeds or use --test welch.")
    elif len(cids) > 1 and h.baseline:
        h.notes.append(f"No headline test: fewer than {stats.MIN_TEST_N} seeds per configuration (effect sizes and "
                       "intervals only).")

