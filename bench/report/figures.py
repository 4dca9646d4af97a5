"""Figures as PNG files, drawn once: each file is named after what it shows (`curve-FD@2k-train.png`,
`headline-digits-FD@2k.png`), and a hash of the data and options it shows is kept beside it in
.keys/, so a second report over unchanged results reuses it without drawing (and a changed run
redraws only the figures that show it).

Agg backend, no display. Mathtext is off: a config label with a '$' is text, not a formula.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing as mp
import os
import re
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.store.runs import save_atomic, write_atomic  # noqa: E402

STYLE = {"text.parse_math": False, "figure.dpi": 100, "savefig.dpi": 100, "axes.titlesize": 9,
         "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 7}
BAND_RESAMPLES = 1_000
BAND_SEED = 0
OUTCOME_COLOURS = {"ok": "#1f77b4", "collapsed": "#d62728", "diverged": "black"}
GRAD_COLOURS = {"grad_norm_d": "#2ca02c", "grad_norm_g": "#9467bd"}  # drawn under the losses
FIGURE_VERSION = "8"  # bump when a drawing changes, so cached files are redrawn


def _key(kind: str, frame: pd.DataFrame, *extra) -> str:
    h = hashlib.sha256(f"{FIGURE_VERSION}|{kind}|{extra!r}|{list(frame.columns)}".encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")


def file_name(text: str) -> str:
    """A readable file name from a title: 'FD@2k/train/digits-mlp' -> 'FD@2k-train-digits-mlp.png'."""
    return (_UNSAFE.sub("-", text).strip("-.")[:120] or "figure") + ".png"


@dataclass
class Drawing:
    """How figures are produced. The defaults are the fast path; `legacy()` is the path before it
    (a second layout pass for bbox_inches="tight", zlib level 6, one process), kept so the report
    benchmark can time both in one run (python -m bench.report.benchmark)."""

    tight: bool = False  # margins are set by hand in every figure, so no second layout pass
    compress_level: int = 1  # PNG zlib level: 1 writes several times faster than 6, files ~30% larger
    jobs: int = 2  # figures drawn in parallel by forked workers (Agg is per process); 1 = in this process

    @classmethod
    def legacy(cls) -> "Drawing":
        return cls(tight=True, compress_level=6, jobs=1)


DRAWING = Drawing()
_pending: list | None = None  # (path, stamp, key, draw) queued inside batch()


def _render(path: Path, stamp: Path, key: str, draw: Callable[[], plt.Figure], how: Drawing) -> None:
    with plt.rc_context(STYLE):
        fig = draw()
        try:
            save_atomic(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight" if how.tight else None,
                                                      pil_kwargs={"compress_level": how.compress_level}))
        finally:
            plt.close(fig)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(stamp, key)


def _cached(out_dir: Path, name: str, key: str, draw: Callable[[], plt.Figure]) -> Path:
    """Draw and save only when the file is missing or was drawn from other data (its .keys/ entry);
    inside batch() the drawing is queued and done when the batch closes."""
    path = out_dir / name
    stamp = out_dir / ".keys" / (name + ".key")
    if not (path.is_file() and stamp.is_file() and stamp.read_text() == key):
        if _pending is not None:
            _pending.append((path, stamp, key, draw))
        else:
            _render(path, stamp, key, draw, DRAWING)
    return path


def _run_job(i: int) -> None:
    path, stamp, key, draw = _pending[i]
    _render(path, stamp, key, draw, DRAWING)


@contextlib.contextmanager
def batch(how: Drawing | None = None):
    """Queue every figure drawn inside, then draw them, in DRAWING.jobs forked processes when there
    are several (each worker inherits the queued closures at fork time: nothing is pickled)."""
    global _pending, DRAWING
    old, _pending = DRAWING, []
    DRAWING = how or DRAWING
    try:
        yield
        jobs = min(DRAWING.jobs, len(_pending), os.cpu_count() or 1)
        if jobs > 1 and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(jobs) as pool:
                pool.map_async(_run_job, range(len(_pending)), chunksize=1).get(timeout=600)
        else:
            for i in range(len(_pending)):
                _run_job(i)
    finally:
        _pending, DRAWING = None, old


def _wrap(text: str, width: int = 48) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _hide_unused(axes: np.ndarray, used: int) -> None:
    """Hide empty panels of a grid, and give x tick labels to panels left with no panel below them."""
    rows, cols = axes.shape
    for i, ax in enumerate(axes.flat):
        if i >= used:
            ax.set_visible(False)
        elif i + cols >= used:
            ax.xaxis.set_tick_params(labelbottom=True)


def mean_band(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs (rows) per step and a 95% percentile bootstrap band over runs, NaN-aware."""
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(matrix, axis=0)
            if len(matrix) < 2:
                return mean, mean * np.nan, mean * np.nan
            idx = np.random.default_rng(BAND_SEED).integers(0, len(matrix), (BAND_RESAMPLES, len(matrix)))
            boots = np.nanmean(matrix[idx], axis=1)
            lo, hi = np.nanpercentile(boots, [2.5, 97.5], axis=0)
    return mean, lo, hi


