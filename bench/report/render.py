"""The HTML page: one self-contained file (CSS inline, figures and sample grids as base64 PNGs), so
it can be mailed or archived alone. Every string that came from a run folder (config values,
labels, protocol fields, reasons, the grid file) goes through html.escape; the page has no script.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import pandas as pd

from bench.report import stats
from bench.report.model import KIND_TITLE, Report, direction, fmt, fmt_int, method_note, p_text, protocol_fields
from bench.report.render_headline import banner_lines, html_headline, overrides_text

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1180px;color:#1d232b;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #d5dbe3;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:22px 0 6px}.meta{color:#56606d;margin:0 0 12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #e3e7ec;text-align:left;vertical-align:top}
th{background:#f1f4f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.base td{background:#f5f9ff}.badge{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;background:#e8eef7;color:#2f4b73;margin-left:6px}
.warn{background:#fff1c2;color:#7a5200;font-weight:600;border-radius:4px;padding:0 4px;font-size:11px}
.bad{color:#b3261e;font-weight:600}.sig{font-weight:700}
.warnings{background:#fff8e1;border:1px solid #f0d68a;border-radius:6px;padding:8px 14px}
.note{color:#56606d;font-size:12px;max-width:1000px}details{margin:2px 0 4px}summary{cursor:pointer;color:#2f4b73;font-size:12px}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #e3e7ec}figcaption{font-size:12px;color:#56606d}
.samples{display:flex;flex-wrap:wrap;gap:12px}.samples figure{width:220px;margin:0}.samples img{width:220px;image-rendering:pixelated}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px}
body{max-width:1360px}nav.toc{font-size:12px;color:#56606d;margin:0 0 6px}nav.toc a{margin-right:10px;white-space:nowrap;display:inline-block}
.smoke{background:#fde2e1;border:1px solid #f2a19b;color:#8c1d18;border-radius:6px;padding:6px 12px;font-weight:600;margin:6px 0}
section.headline h2{margin-top:12px}section.headline .q{font-weight:400;color:#56606d;font-size:13px;margin-left:10px}
table.headline{font-size:13.5px}table.headline td,table.headline th{padding:3px 10px}table.headline th{text-align:right}
table.headline th:first-child{text-align:left}tr.ceiling td{color:#56606d;font-style:italic;border-top:1px solid #9aa5b1}
p.legend{font-size:11.5px;color:#56606d;margin:0 0 4px}ul.verdicts{margin:4px 0 6px;padding-left:20px}
ul.verdicts li{margin:2px 0}ul.hnotes{font-size:12px;color:#7a5200;margin:2px 0;padding-left:20px}
.hfigs{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}.hfigs figure{margin:6px 0}
.hfigs figure.curve img{max-width:760px}table.sgrid td{padding:2px;border:0}table.sgrid img{width:72px;image-rendering:pixelated}
details.metric{border-top:1px solid #e3e7ec;padding:2px 0}details.metric>summary{font-size:14px;font-weight:600;color:#1d232b}
"""


def e(text) -> str:
    return html.escape(str(text), quote=True)


