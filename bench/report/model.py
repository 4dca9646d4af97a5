"""What the renderers receive: the computed report of one grid, plus the small formatting rules
every output format shares (so a number reads the same in HTML, Markdown and LaTeX)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.report import stats
from bench.report.baseline import Baseline
from bench.report.load import GridData
from bench.report.names import View
from bench.report.stability import Thresholds

KIND_TITLE = {"final": "final checkpoint", "best": "best checkpoint", "curve": "during training (curve)"}


@dataclass
class Figure:
    path: Path
    title: str
    caption: str
    section: str  # curves | losses | finals | timeline


@dataclass
class Sample:
    config: str
    run_id: str
    path: Path
    caption: str


@dataclass
class Report:
    data: GridData
    baseline: Baseline | None
    test: str
    thresholds: Thresholds
    stability: pd.DataFrame  # per run
    table: pd.DataFrame  # comparison rows (column, config)
    figures: list[Figure] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    shown_configs: list[str] = field(default_factory=list)  # config labels drawn in figures
    view: View | None = None
    headlines: dict = field(default_factory=dict)  # stratum id -> headline.Headline
    scores: pd.DataFrame | None = None  # per finished run and column: the value the statistics use
    rule_counts: dict = field(default_factory=dict)  # stability rule key -> runs it flagged
    training: dict = field(default_factory=dict)  # smoke, steps trained, steps in the grid file
    headline_figures: dict = field(default_factory=dict)  # stratum id -> Figure
    headline_samples: dict = field(default_factory=dict)  # stratum id -> [(row label, [Sample])]
    published: pd.DataFrame | None = None  # bench/config/published.py compare(): the paper's values beside ours

    def column_rows(self):
        """(column row of data.columns, its comparison rows): headline metrics first, then by name;
        final, best, curve within a metric. Real-data ceilings are lines of their metric's table."""
        cols = self.data.columns
        head = [m.name for h in self.headlines.values() for m in h.metrics]
        rank = {n: i for i, n in enumerate(dict.fromkeys(head))}
        order = sorted(cols.itertuples(index=False),
                       key=lambda c: (rank.get(c.name, len(rank)), c.name if c.name not in rank else "",
                                      {"final": 0, "best": 1, "curve": 2}.get(c.kind, 3), c.label))
        for col in order:
            rows = self.table[self.table["column"] == col.column] if len(self.table) else self.table
            if len(rows):
                yield col, rows

    def metric_groups(self):
        """[(metric name, [(column, rows)...])] in column_rows order: one fold per metric."""
        groups: dict[str, list] = {}
        for col, rows in self.column_rows():
            groups.setdefault(col.name, []).append((col, rows))
        return list(groups.items())

    @property
    def tests_run(self) -> int:
        return int(self.table["p"].notna().sum()) if len(self.table) else 0


def fmt(value, digits: int = 4) -> str:
    """4 significant digits; NaN as an en dash, infinities spelled out."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def fmt_int(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else str(int(v))


def p_text(row) -> str:
    """The test cell: Holm-adjusted p with a star for the headline family, raw p labelled exploratory
    for every other metric, or why there is no test."""
    if isinstance(row.note, str) and row.note:
        return row.note
    if math.isnan(row.p):
        return "no test"
    if getattr(row, "family", "headline") != "headline":
        return f"{fmt(row.p, 2)} (exploratory)"
    return f"{fmt(row.p_holm, 2)}{'*' if row.significant else ''} (Holm)"


def direction(higher) -> str:
    return "" if higher is None else ("higher is better" if higher else "lower is better")


def protocol_fields(data: GridData, key: str) -> dict:
    return data.protocols.get(key) or (json.loads(key) if key else {})


def method_note(report: Report) -> str:
    test = ("two-sided Mann-Whitney U (exact for n <= 8)" if report.test == "mannwhitney"
            else "two-sided Welch's t-test")
    effect = "rank-biserial r, + = higher than baseline" if report.test == "mannwhitney" else "Hedges' g, + = higher than baseline"
    base = report.baseline.text if report.baseline else "none"
    m = sum(h.holm_m for h in report.headlines.values())
    return (f"Across seeds: mean ± std, 95% percentile bootstrap CI of the mean ({stats.N_RESAMPLES:,} resamples, "
            f"fixed seed), median, IQM. Test vs the baseline of each stratum ({base}): {test}; Holm-corrected "
            f"within each stratum over its headline metrics only ({m} of the {report.tests_run} tests), * = rejected "
            f"at alpha {stats.ALPHA}; every other p is unadjusted and exploratory; real-data ceilings are never "
            f"tested. Effect: {effect}. "
            f"Fewer than {stats.MIN_TEST_N} seeds: n<{stats.MIN_TEST_N}, no test. Diverged runs keep their final "
            "value; only finished runs (done or diverged) count.")


_MD_MARKUP = re.compile(r"<(?=[A-Za-z/!?])|&(?=[A-Za-z#])|[|`\\\r\n]|\](?=[(\[])")
_MD = {"<": "&lt;", "&": "&amp;", "|": "\\|", "`": "\\`", "\\": "\\\\", "]": "\\]", "\n": " ", "\r": " "}


def md_escape(text) -> str:
    """A record- or config-derived string as inert Markdown text, on one line."""
    return _MD_MARKUP.sub(lambda m: _MD[m.group()], str(text))
