"""The headline of each stratum in HTML, Markdown and LaTeX, from one Headline object, so the three
formats print the same strings: configurations as rows (baseline first), headline metrics as
columns with their better direction, a mark where Holm-corrected p < 0.05 against the baseline, the
real-data ceiling line, then one sentence per configuration."""

from __future__ import annotations

import html

from bench.report.headline import Headline
from bench.report.model import Report

ARROW = {True: "↑", False: "↓", None: ""}
COUNTS = ["seeds", "diverged", "collapsed"]


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def headers(h: Headline) -> list[str]:
    return ["configuration"] + [f"{m.title} {ARROW[m.higher]}".strip() for m in h.metrics] + COUNTS


def rows(h: Headline) -> list[tuple[str, list[str], str]]:
    """(kind: base | row | ceiling, cells as plain text, mark-free) for every line of the table."""
    out = []
    for r in h.rows:
        name = r.label + (" (baseline)" if r.baseline else "")
        cells = [c + m for c, m in zip(r.cells, r.marks)]
        out.append(("base" if r.baseline else "row", [name] + cells + [str(r.n), str(r.diverged), str(r.collapsed)]))
    if h.ceiling:
        out.append(("ceiling", ["real data (ceiling)"] + list(h.ceiling) + ["", "", ""]))
    return out


def legend(h: Headline) -> str:
    return ("mean [95% bootstrap CI] over seeds at the final checkpoint unless the header says otherwise; "
            "↓ lower is better, ↑ higher is better; * Holm-corrected p < 0.05 against the baseline.")


def html_headline(h: Headline, index: int, question: str = "") -> str:
    head = "".join(f"<th>{_e(x)}</th>" for x in headers(h))
    body = []
    for kind, cells in rows(h):
        tds = []
        for i, c in enumerate(cells):
            if i == 0:
                tds.append(f"<td>{_e(c)}</td>")
                continue
            text = _e(c)
            if c.endswith("*"):
                text = f'{_e(c[:-1])}<span class="sig" title="Holm-corrected p &lt; 0.05 vs baseline">*</span>'
            bad = ' class="num bad"' if i >= len(h.metrics) + 2 and c not in ("", "0") else ' class="num"'
            tds.append(f"<td{bad}>{text}</td>")
        body.append(f'<tr class="{kind}">{"".join(tds)}</tr>')
    notes = "".join(f"<li>{_e(n)}</li>" for n in h.notes)
    sentences = "".join(f"<li>{_e(s)}</li>" for s in h.sentences)
    kinds = {m.kind for m in h.metrics}
    kind_note = "" if kinds <= {"final"} else " Columns marked (curve) are the last in-training evaluation."
    return (f'<section class="headline" id="headline-{index}"><h2>{_e(h.title)}'
            f'<span class="badge">{_e(h.family_title)}</span>'
            + (f'<span class="q">{_e(question)}</span>' if question else "") + "</h2>"
            f'<table class="headline"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f'<p class="legend">{_e(legend(h) + kind_note)}</p>'
            f'<ul class="verdicts">{sentences}</ul>'
            + (f'<ul class="hnotes">{notes}</ul>' if notes else "") + "</section>")


def md_headline(h: Headline, md_cell) -> list[str]:
    heads = headers(h)
    lines = [f"## {md_cell(h.title)} ({h.family_title})", "",
             "| " + " | ".join(md_cell(x) for x in heads) + " |", "|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|"]
    for kind, cells in rows(h):
        cells = [f"**{md_cell(cells[0])}**" if kind == "base" else (f"*{md_cell(cells[0])}*" if kind == "ceiling"
                                                                   else md_cell(cells[0]))] + \
                [md_cell(c[:-1]) + "\\*" if c.endswith("*") else md_cell(c) for c in cells[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", md_cell(legend(h)).replace("*", "\\*"), ""] + [f"- {md_cell(s)}" for s in h.sentences] + [""]
    if h.notes:
        lines += [f"> {md_cell(n)}".replace("*", "\\*") for n in h.notes] + [""]
    return lines


def tex_headline(h: Headline, tex_escape, grid: str) -> list[str]:
    """One booktabs table; the ceiling line below a rule, the baseline's name in the caption."""
    plain = tex_escape
    tex_escape = lambda x: plain(x).replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$")  # noqa: E731
    heads = headers(h)
    out = ["\\begin{table}[ht]", "\\centering\\small",
           f"\\caption{{{tex_escape(f'{grid}, {h.title}: ' + legend(h) + (f' Baseline: {h.baseline}.' if h.baseline else ''))}}}",
           "\\begin{tabular}{l" + "r" * (len(heads) - 1) + "}", "\\toprule",
           " & ".join(tex_escape(x) for x in heads) + " \\\\", "\\midrule"]
    for kind, cells in rows(h):
        if kind == "ceiling":
            out.append("\\midrule")
        out.append(" & ".join(tex_escape(c) for c in cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return out


def banner_lines(report: Report) -> list[str]:
    """The smoke warning, the steps actually trained and any damaged run folder, for every format's first lines."""
    t = report.training or {}
    out = []
    steps = t.get("steps") or []
    trained = ", ".join(str(s) for s in steps) or "unknown"
    asked = t.get("grid_steps")
    if t.get("smoke"):
        out.append(f"Smoke run: not meaningful. Runs trained {trained} steps"
                   + (f" (the grid file asks for {asked})" if asked and asked not in steps else "")
                   + "; these numbers check the pipeline, they do not answer the grid's question.")
    for rid, why in (report.data.damaged or {}).items():  # left out of every table, so said up front
        out.append(f"Damaged run {rid}, left out of this report: {why}")
    return out


def render_headline_tex(report: Report, tex_escape) -> str:
    """The paper-ready table: the headline of each stratum with booktabs (\\usepackage{booktabs})."""
    out = [f"% GAN Bench headline: {tex_escape(report.data.name)}; requires \\usepackage{{booktabs}}", ""]
    for h in report.headlines.values():
        out += tex_headline(h, tex_escape, report.data.name)
    return "\n".join(out)