LOG_SPAN = 20.0  # a curve whose positive values span more than this ratio is drawn on a log axis


def wants_log_axis(values: np.ndarray) -> bool:
    """True when every finite value is positive and they span more than LOG_SPAN (FD falling from
    1,700 at step 50 to 37 at the end): on a linear axis the end, where configurations differ, is flat."""
    v = values[np.isfinite(values)]
    return bool(len(v)) and bool((v > 0).all()) and v.max() / v.min() > LOG_SPAN


def curve_figure(out_dir: Path, curves: pd.DataFrame, title: str, higher: bool | None, name: str = "") -> Path:
    """Mean over seeds with its 95% bootstrap band, one line per value of the baseline key, one panel
    per setting of the other keys: each panel is one ablation (baseline vs alternatives, all else equal).

    curves: panel, line, run_id, step, value.
    """
    frame = curves[["panel", "line", "run_id", "step", "value"]].astype({"run_id": str})
    panels = list(dict.fromkeys(frame["panel"]))
    lines = list(dict.fromkeys(frame["line"]))

    def draw():
        cols = min(3, len(panels))
        rows = -(-len(panels) // cols)
        w, h = (7.5 if cols == 1 else 4.3 * cols), (3.6 if rows == 1 else 2.7 * rows)
        legend_in = 0.45 + 0.052 * max([len(line) for k in lines for line in _wrap(k, 40).splitlines()] or [4])
        w += legend_in  # the legend gets its own strip on the right: no second layout pass to find it
        fig, axes = plt.subplots(rows, cols, figsize=(w, h), squeeze=False, sharex=True, sharey=True)
        palette = dict(zip(lines, sns.color_palette("tab10" if len(lines) <= 10 else "husl", len(lines))))
        for ax, panel in zip(axes.flat, panels):
            for line, part in frame[frame["panel"] == panel].groupby("line", sort=False):
                wide = part.drop_duplicates(["run_id", "step"], keep="last").set_index(["run_id", "step"])["value"].unstack()
                mean, lo, hi = mean_band(wide.to_numpy(float))
                steps = wide.columns.to_numpy()
                ax.plot(steps, mean, color=palette[line], lw=1.4)
                if np.isfinite(lo).any():
                    ax.fill_between(steps, lo, hi, color=palette[line], alpha=0.18, lw=0)
            if len(panels) > 1:
                ax.set_title(_wrap(panel, 52))
            ax.grid(alpha=0.3)
        _hide_unused(axes, len(panels))
        log = wants_log_axis(frame["value"].to_numpy(float))
        if log:  # sharey: every panel follows; ticks 1-2-5 as plain numbers (mathtext is off)
            ax0 = axes.flat[0]
            ax0.set_yscale("log")
            ax0.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax0.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.6g}"))
            ax0.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        arrow = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        fig.supxlabel("step (G updates)", fontsize=9)
        fig.supylabel("value" + (", log scale" if log else "") + arrow, fontsize=9)
        fig.suptitle(_wrap(title, 100), fontsize=10)
        handles = [plt.Line2D([], [], color=palette[k], lw=2, label=_wrap(k, 40)) for k in lines]
        # margins in inches, set by hand: tight_layout would cost one more full draw per figure
        fig.subplots_adjust(left=0.75 / w, right=1 - (legend_in + 0.1) / w, bottom=0.55 / h,
                            top=1 - (0.75 if len(panels) > 1 else 0.5) / h, hspace=0.45, wspace=0.12)
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1 - legend_in / w, 0.5), frameon=False)
        return fig

    return _cached(out_dir, file_name(name or f"curve-{title}"), _key("curve", frame, title, higher), draw)


