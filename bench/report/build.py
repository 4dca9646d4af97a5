"""One grid's report from its folder to files: load, stability, comparison, figures, then each
requested format. The only function here with side effects is write_report; the rest return data.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.report import figures, stats
from bench.report.load import GridData, load_grid_cached, sample_files
from bench.report.model import KIND_TITLE, Figure, Report, Sample
from bench.report.render import render_html
from bench.report.stability import Thresholds, curve_summaries, run_stability
from bench.report.baseline import canon, config_order, parse_baseline
from bench.report.summary import comparison, run_scores
from bench.report.text import csv_frames, render_latex, render_markdown
from bench.runs import save_atomic, write_atomic

FORMATS = ("html", "md", "csv", "tex")


@dataclass(frozen=True)
class Options:
    baseline: tuple[str, ...] = ()  # KEY=VALUE pairs; none = variant=dcgan or the grid file's first axis value
    formats: tuple[str, ...] = FORMATS
    test: str = "mannwhitney"
    thresholds: Thresholds = field(default_factory=Thresholds)
    max_panels: int = 12  # figure panels (settings of the non-baseline keys) drawn; tables keep all
    embed_samples: bool = True  # base64 in the page, or links relative to the report folder


def parse_formats(text: str) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise BenchError(f"--format {text!r}: unknown {', '.join(bad) or '(empty)'}; choose from {','.join(FORMATS)}")
    return wanted


def compute(data: GridData, options: Options) -> Report:
    """All numbers of the report, no files."""
    if options.test not in stats.TESTS:
        raise BenchError(f"--test {options.test!r}: choose from {', '.join(stats.TESTS)}")
    baseline = parse_baseline(options.baseline, data)
    curves = curve_summaries(data.records, data.columns)
    stability = run_stability(data.runs, data.records, data.columns, options.thresholds)
    table = comparison(data, run_scores(data, curves), stability, baseline, options.test)
    report = Report(data, baseline, options.test, options.thresholds, stability, table)
    report.warnings = warnings(report)
    report.versions = versions()
    return report


def warnings(report: Report) -> list[str]:
    data, table, out = report.data, report.table, []
    runs = data.runs
    if len(table):
        few = table[table["n"] < stats.MIN_TEST_N]
        if len(few):
            out.append(f"{len(few)} of {len(table)} table cells rest on fewer than {stats.MIN_TEST_N} seeds "
                       f"(marked n<{stats.MIN_TEST_N}); they get effect sizes and CIs but no p-value.")
    unfinished = runs[~runs["finished"]]
    if len(unfinished):
        states = ", ".join(f"{n} {s}" for s, n in unfinished["state"].value_counts().sort_index().items())
        out.append(f"{len(unfinished)} runs not finished ({states}) are left out of the statistics.")
    for r in runs[runs["state"] == "failed"].head(5).itertuples():
        out.append(f"failed run {r.run_id} ({r.config}, seed {r.seed}): {r.reason or 'no reason recorded'}")
    cols = data.columns
    for (name, label, kind), g in cols.groupby(["name", "label", "kind"]) if len(cols) else ():
        if len(g) > 1:
            protos = [report.data.protocols.get(k, {}) for k in g["protocol"]]
            differ = sorted({k for p in protos for k in p if len({str(q.get(k)) for q in protos}) > 1})
            out.append(f"{label or name} ({KIND_TITLE.get(kind, kind)}) was measured under {len(g)} protocols, "
                       f"shown as separate columns; they differ in: {', '.join(differ)}.")
    if report.baseline is None and runs["config_id"].nunique() > 1:
        out.append("no baseline configuration: no tests.")
    if cols.empty:
        out.append("no evaluation records in this grid: the tables are empty; loss histories only.")
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("gan-bench", "numpy", "pandas", "scipy", "matplotlib", "seaborn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def layout(report: Report) -> pd.DataFrame:
    """Per configuration: its figure panel (every varying key but the baseline's) and its line (the
    baseline key's value), plus how many of its runs diverged or collapsed; in panel, then line order."""
    data, base = report.data, report.baseline
    flagged = data.runs.merge(report.stability, on="run_id")
    flagged = (flagged["diverged"] | flagged["collapsed"]).groupby(flagged["config_id"]).sum()
    rows = []
    for cid in config_order(data, base):
        cfg = data.configs[cid]
        keys = [k for k in data.varying if k in cfg and (base is None or k not in base.keys)]
        line = ", ".join(f"{k}={_text(cfg[k])}" for k in base.keys if k in cfg) if base is not None else ""
        rows.append({"config_id": cid, "panel": ", ".join(f"{k}={_text(cfg[k])}" for k in keys) or "all configurations",
                     "line": line or "all runs", "flagged": int(flagged.get(cid, 0))})
    out = pd.DataFrame(rows)
    labels = data.runs.drop_duplicates("config_id").set_index("config_id")["config"]
    out["config"] = out["config_id"].map(labels)
    return out.reset_index(drop=True)


def _text(value) -> str:
    return value if isinstance(value, str) else canon(value)


def draw_figures(report: Report, fig_dir: Path, max_panels: int) -> None:
    data = report.data
    lay = layout(report)
    panels = list(dict.fromkeys(lay["panel"]))[:max_panels]
    shown = lay[lay["panel"].isin(panels)]
    report.shown_configs = list(shown["config"])
    runs = data.runs[data.runs["finished"]][["run_id", "config_id"]].merge(lay, on="config_id")
    runs["order"] = runs["config_id"].map({c: i for i, c in enumerate(lay["config_id"])})
    rec = data.records.merge(runs[runs["config"].isin(report.shown_configs)], on="run_id")
    rec = rec.sort_values(["order", "run_id", "step"], kind="stable")
    for col in data.columns.itertuples(index=False):
        part = rec[rec["column"] == col.column]
        title = f"{col.label or col.name} ({col.name}, {KIND_TITLE.get(col.kind, col.kind)})"
        if part.empty:
            continue
        if col.kind == "curve":
            path = figures.curve_figure(fig_dir, part, title, col.higher_is_better)
            report.figures.append(Figure(path, title, f"{title}: mean over seeds, band = 95% bootstrap interval of "
                                         "the mean (1,000 resamples); one panel per setting, one line per "
                                         f"{', '.join(report.baseline.keys) if report.baseline else 'configuration'}.",
                                         "curves"))
        else:
            last = part.sort_values("step", kind="stable").groupby("run_id", observed=True).tail(1)
            outcome = last.merge(report.stability, on="run_id")
            outcome["outcome"] = ["diverged" if d else ("collapsed" if c else "ok")
                                  for d, c in zip(outcome["diverged"], outcome["collapsed"])]
            order = {c: i for i, c in enumerate(report.shown_configs)}
            outcome = outcome.sort_values("config", key=lambda s: s.map(order), kind="stable")
            path = figures.final_figure(fig_dir, outcome, title, col.higher_is_better)
            report.figures.append(Figure(path, title, f"{title}: one point per seed, box = quartiles.", "finals"))
    _loss_figure(report, runs, fig_dir)


def _loss_figure(report: Report, runs: pd.DataFrame, fig_dir: Path, panels: int = 12) -> None:
    """Loss histories of the configurations with the most diverged or collapsed runs."""
    lay = layout(report)
    picked = list(lay.sort_values("flagged", ascending=False, kind="stable")["config"][:panels])
    keep = runs[runs["config"].isin(picked)]
    rec = report.data.records
    losses = rec[(rec["kind"] == "train") & rec["name"].isin(["loss_d", "loss_g"])].merge(keep, on="run_id")
    if losses.empty:
        return
    order = {c: i for i, c in enumerate(picked)}
    losses = losses.sort_values("config", key=lambda s: s.map(order), kind="stable")
    marks = keep.merge(report.stability, on="run_id")
    path = figures.loss_figure(fig_dir, losses, marks, panels)
    report.figures.append(Figure(path, "loss histories", f"D and G loss per run (window means), one panel per "
                                 f"configuration, the {len(picked)} with the most diverged or collapsed runs first; "
                                 "dashed = collapse onset, x = divergence step.", "losses"))


def collect_samples(report: Report) -> None:
    """The latest sample grid of the first finished seed of each shown configuration, plus its other figures."""
    runs = report.data.runs
    runs = runs[runs["finished"] & runs["config"].isin(report.shown_configs)]
    order = {c: i for i, c in enumerate(report.shown_configs)}
    for config, g in sorted(runs.sort_values("seed", kind="stable").groupby("config"), key=lambda kv: order[kv[0]]):
        for r in g.itertuples():
            files = sample_files(r.path)
            steps = [f for f in files if f.name.startswith("step-")]
            chosen = steps[-1:] + [f for f in files if not f.name.startswith("step-")]
            if chosen:
                report.samples += [Sample(config, r.run_id, f, f"{config}: run {r.run_id}, seed {r.seed}, {f.stem}")
                                   for f in chosen]
                break


def write_report(grid_dir: Path, out_dir: Path, options: Options = Options()) -> dict[str, float]:
    """Write the requested formats under out_dir; returns seconds per stage, for the speed check."""
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    data, sig = load_grid_cached(grid_dir, out_dir / ".cache" / "grid.pkl")
    times["load"] = time.perf_counter() - t0
    report = compute(data, options)
    times["stats"] = time.perf_counter() - t0 - sum(times.values())
    fig_dir = out_dir / "figures"
    if {"html", "md"} & set(options.formats):
        draw_figures(report, fig_dir, options.max_panels)
        collect_samples(report)
        keep = {f.path.name for f in report.figures}
        for old in fig_dir.glob("*.png") if fig_dir.is_dir() else ():
            if old.name not in keep:  # figures of an earlier state of the results
                old.unlink()
    times["figures"] = time.perf_counter() - t0 - sum(times.values())
    if "html" in options.formats:
        write_atomic(out_dir / "index.html", render_html(report, out_dir, options.embed_samples))
    if "md" in options.formats:
        write_atomic(out_dir / "report.md", render_markdown(report, out_dir))
    if "tex" in options.formats:
        write_atomic(out_dir / "tables.tex", render_latex(report))
    if "csv" in options.formats:
        sig_file = out_dir / ".cache" / "tidy.sig"
        fresh = (out_dir / "tidy.csv").is_file() and sig_file.is_file() and sig_file.read_text() == sig
        for name, frame in csv_frames(report, with_tidy=not fresh).items():
            save_atomic(out_dir / name, lambda tmp, f=frame: f.to_csv(tmp, index=False))
        write_atomic(sig_file, sig)  # tidy.csv depends on the run files alone: rewrite only when they change
    times["write"] = time.perf_counter() - t0 - sum(times.values())
    return times

