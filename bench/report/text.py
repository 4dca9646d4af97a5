"""Markdown summary, LaTeX tables and CSV files of one report.

The CSVs keep full float precision (they are data); Markdown and LaTeX use the same 4-digit
formatting as the page. LaTeX tables use booktabs rules and escape every special character, so a
config value such as `lr_d=2e-4` or a label `FD@2k/train` compiles as written. Markdown gets every
string that comes from a record or a config through md_escape, as the page escapes its HTML.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from bench.report import stats
from bench.report.load import tidy
from bench.report.model import md_escape
from bench.report.model import KIND_TITLE, Report, direction, fmt, fmt_int, method_note, p_text
from bench.report.render_headline import banner_lines, md_headline, overrides_text

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
        "±": r"$\pm$", "–": "--", "−": "$-$", "↑": r"$\uparrow$", "↓": r"$\downarrow$"}


def tex_escape(text) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


# What a Markdown renderer could read as markup in a record- or config-derived string: a `<` or `&`
# that can start an HTML tag, comment or entity (a bare `n<5` cannot, and stays readable), a table
# cell border, a code span, a backslash, the `](` / `][` of a link, a line break.
def _cells(r, curve: bool) -> list[str]:
    seeds = fmt_int(r.n) + (f" (n<{stats.MIN_TEST_N})" if r.n < stats.MIN_TEST_N else "")
    out = [r.config, seeds, f"{fmt(r.mean)} ± {fmt(r.std)}", fmt_int(r.diverged), fmt_int(r.collapsed),
           f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]", fmt(r.median)]
    if curve:
        out += [fmt(r.best_mean), fmt_int(r.best_step_median), fmt(r.final_minus_best_mean)]
    return out + [p_text(r), fmt(r.effect, 3)]


def _headers(curve: bool) -> list[str]:
    out = ["configuration", "seeds", "mean ± std", "div.", "coll.", "95% CI", "median"]
    if curve:
        out += ["best", "best step", "final − best"]
    return out + ["p (Holm)", "effect"]


def render_markdown(report: Report, out_dir: Path) -> str:
    data = report.data
    lines = [f"# GAN Bench report: {md_escape(data.name)}", "",
             f"{len(data.runs)} runs, {data.runs['config_id'].nunique()} configurations, baseline "
             f"`{md_escape(report.baseline.text) if report.baseline else 'none'}`. Full page: index.html.", ""]
    lines += [md_escape(overrides_text(report)), ""] if overrides_text(report) else []
    lines += [f"**{md_escape(b)}**" for b in banner_lines(report)] + [""] if banner_lines(report) else []
    if report.published is not None:
        from bench.report.published import to_markdown

        lines += ["## Published vs measured", "", to_markdown(report.published, md_escape), ""]
    for h in report.headlines.values():
        lines += md_headline(h, md_escape)
    if report.warnings:
        lines += ["**Warnings**", ""] + [f"- {md_escape(w)}" for w in report.warnings] + [""]
    lines += [md_escape(method_note(report)), ""]
    for col, rows in report.column_rows():
        curve = col.kind == "curve"
        lines += [f"## {md_escape(col.label or col.name)} ({md_escape(col.name)}, "
                  f"{md_escape(KIND_TITLE.get(col.kind, col.kind))}, "
                  f"{direction(col.higher_is_better) or 'direction unknown'})", ""]
        heads = _headers(curve)
        lines += ["| " + " | ".join(heads) + " |", "|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|"]
        lines += ["| " + " | ".join(md_escape(c) for c in _cells(r, curve)) + " |" for r in rows.itertuples(index=False)]
        lines.append("")
    st = report.stability
    lines += ["## Stability", "", f"{int(st['diverged'].sum())} of {len(st)} runs diverged, "
              f"{int(st['collapsed'].sum())} collapsed (onset = first evaluation from which the run never recovers).",
              "", "| rule | setting | flags a run when | runs flagged |", "|---|---|---|---:|"]
    lines += [f"| `{md_escape(k)}` | `{md_escape(v)}` | {md_escape(what)} | {report.rule_counts.get(k, 0)} |"
              for k, v, what in report.thresholds.rules()] + [""]
    if report.figures:
        lines += ["## Figures", ""] + [f"![{md_escape(f.title)}]({quote(Path(os.path.relpath(f.path, out_dir)).as_posix())})"
                                       for f in report.figures] + [""]
    return "\n".join(lines)


def render_latex(report: Report) -> str:
    """One table environment per metric column; needs \\usepackage{booktabs}."""
    out = [f"% GAN Bench report: {tex_escape(report.data.name)}; requires \\usepackage{{booktabs}}",
           f"% {tex_escape(method_note(report))}", ""]
    if report.published is not None:
        from bench.report.published import to_latex

        out += [to_latex(report.published), ""]
    for col, rows in report.column_rows():
        curve = col.kind == "curve"
        heads = _headers(curve)
        n_min = int(rows["n"].min()) if len(rows) else 0
        caption = (f"{col.label or col.name} ({KIND_TITLE.get(col.kind, col.kind)}, "
                   f"{direction(col.higher_is_better) or 'direction unknown'}).")
        if n_min < stats.MIN_TEST_N:
            caption += f" Some cells rest on fewer than {stats.MIN_TEST_N} seeds (n<{stats.MIN_TEST_N}): no test there."
        out += ["\\begin{table}[ht]", "\\centering\\small", f"\\caption{{{tex_escape(caption)}}}",
                "\\begin{tabular}{l" + "r" * (len(heads) - 1) + "}", "\\toprule",
                " & ".join(tex_escape(h) for h in heads) + " \\\\", "\\midrule"]
        out += [" & ".join(tex_escape(c) for c in _cells(r, curve)) + " \\\\" for r in rows.itertuples(index=False)]
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out)


def comparison_csv(report: Report) -> pd.DataFrame:
    """The comparison rows with their column identity and the protocol as JSON."""
    cols = report.data.columns.rename(columns={"name": "metric"})
    out = report.table.merge(cols, on="column", how="left")
    out["protocol"] = out["protocol"].map(lambda k: json.dumps(report.data.protocols.get(k, {}), sort_keys=True))
    first = ["metric", "label", "kind", "config", "config_id", "runs", "n", "mean", "std", "ci_low", "ci_high"]
    return out[first + [c for c in out.columns if c not in first and c != "column"]]


def csv_frames(report: Report, with_tidy: bool = True) -> dict[str, pd.DataFrame]:
    runs = report.data.runs.merge(report.stability, on="run_id", how="left")
    out = {"runs.csv": runs, "comparison.csv": comparison_csv(report)}
    return {"tidy.csv": tidy(report.data), **out} if with_tidy else out
