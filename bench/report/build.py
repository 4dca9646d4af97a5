"""One grid's report from its folder to files: load, stability, comparison, figures, then each
requested format. The only function here with side effects is write_report; the rest return data.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.report import figures, headline, stats, verdicts, visuals
from bench.report.baseline import config_order, parse_baseline
from bench.report.load import GridData, load_grid_cached, sample_files
from bench.report.model import KIND_TITLE, Figure, Report, Sample
from bench.config.axes import grid_base
from bench.report.names import build_view
from bench.report.render import render_html
from bench.report.curves import curve_summaries
from bench.report.stability import Thresholds, detect
from bench.report.summary import comparison, run_scores
from bench.report.render_headline import render_headline_tex
from bench.report.text import csv_frames, render_latex, render_markdown, tex_escape
from bench.store.runs import save_atomic, write_atomic

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
    view = build_view(data.configs, data.varying, data.grid_text)
    runs = data.runs.copy()
    runs["config"] = runs["config_id"].map(view.label)  # the grid's own words
    data = replace(data, runs=runs, records=headline.fill_no_hq(data.records, data.protocols))
    baseline = parse_baseline(options.baseline, data, view)
    curves = curve_summaries(data.records, data.columns)
    found = detect(data.runs, data.records, data.columns, options.thresholds, data.protocols)
    scores = run_scores(data, curves)
    heads = headline.select(data, view, scores)
    table = comparison(data, scores, found.runs, baseline, view, headline.family_columns(heads), options.test)
    verdicts.fill(heads, table, scores, data, view, config_order(view, baseline), baseline, options.test)
    report = Report(data, baseline, options.test, options.thresholds, found.runs, table, view=view,
                    headlines=heads, scores=scores, rule_counts=found.counts(), training=training(data),
                    published=published_vs_measured(data))
    report.warnings = warnings(report)
    report.versions = versions(data)
    return report


def published_vs_measured(data: GridData) -> pd.DataFrame | None:
    """The grid file's published values beside ours (bench/config/published.py), None without a section."""
    from bench.config.published import from_grid_text
    from bench.report.load import tidy
    from bench.report.published import compare

    reported = from_grid_text(data.grid_text, str(data.path / "grid.yaml"))
    return compare(tidy(data), reported) if reported else None


def training(data: GridData) -> dict:
    """Steps actually trained beside what the grid file asks, and whether this is a smoke run."""
    runs = data.runs
    steps = pd.to_numeric(runs.get("cfg.steps", pd.Series(dtype=float)), errors="coerce").dropna()
    done = pd.to_numeric(runs["status_step"], errors="coerce").dropna()
    asked = grid_base(data.grid_text).get("steps")
    trained = sorted({int(s) for s in steps})
    smoke = data.name.endswith("-smoke") or (isinstance(asked, int) and bool(trained) and max(trained) < asked)
    return {"smoke": smoke, "steps": trained, "grid_steps": asked,
            "reached": (int(done.min()), int(done.max())) if len(done) else None}


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


