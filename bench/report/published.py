"""Published vs measured: each value a preset's `published:` section reports (bench/config/published.py),
beside the same configuration's values over seeds, with a verdict, as a table and its renderings.

No torch: report code reads results/ only.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from bench.config.published import Reported, number_text, same_value
from bench.metrics import facts
from bench.store.runs import FINISHED  # runs whose final value counts (diverged ones too)
from bench.report import stats




# ---------------------------------------------------------------- published vs measured

TABLE_COLUMNS = ["source", "row", "metric", "config", "label", "higher_is_better", "published", "published_mean",
                 "published_low", "published_high", "n", "diverged", "ours", "ours_mean", "ours_low",
                 "ours_high", "verdict"]


def compare(tidy, reported: tuple[Reported, ...] | list[Reported]):
    """Published vs measured: one row per reported value (and per column label it matches).

    Contract:
    - `tidy` is bench.report.load.tidy(data): one row per record with `name`, `value`, `kind`, `step`,
      `label`, `run_id`, `seed`, `state` and a `cfg.<key>` column per config key (lists as JSON text).
    - A run counts when its state is done or diverged, and its value is its `final` record of the metric
      (the last step when there are several). Runs are matched on every (key, value) of the row's
      config; a key `VARIANT.key` matches runs of that variant only, `data.key` the dataset option.
    - ours: n seeds, their mean and the 95% percentile-bootstrap CI of the mean (bench.report.stats,
      NaN below 2 seeds); NaN values (a KL with no high-quality sample) are left out of n.
    - Both sides are shown in the paper's unit (a harness fraction times 100 for `unit: "%"`).
    - verdict: "consistent" when the published interval (mean ± printed spread, or the printed range;
      the mean alone when none is printed) and our CI overlap; otherwise "better" or "worse" by the
      metric's direction; "undetermined" when neither side has an interval (no printed spread and
      fewer than 2 seeds); "not measured" when matching runs hold only NaN (a metric that was skipped,
      e.g. a judge below its accuracy floor); "no runs" when no finished run matches.
    Returns a DataFrame with TABLE_COLUMNS, in the order of `reported`.
    """
    import numpy as np
    import pandas as pd


    rows = []
    for rep in reported:
        for label, values, diverged in _measured(tidy, rep):
            x = np.asarray(values, dtype=float) / rep.scale
            d = stats.describe(x)
            n, mean = int(d["n"]), d["mean"]
            lo, hi = (d["ci_low"], d["ci_high"]) if n > 1 else (mean, mean)
            p_lo, p_hi = rep.interval
            found = len(values) > 0
            rows.append({"source": rep.source.cite(), "row": rep.row, "metric": rep.metric,
                         "config": _config_text(rep.config), "label": label,
                         "higher_is_better": facts.direction(rep.metric), "published": rep.text(),
                         "published_mean": rep.mean, "published_low": p_lo, "published_high": p_hi,
                         "n": n, "diverged": diverged,
                         "ours": _ours_text(mean, lo, hi, n, rep.unit) if n or not found else
                         f"not measured ({len(values)} runs, no finite value)",
                         "ours_mean": mean, "ours_low": lo, "ours_high": hi,
                         "verdict": verdict(rep, n, mean, lo, hi) if n or not found else "not measured"})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def verdict(rep: Reported, n: int, mean: float, lo: float, hi: float) -> str:
    """consistent | better | worse | undetermined | no runs (see compare)."""
    if n == 0 or not math.isfinite(mean):
        return "no runs"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo = hi = mean
    p_lo, p_hi = rep.interval
    if p_lo == p_hi and lo == hi:
        return "undetermined"
    if lo <= p_hi and p_lo <= hi:
        return "consistent"
    above = lo > p_hi
    return "better" if above == facts.direction(rep.metric) else "worse"


def _measured(tidy, rep: Reported) -> list[tuple[str, list[float], int]]:
    """(label, final value per matching finished run, diverged runs among them) for each column label."""
    df = tidy[(tidy["name"] == rep.metric) & (tidy["kind"] == "final")]
    if "state" in df:
        df = df[df["state"].isin(FINISHED)]
    for key, want in rep.config:
        scope, dot, name = key.partition(".")
        if dot and scope != "data":  # VARIANT.key: that variant's runs, and their key
            df = df[df.get("cfg.variant", "") == scope] if "cfg.variant" in df else df.iloc[0:0]
            key = name
        column = f"cfg.{key}"
        if column not in df:
            return [("", [], 0)]
        df = df[[same_value(want, _cfg_value(v)) for v in df[column]]]
    if rep.label:
        df = df[df["label"] == rep.label]
    if df.empty:
        return [(rep.label, [], 0)]
    out = []
    for label, part in df.sort_values("step", kind="stable").groupby("label", sort=True):
        last = part.groupby("run_id", observed=True).tail(1)
        diverged = int((last["state"] == "diverged").sum()) if "state" in last else 0
        out.append((str(label), last["value"].tolist(), diverged))
    return out


def _cfg_value(v: Any) -> Any:
    """A tidy cfg.* cell back to the value: lists and mappings are kept there as canonical JSON."""
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _config_text(config: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join(f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in config)


def _ours_text(mean: float, lo: float, hi: float, n: int, unit: str) -> str:
    if n == 0:
        return "no runs"
    ci = f" [{number_text(lo)}, {number_text(hi)}]" if n > 1 and math.isfinite(lo) else ""
    return f"{number_text(mean)}{unit}{ci} (n={n})"


# ---------------------------------------------------------------- rendering

HEADERS = ["Method", "Metric", "Configuration", "Published", "Ours: mean [95% CI]", "Verdict"]


def _cells(r) -> list[str]:
    arrow = "↑" if r.higher_is_better else "↓"
    metric = f"{r.metric} {arrow}" + (f" ({r.label})" if r.label else "")
    return [r.row, metric, r.config, r.published, r.ours, r.verdict]


def _sources(table) -> list[str]:
    return list(dict.fromkeys(table["source"])) if len(table) else []


NOTE = ("Published: mean ± spread as printed. Ours: mean over training seeds of the final checkpoint's value "
        "with a 95% percentile-bootstrap CI. consistent: the two intervals overlap; better / worse: ours lies "
        "entirely on that side, by the metric's direction.")


def to_markdown(table) -> str:
    """A Markdown table with the sources cited under it."""
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * len(HEADERS)) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in _cells(r)) + " |" for r in table.itertuples(index=False)]
    lines += ["", esc(NOTE), ""] + [f"Source: {esc(s)}" for s in _sources(table)]
    return "\n".join(lines) + "\n"


def to_html(table) -> str:
    """An HTML fragment: the table, then a note and the sources under it (<p class="source">)."""
    e = html.escape
    out = ['<table class="published">', "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADERS) + "</tr></thead>",
           "<tbody>"]
    for r in table.itertuples(index=False):
        cells = _cells(r)
        out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells[:-1])
                   + f'<td class="verdict {e(r.verdict.replace(" ", "-"))}">{e(cells[-1])}</td></tr>')
    out += ["</tbody>", "</table>", f'<p class="note">{e(NOTE)}</p>']
    out += [f'<p class="source">Source: {e(s)}</p>' for s in _sources(table)]
    return "\n".join(out) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "↑": r"$\uparrow$",
        "↓": r"$\downarrow$"}


def tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(table, caption: str = "Published results beside ours.") -> str:
    """A booktabs table environment; the sources are cited in the caption's second sentence."""
    sources = " ".join(_sources(table))
    out = ["\\begin{table}[ht]", "\\centering\\small",
           f"\\caption{{{tex(caption)} {tex(NOTE)} Source: {tex(sources)}}}",
           "\\begin{tabular}{lllllr}", "\\toprule", " & ".join(tex(h) for h in HEADERS) + " \\\\", "\\midrule"]
    out += [" & ".join(tex(c) for c in _cells(r)) + " \\\\" for r in table.itertuples(index=False)]
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"
