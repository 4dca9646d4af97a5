"""The headline's figure and sample grid per stratum: the primary metric's curve with every
configuration in one panel (mean over seeds, 95% bootstrap band), and the latest sample grid of up
to four seeds per configuration, side by side under the verdict sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import figures
from bench.report.load import sample_files
from bench.report.model import Figure, Report, Sample

MAX_LINES = 12  # configurations drawn in one headline panel; the table keeps every one
SEEDS_SHOWN = 4
TIMELINE_ROWS = 10  # evaluation steps shown in a timeline, evenly spread, the last always among them


def _curve_column(report: Report, h) -> tuple[int, str] | None:
    """The curve column of the stratum's primary metric, else of the first headline metric that has one."""
    cols = report.data.columns
    mine = set(report.table.loc[report.table["stratum"] == h.stratum, "column"]) if len(report.table) else set()
    for m in h.metrics:
        if m.state == "not computed":
            continue
        cand = cols[(cols["name"] == m.name) & (cols["kind"] == "curve") & cols["column"].isin(mine)]
        if len(cand):
            c = cand.iloc[0]
            return int(c["column"]), str(c["label"] or c["name"])
    return None


def headline_figures(report: Report, fig_dir: Path) -> None:
    data, view = report.data, report.view
    finished = data.runs[data.runs["finished"]]
    for sid, h in report.headlines.items():
        found = _curve_column(report, h)
        if found is None:
            continue
        col, label = found
        higher = bool(data.columns.set_index("column").loc[col, "higher_is_better"]) \
            if data.columns.set_index("column").loc[col, "higher_is_better"] is not None else None
        cids = [r.config_id for r in h.rows][:MAX_LINES]
        runs = finished[finished["config_id"].isin(cids)][["run_id", "config_id"]]
        rec = data.records[data.records["column"] == col].merge(runs, on="run_id")
        if rec.empty:
            continue
        rank = {c: i for i, c in enumerate(cids)}
        rec = rec.assign(line=rec["config_id"].map(view.row), panel="all",
                         order=rec["config_id"].map(rank)).sort_values(["order", "run_id", "step"], kind="stable")
        title = f"{h.title}: {label} during training"
        path = figures.curve_figure(fig_dir, rec, title, higher, name=f"headline-{h.title}-{label}")
        more = len(h.rows) - len(cids)
        report.headline_figures[sid] = Figure(
            path, title, f"{label}: mean over seeds per configuration, band = 95% bootstrap interval of the mean; "
            f"x = training step" + (f"; the first {len(cids)} of {len(h.rows)} configurations" if more > 0 else "") + ".",
            "headline")


def headline_samples(report: Report) -> None:
    runs = report.data.runs
    runs = runs[runs["finished"]].sort_values("seed", kind="stable")
    for sid, h in report.headlines.items():
        grid = []
        for r in h.rows[:MAX_LINES]:
            shown = []
            for run in runs[runs["config_id"] == r.config_id].itertuples():
                steps = [f for f in sample_files(run.path) if f.name.startswith("step-")]
                if steps:
                    shown.append(Sample(r.label, run.run_id, steps[-1], f"{r.label}, seed {run.seed}, {steps[-1].stem}"))
                if len(shown) == SEEDS_SHOWN:
                    break
            if shown:
                grid.append((r.label, shown))
        if grid:
            report.headline_samples[sid] = grid


def timeline_frames(run_path) -> pd.DataFrame:
    """The run's timeline strips (samples/timeline/step-NNNNNNN.png): step, path, mtime_ns, size."""
    folder = Path(run_path) / "samples" / "timeline"
    rows = []
    for f in sorted(folder.glob("step-*.png")) if folder.is_dir() else ():
        try:
            st = f.stat()
            rows.append({"step": int(f.stem[5:]), "path": f, "mtime_ns": st.st_mtime_ns, "size": st.st_size})
        except (ValueError, OSError):
            continue  # a foreign name, or a file removed meanwhile
    return pd.DataFrame(rows, columns=["step", "path", "mtime_ns", "size"])


def timeline_figures(report: Report, fig_dir: Path) -> None:
    """One training timeline per shown configuration, from its first finished seed that wrote strips."""
    runs = report.data.runs
    runs = runs[runs["finished"] & runs["config"].isin(report.shown_configs)].sort_values("seed", kind="stable")
    for config in report.shown_configs:
        for r in runs[runs["config"] == config].itertuples():
            frames = timeline_frames(r.path)
            if frames.empty:
                continue
            if len(frames) > TIMELINE_ROWS:
                keep = np.unique(np.linspace(0, len(frames) - 1, TIMELINE_ROWS).round().astype(int))
                frames = frames.iloc[keep]
            title = f"{config}: training timeline, seed {r.seed}"
            path = figures.timeline_figure(fig_dir, frames, title, name=f"timeline-{config}-{r.run_id}")
            report.figures.append(Figure(path, title, f"{title} (run {r.run_id}): the same fixed latents at "
                                         f"{len(frames)} curve evaluations, one row per step (G updates), top to "
                                         "bottom.", "timeline"))
            break


REPRESENTATION = {  # <run>/representation/ files (bench eval --metrics probe writes them) -> caption
    "filters-d.png": "D's first conv layer, one tile per filter (each min-max scaled on its own)",
    "filters-g.png": "G's last conv layer, one tile per input channel (each min-max scaled on its own)",
    "top-activations.png": "the 8 real images that most activate each of 4 channels of D's deepest conv layer "
                           "(spatial max; one row per channel, the strongest first)",
    "top-crops.png": "the same images cropped to the receptive field of the unit that fired most (white past "
                     "the image border): the part of the image the channel responds to",
}


def representation_samples(report: Report) -> None:
    """What the linear probe read, drawn: per shown configuration, the first finished seed with pictures."""
    runs = report.data.runs
    runs = runs[runs["finished"] & runs["config"].isin(report.shown_configs)].sort_values("seed", kind="stable")
    for config in report.shown_configs:
        for r in runs[runs["config"] == config].itertuples():
            files = [Path(r.path) / "representation" / name for name in REPRESENTATION]
            files = [f for f in files if f.is_file()]
            if files:
                report.samples += [Sample(config, r.run_id, f, f"{config}: run {r.run_id}, seed {r.seed}, "
                                          f"{REPRESENTATION[f.name]}") for f in files]
                break


def class_pages(report: Report) -> None:
    """A conditional run's class pages (samples/classes/, one row per class, the same latents in every
    row): the first page of the latest step of the first finished seed per shown configuration."""
    runs = report.data.runs
    runs = runs[runs["finished"] & runs["config"].isin(report.shown_configs)].sort_values("seed", kind="stable")
    for config in report.shown_configs:
        for r in runs[runs["config"] == config].itertuples():
            folder = Path(r.path) / "samples" / "classes"
            pages = sorted(folder.glob("step-*-p*.png")) if folder.is_dir() else []
            if not pages:
                continue
            last = pages[-1].name.rsplit("-p", 1)[0]
            pages = [p for p in pages if p.name.rsplit("-p", 1)[0] == last]
            more = f"; page 1 of {len(pages)}, the others in the run's samples/classes/" if len(pages) > 1 else ""
            report.samples.append(Sample(config, r.run_id, pages[0], f"{config}: run {r.run_id}, seed {r.seed}, "
                                         f"{last}: one row per class, the same latents in every column{more}"))
            break