def versions(data: GridData | None = None) -> dict[str, str]:
    """What the runs recorded (their protocols' library fields), then what is installed here.

    Installed versions come from package metadata: reading torch's version must not import torch."""
    out = {}
    if data is not None:
        libs = sorted({str(p.get("library")) for p in data.protocols.values() if p.get("library")})
        for lib in libs:
            name, _, ver = lib.partition("==")
            out.setdefault(f"{name} (runs)", []).append(ver or lib)
        out = {k: ", ".join(v) for k, v in out.items()}
        threads = sorted({int(n) for n in data.runs["threads"].dropna()})  # every runs table has the column
        if threads:  # training's float sums depend on it (docs/protocols.md §12)
            out["CPU threads per run (runs)"] = ", ".join(map(str, threads))
    out["python"] = platform.python_version()
    for pkg in ("gan-bench", "torch", "torchvision", "torch-fidelity", "numpy", "pandas", "scipy", "matplotlib",
                "seaborn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def layout(report: Report) -> pd.DataFrame:
    """Per configuration: its figure panel (stratum and every row axis but the first) and its line
    (the first row axis), plus how many of its runs diverged or collapsed; in the grid's order."""
    data, view = report.data, report.view
    flagged = data.runs.merge(report.stability, on="run_id")
    flagged = (flagged["diverged"] | flagged["collapsed"]).groupby(flagged["config_id"]).sum()
    rows = []
    for cid in config_order(view, report.baseline):
        line, panel = view.line_and_panel(cid)
        rows.append({"config_id": cid, "panel": panel, "line": line, "config": view.label[cid],
                     "flagged": int(flagged.get(cid, 0))})
    out = pd.DataFrame(rows, columns=["config_id", "panel", "line", "config", "flagged"])
    panel_rank = {p: i for i, p in enumerate(dict.fromkeys(out["panel"]))}
    out["rank"] = out["panel"].map(panel_rank)
    return out.sort_values("rank", kind="stable").drop(columns="rank").reset_index(drop=True)


def _line_axis(report: Report) -> str:
    parts = [p for ps in report.view.parts.values() for p in ps[:1]]
    return parts[0][0] if parts else "configuration"


def draw_figures(report: Report, fig_dir: Path, max_panels: int) -> None:
    data = report.data
    lay = layout(report)
    panels = list(dict.fromkeys(lay["panel"]))[:max_panels]
    shown = lay[lay["panel"].isin(panels)]
    report.shown_configs = list(shown["config"])
    runs = data.runs[data.runs["finished"]][["run_id", "config_id"]].merge(lay, on="config_id")
    runs["order"] = runs["config_id"].map({c: i for i, c in enumerate(lay["config_id"])})
    ev = data.records
    ev = ev.loc[ev["column"].to_numpy() >= 0, ["run_id", "column", "step", "value"]]  # evaluations only
    rec = ev.merge(runs[runs["config"].isin(report.shown_configs)], on="run_id")
    rec = rec.sort_values(["order", "run_id", "step"], kind="stable")
    used: set[str] = set()
    for col in (c for c, _ in report.column_rows()):
        part = rec[rec["column"] == col.column]
        title = f"{col.label or col.name} ({col.name}, {KIND_TITLE.get(col.kind, col.kind)})"
        if part.empty:
            continue
        name = f"{col.kind}-{col.label or col.name}"
        name = next(f"{name}-{i}" if i else name for i in range(len(used) + 1)
                    if figures.file_name(f"{name}-{i}" if i else name) not in used)
        used.add(figures.file_name(name))
        if col.kind == "curve":
            path = figures.curve_figure(fig_dir, part, title, col.higher_is_better, name=name)
            report.figures.append(Figure(path, title, f"{title}: mean over seeds, band = 95% bootstrap interval of "
                                         "the mean (1,000 resamples); one panel per setting, one line per "
                                         f"{_line_axis(report)}.",
                                         "curves"))
        else:
            last = part.sort_values("step", kind="stable").groupby("run_id", observed=True).tail(1)
            outcome = last.merge(report.stability, on="run_id")
            outcome["outcome"] = ["diverged" if d else ("collapsed" if c else "ok")
                                  for d, c in zip(outcome["diverged"], outcome["collapsed"])]
            order = {c: i for i, c in enumerate(report.shown_configs)}
            outcome = outcome.sort_values("config", key=lambda s: s.map(order), kind="stable")
            path = figures.final_figure(fig_dir, outcome, title, col.higher_is_better, name=name)
            report.figures.append(Figure(path, title, f"{title}: one point per seed, box = quartiles.", "finals"))
    _loss_figure(report, runs, fig_dir)


def _loss_figure(report: Report, runs: pd.DataFrame, fig_dir: Path, panels: int = 12) -> None:
    """Loss histories of the configurations with the most diverged or collapsed runs."""
    lay = layout(report)
    picked = list(lay.sort_values("flagged", ascending=False, kind="stable")["config"][:panels])
    keep = runs[runs["config"].isin(picked)]
    rec = report.data.records
    losses = rec[(rec["kind"] == "train") & rec["name"].isin(["loss_d", "loss_g", *figures.GRAD_COLOURS])].merge(
        keep, on="run_id")
    if losses.empty:
        return
    order = {c: i for i, c in enumerate(picked)}
    losses = losses.sort_values("config", key=lambda s: s.map(order), kind="stable")
    marks = keep.merge(report.stability, on="run_id")
    path = figures.loss_figure(fig_dir, losses, marks, panels)
    report.figures.append(Figure(path, "loss histories", f"D and G loss per run (window means), one panel per "
                                 f"configuration, the {len(picked)} with the most diverged or collapsed runs first, "
                                 "with the global L2 norm of D's and G's gradients (window means, log scale) under "
                                 "it where recorded; dashed = collapse onset, x = divergence step.", "losses"))


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


def write_csv(frame: pd.DataFrame, path) -> None:
    """CSV through Arrow's writer (full float precision, much faster than pandas on a large tidy table;
    README, Speed); pandas when a column mixes types Arrow will not convert."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        frame.to_csv(path, index=False)
        return
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
                                      for f in table.schema]))
        pacsv.write_csv(table, str(path))
    except (pa.ArrowException, TypeError, ValueError):
        frame.to_csv(path, index=False)


def write_report(grid_dir: Path, out_dir: Path, options: Options = Options(),
                 keep: list | None = None) -> dict[str, float]:
    """Write the requested formats under out_dir; returns seconds per stage, for the speed check.
    `keep`, when given, receives the computed Report (for a comparison of several grids)."""
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    data, sig = load_grid_cached(grid_dir, out_dir / ".cache" / "grid")
    times["load"] = time.perf_counter() - t0
    report = compute(data, options)
    if keep is not None:
        keep.append(report)
    times["stats"] = time.perf_counter() - t0 - sum(times.values())
    fig_dir = out_dir / "figures"
    if {"html", "md"} & set(options.formats):
        with figures.batch():
            draw_figures(report, fig_dir, options.max_panels)
            visuals.headline_figures(report, fig_dir)
            visuals.timeline_figures(report, fig_dir)
        collect_samples(report)
        visuals.representation_samples(report)
        visuals.class_pages(report)
        visuals.headline_samples(report)
        keep = {f.path.name for f in [*report.figures, *report.headline_figures.values()]}
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
        write_atomic(out_dir / "headline.tex", render_headline_tex(report, tex_escape))
    if "csv" in options.formats:
        sig_file = out_dir / ".cache" / "tidy.sig"
        fresh = (out_dir / "tidy.csv").is_file() and sig_file.is_file() and sig_file.read_text() == sig
        for name, frame in csv_frames(report, with_tidy=not fresh).items():
            save_atomic(out_dir / name, lambda tmp, f=frame: write_csv(f, tmp))
        write_atomic(sig_file, sig)  # tidy.csv depends on the run files alone: rewrite only when they change
    times["write"] = time.perf_counter() - t0 - sum(times.values())
    return times