def loss_figure(out_dir: Path, losses: pd.DataFrame, marks: pd.DataFrame, max_panels: int = 12,
                name: str = "losses") -> Path:
    """G and D loss per run, one panel per configuration, collapse onsets (dashed) and divergence (x) marked;
    where the runs recorded gradient norms, a panel of them (log scale) under each loss panel.

    losses: config, run_id, step, name (loss_d / loss_g / grad_norm_d / grad_norm_g), value;
    marks: config, run_id, collapse_onset, diverged_at.
    """
    frame = losses[["config", "run_id", "step", "name", "value"]].astype({"run_id": str})
    marks = marks[["config", "run_id", "collapse_onset", "diverged_at"]].astype({"run_id": str})
    configs = list(dict.fromkeys(frame["config"]))[:max_panels]

    def draw():
        cols = min(3, len(configs))
        rows = -(-len(configs) // cols)
        grads = frame["name"].isin(GRAD_COLOURS).any()
        per = 2 if grads else 1  # figure rows per row of configurations: losses, then gradient norms
        fig, grid = plt.subplots(rows * per, cols, figsize=(4.2 * cols, 2.8 * rows * per), squeeze=False, sharex=True)
        axes = grid[::per]
        colors = {"loss_d": "#1f77b4", "loss_g": "#ff7f0e"}
        for i, config in enumerate(configs):
            ax = axes.flat[i]
            part = frame[frame["config"] == config]
            for (rid, name), run in part[~part["name"].isin(GRAD_COLOURS)].groupby(["run_id", "name"], sort=True):
                ax.plot(run["step"], run["value"], color=colors.get(name, "grey"), lw=0.9, alpha=0.7)
            if grads:
                gax = grid[(i // cols) * per + 1, i % cols]
                for (rid, name), run in part[part["name"].isin(GRAD_COLOURS)].groupby(["run_id", "name"], sort=True):
                    gax.plot(run["step"], run["value"].where(run["value"] > 0), color=GRAD_COLOURS[name], lw=0.9,
                             alpha=0.7)
                gax.set_yscale("log")
                gax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))  # no mathtext
                gax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                gax.set_ylabel("grad norm", fontsize=8)
                gax.grid(alpha=0.3)
            for m in marks[marks["config"] == config].itertuples():
                if pd.notna(m.collapse_onset):
                    ax.axvline(m.collapse_onset, color="#d62728", ls="--", lw=1)
                if pd.notna(m.diverged_at):
                    ax.plot([m.diverged_at], [0], marker="x", color="black", ms=7, mew=2, clip_on=False)
            ax.set_title(_wrap(config, 52))
            ax.grid(alpha=0.3)
        for r in range(per):
            _hide_unused(grid[r::per], len(configs))
        handles = [plt.Line2D([], [], color=colors["loss_d"], label="D loss"),
                   plt.Line2D([], [], color=colors["loss_g"], label="G loss"),
                   *([plt.Line2D([], [], color=GRAD_COLOURS["grad_norm_d"], label="D grad norm"),
                      plt.Line2D([], [], color=GRAD_COLOURS["grad_norm_g"], label="G grad norm")] if grads else []),
                   plt.Line2D([], [], color="#d62728", ls="--", label="collapse onset"),
                   plt.Line2D([], [], color="black", marker="x", ls="", label="diverged")]
        ncol = min(len(handles), 3 * cols)
        fig.legend(handles=handles, loc="upper center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 1.0))
        fig.supxlabel("step (G updates)", fontsize=9)
        height = 2.8 * rows * per
        top = 0.55 + 0.2 * -(-len(handles) // ncol)  # inches above the panels: legend rows and a title
        fig.subplots_adjust(left=(0.75 if grads else 0.5) / (4.2 * cols), right=0.98, bottom=0.5 / height,
                            top=1 - top / height, hspace=0.4, wspace=0.22)
        return fig

    return _cached(out_dir, file_name(name), _key("loss", pd.concat([frame, marks]), configs), draw)


def timeline_figure(out_dir: Path, frames: pd.DataFrame, title: str, name: str) -> Path:
    """The sample strips of one run stacked in step order: rows = steps, columns = the same fixed latents.

    frames: step, path (a PNG under samples/timeline/), mtime_ns and size (so a rewritten file redraws).
    """
    frame = frames[["step", "path", "mtime_ns", "size"]].astype({"path": str}).sort_values("step", kind="stable")

    def draw():
        import matplotlib.image as mpimg

        strips = [mpimg.imread(p) for p in frame["path"]]
        aspect = max(s.shape[1] / max(s.shape[0], 1) for s in strips)
        w = 6.0
        row_h = max(w / aspect, 0.35)
        fig, axes = plt.subplots(len(strips), 1, figsize=(w + 0.9, row_h * len(strips) + 0.5), squeeze=False)
        for ax, strip, step in zip(axes[:, 0], strips, frame["step"]):
            ax.imshow(strip, aspect="equal", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(f"{int(step):,}", rotation=0, ha="right", va="center", fontsize=8)
        fig.suptitle(_wrap(title, 90), fontsize=9)
        h = row_h * len(strips) + 0.5
        fig.subplots_adjust(left=0.85 / (w + 0.9), right=0.99, bottom=0.05 / h, top=1 - 0.4 / h, hspace=0.08)
        return fig

    return _cached(out_dir, file_name(name), _key("timeline", frame, title), draw)


def final_figure(out_dir: Path, scores: pd.DataFrame, title: str, higher: bool | None, name: str = "") -> Path:
    """Per-seed final scores per configuration: box plot with every seed as a point, coloured by outcome.

    scores: config, run_id, value, outcome (ok / collapsed / diverged). Non-finite values are not drawn.
    Plain matplotlib: a report draws one of these per metric column, and seaborn's categorical plots
    took twice as long for the same picture.
    """
    frame = scores[["config", "run_id", "value", "outcome"]].astype({"run_id": str})
    finite = frame[np.isfinite(frame["value"].to_numpy(float))]
    order = list(dict.fromkeys(frame["config"]))  # the caller's order, drawn top to bottom
    row = {c: i for i, c in enumerate(order)}

    def draw():
        label_in = 0.3 + 0.062 * max([len(line) for c in order for line in _wrap(c, 60).splitlines()] or [8])
        fig, ax = plt.subplots(figsize=(max(7.5, label_in + 5.5), 1.2 + 0.32 * len(order)))
        groups = [(row[c], g["value"].to_numpy(float)) for c, g in finite.groupby("config", sort=False)]
        if groups:
            ax.boxplot([v for _, v in groups], positions=[i for i, _ in groups], orientation="horizontal",
                       widths=0.6, showfliers=False, patch_artist=True, manage_ticks=False,
                       boxprops={"facecolor": "#e8eef7", "linewidth": 0.8}, whiskerprops={"linewidth": 0.8},
                       capprops={"linewidth": 0.8}, medianprops={"color": "#444444", "linewidth": 0.8})
            jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(finite))
            y = finite["config"].map(row).to_numpy(float) + jitter
            for outcome, colour in OUTCOME_COLOURS.items():
                mine = (finite["outcome"] == outcome).to_numpy()
                ax.scatter(finite["value"].to_numpy(float)[mine], y[mine], s=16, color=colour, label=outcome,
                           zorder=3, linewidths=0)
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="run")
        dropped = len(frame) - len(finite)
        arrow = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        ax.set_xlabel("value" + arrow + (f"; {dropped} non-finite not drawn" if dropped else ""))
        ax.set_yticks(range(len(order)), [_wrap(c, 60) for c in order])
        ax.set_ylim(len(order) - 0.5, -0.5)  # first configuration on top
        ax.set_title(_wrap(title, 90))
        ax.grid(axis="x", alpha=0.3)
        # margins in inches, set by hand (no second layout pass): the widest label on the left, legend right
        w, h = fig.get_size_inches()
        fig.subplots_adjust(left=label_in / w, right=1 - 1.2 / w, bottom=0.55 / h, top=1 - 0.5 / h)
        return fig

    return _cached(out_dir, file_name(name or f"final-{title}"), _key("final", frame, title, higher, order), draw)
