"""Several grids side by side, and the notebook entry points.

`bench report A B` writes each grid's own page and, when the grids share configuration keys
(the same variants on digits and on stanford_dogs, say), one comparison under
reports/compare-A-B/: per headline metric, one row per setting of the shared keys, one column per
grid and stratum with the mean, its 95% interval and the rank inside that grid. Values of different
grids were measured under different protocols, so the page compares orderings, never numbers
across columns, and no test crosses grids.

    from bench.report import frame, compare_grids
    df = frame("label_smoothing")                 # every recorded value, one row each, a grid column
    cmp = compare_grids("mlp_vs_dcgan", "seeds")   # the comparison as a tidy table
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.report.verdicts import interval
from bench.report.load import find_grids, load_grid, tidy
from bench.config.axes import canon, text
from bench.report.names import build_view

COLUMNS = ["grid", "stratum", "shared", "configuration", "metric", "label", "kind", "higher_is_better", "n", "mean",
           "ci_low", "ci_high", "rank", "baseline"]


def _results(results) -> Path:
    return Path(results if results is not None else os.environ.get("BENCH_RESULTS", "results"))


def frame(*targets: str | Path, results: str | Path | None = None) -> pd.DataFrame:
    """The tidy table of one or more grids: one row per recorded value with its protocol fields and
    full config (the same rows as tidy.csv), plus a `grid` column. Targets as `bench report` takes them."""
    parts = []
    for grid_dir in find_grids([str(t) for t in targets], _results(results)):
        data = load_grid(grid_dir)
        view = build_view(data.configs, data.varying, data.grid_text)
        data.runs = data.runs.assign(config=data.runs["config_id"].map(view.label))  # the grid's own words
        df = tidy(data)
        df.insert(0, "grid", grid_dir.name)
        parts.append(df)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _row_keys(report) -> list[str]:
    """Config keys the grid's own (non-stratum) axes set, in the grid's order; its varying keys without a grid file."""
    keys: list[str] = []
    for axis in report.view.axes:
        if axis.stratum or len(axis.values) < 2:
            continue
        for v in axis.values:
            for k, _ in v.settings:
                k = k if k.startswith("data.") else k.split(".")[-1]
                if k not in keys and k in report.data.varying:
                    keys.append(k)
    return keys or list(report.view.row_keys)


def comparison_table(reports: list) -> tuple[pd.DataFrame, list[str]]:
    """Long table over grids: one row per grid, stratum, configuration and headline metric."""
    keysets = [_row_keys(r) for r in reports]
    shared = [k for k in keysets[0] if all(k in ks for ks in keysets[1:])]
    rows = []
    for r in reports:
        t = r.table
        for sid, h in r.headlines.items():
            cfgs = [row.config_id for row in h.rows]
            for m in h.metrics:
                if m.column is None:
                    continue
                sub = t[(t["column"] == m.column) & t["config_id"].isin(cfgs)].set_index("config_id")
                sign = -1 if m.higher is False else 1
                ranks = (sign * sub["mean"]).rank(ascending=False, method="min") if len(sub) else sub["mean"]
                for cid in cfgs:
                    cfg = r.data.configs[cid]
                    label = ", ".join(f"{k}={text(cfg[k])}" for k in shared if k in cfg) or "all runs"
                    got = sub.loc[cid] if cid in sub.index else None
                    rows.append({"grid": r.data.name, "stratum": h.title, "shared": label,
                                 "configuration": r.view.row[cid], "metric": m.name, "label": m.title, "kind": m.kind,
                                 "higher_is_better": m.higher,
                                 "n": int(got["n"]) if got is not None else 0,
                                 "mean": float(got["mean"]) if got is not None else float("nan"),
                                 "ci_low": float(got["ci_low"]) if got is not None else float("nan"),
                                 "ci_high": float(got["ci_high"]) if got is not None else float("nan"),
                                 "rank": int(ranks[cid]) if got is not None and ranks[cid] == ranks[cid] else None,
                                 "baseline": bool(r.baseline and r.baseline.is_base(cid)),
                                 "_key": canon([cfg.get(k) for k in shared])})
    out = pd.DataFrame(rows, columns=COLUMNS + ["_key"])
    return out, shared


def compare_grids(*targets: str | Path, results: str | Path | None = None, options=None) -> pd.DataFrame:
    """The comparison of two or more grids as a tidy DataFrame (one row per grid, stratum,
    configuration and headline metric); raises BenchError when the grids share no configuration key."""
    from bench.report.build import Options, compute

    dirs = find_grids([str(t) for t in targets], _results(results))
    reports = [compute(load_grid(d), options or Options()) for d in dirs]
    table, shared = comparison_table(reports)
    if not shared:
        raise BenchError("grids " + ", ".join(d.name for d in dirs) + " share no configuration key; "
                         "a comparison lines up the settings of keys they both vary")
    return table.drop(columns="_key")


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def render_comparison(table: pd.DataFrame, shared: list[str], names: list[str]) -> tuple[str, str]:
    """(HTML page, Markdown) of the comparison: per metric, rows = shared settings, columns = grid/stratum."""
    cols = list(dict.fromkeys(zip(table["grid"], table["stratum"])))
    title = "GAN Bench comparison: " + " vs ".join(names)
    note = (f"Configurations matched on {', '.join(shared)}. Each column is one grid and stratum with its own "
            "protocol: read the ranks (1 = best in that column) and intervals, not differences across columns; "
            "no test crosses grids. Cells: mean [95% CI] (rank).")
    page = [f"<h1>{_e(title)}</h1><p class=\"note\">{_e(note)}</p>"]
    md = [f"# {title}", "", note, ""]
    for metric, part in table.groupby("metric", sort=False):
        label = " / ".join(dict.fromkeys(part["label"]))
        keys = list(dict.fromkeys(part["_key"]))
        shared_label = dict(zip(part["_key"], part["shared"]))
        head = ["configuration"] + [f"{g} ({s})" for g, s in cols]
        body = []
        for key in keys:
            cells = [shared_label[key]]
            for g, s in cols:
                hit = part[(part["_key"] == key) & (part["grid"] == g) & (part["stratum"] == s)]
                if hit.empty:
                    cells.append("–")
                    continue
                r = hit.iloc[0]
                more = f" +{len(hit) - 1} more" if len(hit) > 1 else ""
                cells.append(f"{interval(r['mean'], r['ci_low'], r['ci_high'])} ({r['rank']}){more}")
            body.append(cells)
        page.append(f"<h2>{_e(label)}</h2><table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)
                    + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>"
                                                       for row in body) + "</tbody></table>")
        md += [f"## {label}", "", "| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
        md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body] + [""]
    css = ("body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1360px;padding:0 16px}"
           "table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #e3e7ec;text-align:right}"
           "td:first-child,th:first-child{text-align:left}th{background:#f1f4f8}.note{color:#56606d}")
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
           f"<style>{css}</style></head><body>{''.join(page)}</body></html>")
    return doc, "\n".join(md)


def write_comparison(reports: list, out_root: Path) -> Path | None:
    """reports/compare-A-B/{index.html, compare.md, compare.csv}; None when the grids share no key."""
    from bench.store.runs import save_atomic, write_atomic

    table, shared = comparison_table(reports)
    if not shared:
        return None
    names = [r.data.name for r in reports]
    dest = Path(out_root) / ("compare-" + "-".join(names))
    doc, md = render_comparison(table, shared, names)
    write_atomic(dest / "index.html", doc)
    write_atomic(dest / "compare.md", md)
    save_atomic(dest / "compare.csv", lambda tmp: table.drop(columns="_key").to_csv(tmp, index=False))
    return dest