def _img_src(path: Path, out_dir: Path, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return e(Path(os.path.relpath(path, out_dir)).as_posix())


def _table(headers: list[str], rows: list[list[str]], cls: str, row_classes: list[str] | None = None) -> str:
    """Cells are already escaped HTML; headers are plain text."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(f"<tr{f' class={chr(34)}{c}{chr(34)}' if c else ''}>{''.join(r)}</tr>"
                   for r, c in zip(rows, row_classes or [""] * len(rows)))
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _num(text: str, title: str = "") -> str:
    return f'<td class="num"{f" title={chr(34)}{e(title)}{chr(34)}" if title else ""}>{text}</td>'


def _column_table(report: Report, col, rows, labels) -> str:
    curve = col.kind == "curve"
    headers = ["configuration", "seeds", "mean ± std", "diverged", "collapsed", "95% CI", "median", "IQM"]
    if curve:
        headers += ["best (mean)", "best step", "AUC", "final − best"]
    headers += ["p", "effect"]
    body, classes = [], []
    for r in rows.itertuples(index=False):
        seeds = e(fmt_int(r.n)) + (f' <span class="warn">n&lt;{stats.MIN_TEST_N}</span>' if r.n < stats.MIN_TEST_N else "")
        if r.no_hq:
            seeds += f' <span class="warn" title="no high-quality sample: KL counted as its worst value">{r.no_hq} no HQ</span>'
        cells = [f"<td>{e(r.config)}</td>", _num(seeds, f"{r.n} of {r.runs} finished runs have a value"),
                 _num(f"{e(fmt(r.mean))} ± {e(fmt(r.std))}"),
                 _num(f'<span class="{"bad" if r.diverged else ""}">{e(fmt_int(r.diverged))}</span>'),
                 _num(f'<span class="{"bad" if r.collapsed else ""}">{e(fmt_int(r.collapsed))}</span>'),
                 _num(f"[{e(fmt(r.ci_low))}, {e(fmt(r.ci_high))}]"), _num(e(fmt(r.median))), _num(e(fmt(r.iqm)))]
        if curve:
            cells += [_num(e(fmt(r.best_mean))), _num(e(fmt_int(r.best_step_median))), _num(e(fmt(r.auc_mean))),
                      _num(e(fmt(r.final_minus_best_mean)), "positive = worse at the end than at its best")]
        title = "" if pd.isna(r.p) else f"raw p = {fmt(r.p, 3)}"
        base = labels.get(r.baseline_id, "") if isinstance(r.baseline_id, str) else ""
        cells += [_num(f'<span class="{"sig" if r.significant else ""}">{e(p_text(r))}</span>', title),
                  _num(e(fmt(r.effect, 3)), f"{r.effect_kind} vs {base}" if base else "")]
        body.append(cells)
        classes.append("base" if r.note == "baseline" else "")
    proto = protocol_fields(report.data, col.protocol)
    proto_rows = [[f"<td>{e(k)}</td>", f"<td>{e(v)}</td>"] for k, v in sorted(proto.items())]
    skipped = proto.get("skipped")
    return (f'<section class="column" data-kind="{e(col.kind)}"><h3>{e(col.label or col.name)}'
            f'<span class="badge">{e(col.name)}</span><span class="badge">{e(KIND_TITLE.get(col.kind, col.kind))}</span>'
            f'<span class="badge">{e(direction(col.higher_is_better) or "direction unknown")}</span></h3>'
            + (f'<p class="note bad">not computed: {e(skipped)}</p>' if skipped else "")
            + f'<details><summary>protocol ({len(proto)} fields)</summary>'
            f'{_table(["field", "value"], proto_rows, "protocol")}</details>'
            f'{_table(headers, body, "comparison", classes)}</section>')


def comparison_section(report: Report) -> str:
    parts = [f'<p class="note">{e(method_note(report))}</p>']
    labels = dict(zip(report.view.order, (report.view.label[c] for c in report.view.order))) if report.view else {}
    head = {m.name for h in report.headlines.values() for m in h.metrics}
    for i, (name, group) in enumerate(report.metric_groups()):
        tables = "".join(_column_table(report, col, rows, labels) for col, rows in group)
        tag = "headline" if name in head else ("real-data ceiling" if name.endswith("_real") else "exploratory")
        parts.append(f'<details class="metric" id="metric-{i}"><summary>{e(name)} ({len(group)} '
                     f'table{"s" if len(group) > 1 else ""}, {tag})</summary>{tables}</details>')
    if len(parts) == 1:
        parts.append("<p>No evaluation records: this grid has training losses only.</p>")
    return "".join(parts)


def stability_section(report: Report) -> str:
    st, runs = report.stability, report.data.runs
    flagged = runs.merge(st, on="run_id")
    flagged = flagged[flagged["diverged"] | flagged["collapsed"]].sort_values(["config", "seed"], kind="stable")
    counts = report.rule_counts
    thr = [[f"<td>{e(k)}</td>", f"<td>{e(v)}</td>", f"<td>{e(what)}</td>", _num(e(counts.get(k, 0)))]
           for k, v, what in report.thresholds.rules()]
    rows = [[f"<td>{e(r.run_id)}</td>", f"<td>{e(r.config)}</td>", _num(e(fmt_int(r.seed))), f"<td>{e(r.state)}</td>",
             _num(e(fmt_int(r.diverged_at))), f"<td>{e(r.diverged_by)}</td>", _num(e(fmt_int(r.collapse_onset))),
             f"<td>{e(r.collapse_by)}</td>"] for r in flagged.itertuples(index=False)]
    summary = (f"<p>{int(st['diverged'].sum())} of {len(st)} runs diverged, {int(st['collapsed'].sum())} collapsed "
               "(onset = first evaluation from which the run never recovers).</p>")
    table = _table(["run", "configuration", "seed", "state", "diverged at", "diverged by", "collapse onset", "collapse by"],
                   rows, "stability") if rows else "<p>No run diverged or collapsed.</p>"
    return (summary + _table(["rule", "setting", "flags a run when", "runs flagged"], thr, "thresholds")
            + f"<details><summary>{len(rows)} flagged runs</summary>{table}</details>")


def figures_section(report: Report, out_dir: Path) -> str:
    if not report.figures:
        return "<p>No figures (no curves, losses or final scores recorded).</p>"
    note = ""
    total = report.data.runs["config_id"].nunique()
    if len(report.shown_configs) < total:
        note = (f'<p class="note">Curves, final scores and samples show {len(report.shown_configs)} of {total} '
                "configurations (the first panels in order; raise --max-panels for more); every configuration "
                "is in the tables.</p>")
    figs = "".join(f'<figure><img src="{_img_src(f.path, out_dir, True)}" alt="{e(f.title)}">'
                   f"<figcaption>{e(f.caption)}</figcaption></figure>" for f in report.figures)
    return note + figs


def samples_section(report: Report, out_dir: Path, embed: bool) -> str:
    if not report.samples:
        return "<p>No sample grids in the run folders.</p>"
    items = "".join(f'<figure><img src="{_img_src(s.path, out_dir, embed)}" alt="{e(s.caption)}">'
                    f"<figcaption>{e(s.caption)}</figcaption></figure>" for s in report.samples)
    return f'<div class="samples">{items}</div>'


def headline_section(report: Report, out_dir: Path, embed: bool) -> str:
    question = " ".join(filter(None, [_question(report.data.grid_text), overrides_text(report)]))
    parts = []
    for i, (sid, h) in enumerate(report.headlines.items()):
        parts.append(html_headline(h, i, question if i == 0 else ""))
        figs = []
        fig = report.headline_figures.get(sid)
        if fig is not None:
            figs.append(f'<figure class="curve"><img src="{_img_src(fig.path, out_dir, True)}" alt="{e(fig.title)}">'
                        f"<figcaption>{e(fig.caption)}</figcaption></figure>")
        grid = report.headline_samples.get(sid)
        if grid:
            rows = "".join(f"<tr><td>{e(label)}</td>" + "".join(
                f'<td><img src="{_img_src(s.path, out_dir, embed)}" alt="{e(s.caption)}" title="{e(s.caption)}"></td>'
                for s in samples) + "</tr>" for label, samples in grid)
            figs.append(f'<figure class="hsamples"><table class="sgrid">{rows}</table><figcaption>latest sample grid '
                        "of up to 4 seeds per configuration</figcaption></figure>")
        if figs:
            parts.append(f'<div class="hfigs">{"".join(figs)}</div>')
    return "".join(parts)


def _question(grid_text: str) -> str:
    """The grid file's description, else its leading comment (the question it was written for)."""
    import yaml

    try:
        doc = yaml.safe_load(grid_text or "") or {}
    except yaml.YAMLError:
        doc = {}
    if isinstance(doc, dict) and isinstance(doc.get("description"), str):
        return doc["description"]
    first = []
    for line in (grid_text or "").splitlines():
        if not line.startswith("#"):
            break
        first.append(line.lstrip("# ").strip())
    return " ".join(first).split("? ")[0] + ("?" if "?" in " ".join(first) else "") if first else ""


def toc(report: Report) -> str:
    links = [("published", "published vs measured")] if report.published is not None else []
    links += [("headline-0", "headline")] if report.headlines else []
    links += [("warnings", "warnings")] if report.warnings else []
    links += [("stability", "stability"), ("comparison", "all metrics")]
    links += [(f"metric-{i}", name) for i, (name, _) in enumerate(report.metric_groups())]
    links += [("figures", "figures"), ("samples", "samples"), ("grid", "grid file"), ("versions", "versions")]
    # Spaces between the links: without them the line has no break point and runs off a narrow window.
    return '<nav class="toc">Contents: ' + " ".join(f'<a href="#{e(a)}">{e(t)}</a>' for a, t in links) + "</nav>"


def render_html(report: Report, out_dir: Path, embed_samples: bool = True) -> str:
    data, runs = report.data, report.data.runs
    states = ", ".join(f"{n} {s}" for s, n in runs["state"].value_counts().sort_index().items())
    seeds = runs[runs["finished"]].groupby("config_id").size()
    t = report.training or {}
    steps = ", ".join(str(s) for s in t.get("steps") or []) or "unknown"
    meta = (f"{len(runs)} runs ({states}); {runs['config_id'].nunique()} configurations; "
            f"seeds per configuration: {e(_range(seeds))}; steps trained: {e(steps)}; "
            f"baseline: {e(report.baseline.text if report.baseline else 'none')}"
            + (f"; {e(overrides_text(report))}" if overrides_text(report) else ""))
    banner = "".join(f'<div class="smoke" id="smoke">{e(b)}</div>' for b in banner_lines(report))
    warnings = "".join(f"<li>{e(w)}</li>" for w in report.warnings)
    versions = [[f"<td>{e(k)}</td>", f"<td>{e(v)}</td>"] for k, v in report.versions.items()]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>GAN Bench report: {e(data.name)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        f'<h1>GAN Bench report: {e(data.name)}</h1><p class="meta" id="summary">{meta}</p>{banner}{toc(report)}'
        + published_section(report)
        + headline_section(report, out_dir, embed_samples)
        + (f'<div class="warnings" id="warnings"><b>Warnings</b><ul>{warnings}</ul></div>' if warnings else "")
        + f'<h2 id="stability">Stability and collapse</h2>{stability_section(report)}'
        f'<h2 id="comparison">All metrics across seeds</h2>{comparison_section(report)}'
        f'<h2 id="figures">Figures</h2><details><summary>{len(report.figures)} figures</summary>'
        f'{figures_section(report, out_dir)}</details>'
        f'<h2 id="samples">Samples</h2><details><summary>{len(report.samples)} sample grids</summary>'
        f'{samples_section(report, out_dir, embed_samples)}</details>'
        f'<h2 id="grid">Grid file</h2><pre>{e(data.grid_text or "(no grid.yaml)")}</pre>'
        f'<h2 id="versions">Versions</h2>{_table(["package", "version"], versions, "versions")}'
        "</body></html>")


def published_section(report: Report) -> str:
    """A reproduction preset's first table: the paper's numbers beside ours, its source under it."""
    if report.published is None:
        return ""
    from bench.report.published import to_html

    return f'<h2 id="published">Published vs measured</h2>{to_html(report.published)}'


def _range(counts: pd.Series) -> str:
    if counts.empty:
        return "0"
    lo, hi = int(counts.min()), int(counts.max())
    return str(lo) if lo == hi else f"{lo}–{hi}"
