"""Published numbers beside ours: a grid's `published:` section, checked, and the table that sets each
reported value next to what the harness measured for the same configuration.

A reproduction preset (ablations/reproduce/) carries one paper's recipe and, under `published:`, the
numbers that paper printed for it. The section is one block, or a list of blocks when a grid sets
two papers' tables side by side:

    published:
      source: {paper: "PacGAN: The power of two samples in GANs", authors: "Lin et al.", year: 2018,
               table: "Table 1"}
      spread: {kind: sem, runs: 10}        # how this table's "±" reads; a value may override either
      values:
        - {row: GAN, metric: modes_covered, config: {dataset: ring8}, mean: 6.3, spread: 0.5}
        - {row: GAN, metric: hq_fraction, unit: "%", config: {dataset: ring8}, mean: 98.2, spread: 0.2}

`metric` is the harness's value name (the `name` of a metrics.jsonl record); `config` names keys
and values that the grid file itself sets (base or an axis), which pick the configuration the row
was measured for; `unit: "%"` says the paper printed a harness fraction as a percentage; `spread`
is the printed spread (a number for std / sem, [low, high] for range) or null when none was printed.

Every check raises BenchError with one line, so `bench run --dry-run` refuses a bad section. No torch
here, and pandas only inside the table functions: config.py imports this module for every grid.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from typing import Any, Optional

import yaml

from bench.errors import BenchError

SPREAD_KINDS = ("std", "sem", "range", "none")  # none: the table prints a mean only
UNITS = {"": 1.0, "%": 0.01}  # printed unit -> factor to the harness's unit
# Harness value names a published table can name, and whether higher is better (bench/metrics).
DIRECTION = {"modes_covered": True, "hq_fraction": True, "kl_modes": False, "jsd_modes": False,
             "fid": False, "kid": False, "fd": False, "isc": True, "precision": True, "recall": True,
             "f_score": True, "density": True, "coverage": True, "accuracy": True, "msssim_gap": False,
             "ndb_over_k": False, "ndb_jsd": False}
FINISHED = ("done", "diverged")  # bench.runs.FINISHED: runs whose final value counts (diverged ones too)
BLOCK_KEYS = {"source", "spread", "values"}
SOURCE_KEYS = {"paper", "authors", "year", "venue", "table", "figure", "url", "note", "checked"}
VALUE_KEYS = {"row", "metric", "config", "mean", "spread", "kind", "runs", "unit", "label", "note"}
VERDICTS = ("consistent", "better", "worse", "undetermined", "not measured", "no runs")


@dataclass(frozen=True)
class Source:
    paper: str
    year: int
    where: str  # "Table 1" or "Figure 2": the place in the paper the numbers are printed
    authors: str = ""
    venue: str = ""
    url: str = ""
    # True once every value was compared with the printed table; a preset says so either way, and
    # the report prints unchecked numbers as such, so a typo is never taken for the paper's result.
    checked: bool = False

    def cite(self) -> str:
        who = f"{self.authors}. " if self.authors else ""
        venue = f" {self.venue}" if self.venue else ""
        caveat = "" if self.checked else " Values not yet checked against the printed table."
        return f"{who}{self.paper}.{venue} {self.year}, {self.where}.{caveat}"


@dataclass(frozen=True)
class Reported:
    """One number as printed, in the paper's unit; `low`/`high` bound its printed spread."""

    source: Source
    row: str  # the method's name in the paper's table, e.g. "GAN" or "DCGAN"
    metric: str
    config: tuple[tuple[str, Any], ...]  # (key, value) pairs that select the grid's configuration
    mean: float
    spread: Any  # float for std / sem, (low, high) for range, None when not printed
    kind: str  # one of SPREAD_KINDS
    runs: Optional[int]  # runs the mean is over, when the paper says
    unit: str = ""
    label: str = ""  # a harness column label, when a metric has several protocols in the grid

    @property
    def scale(self) -> float:
        return UNITS[self.unit]

    @property
    def interval(self) -> tuple[float, float]:
        """The printed mean ± spread (or the printed range), in the paper's unit; a point without spread."""
        if self.spread is None:
            return self.mean, self.mean
        if self.kind == "range":
            return float(self.spread[0]), float(self.spread[1])
        return self.mean - self.spread, self.mean + self.spread

    def text(self) -> str:
        unit = self.unit
        if self.spread is None:
            body = f"{_num(self.mean)}{unit}"
        elif self.kind == "range":
            body = f"{_num(self.mean)}{unit} [{_num(self.spread[0])}, {_num(self.spread[1])}]"
        else:
            body = f"{_num(self.mean)} ± {_num(self.spread)}{unit}"
        how = [self.kind] if self.spread is not None else []
        if self.runs:
            how.append(f"{self.runs} runs")
        return body + (f" ({', '.join(how)})" if how else "")


# ---------------------------------------------------------------- parsing and checks

def parse(section: Any, where: str, base: Optional[dict] = None, grid: Optional[dict] = None) -> tuple[Reported, ...]:
    """The `published:` section of a grid file as Reported values; () when absent.

    With `base` and `grid` (the grid file's flattened base and axes), each value's `config` must name
    keys the grid sets and values it takes, so a row can never point at a configuration that is not run.
    """
    if section is None:
        return ()
    blocks = section if isinstance(section, list) else [section]
    if not blocks:
        raise BenchError(f"{where}: 'published' is empty; give a source and its values, or remove it")
    out: list[Reported] = []
    for i, block in enumerate(blocks):
        at = f"{where}: published" + (f"[{i}]" if isinstance(section, list) else "")
        out.extend(_block(block, at))
    if base is not None:
        for value in out:
            check_config(value, base, grid or {}, where)
    return tuple(out)


def _block(block: Any, at: str) -> list[Reported]:
    if not isinstance(block, dict):
        raise BenchError(f"{at} must be a mapping with keys {', '.join(sorted(BLOCK_KEYS))}")
    _known(block, BLOCK_KEYS, at)
    source = _source(block.get("source"), f"{at}.source")
    default = block.get("spread") or {}
    if not isinstance(default, dict):
        raise BenchError(f"{at}.spread must be a mapping such as {{kind: std, runs: 5}}")
    _known(default, {"kind", "runs"}, f"{at}.spread")
    values = block.get("values")
    if not isinstance(values, list) or not values:
        raise BenchError(f"{at}.values must be a non-empty list of reported values")
    return [_value(v, source, default, f"{at}.values[{j}]") for j, v in enumerate(values)]


def _source(source: Any, at: str) -> Source:
    if not isinstance(source, dict):
        raise BenchError(f"{at} is missing; name the paper, its year and the table or figure")
    _known(source, SOURCE_KEYS, at)
    paper, year = source.get("paper"), source.get("year")
    if not isinstance(paper, str) or not paper.strip():
        raise BenchError(f"{at}.paper must name the paper")
    if isinstance(year, bool) or not isinstance(year, int) or not 1950 <= year <= 2100:
        raise BenchError(f"{at}.year must be the publication year, got {_short(year)}")
    places = [source[k] for k in ("table", "figure") if k in source]
    if len(places) != 1 or not isinstance(places[0], (str, int)) or not str(places[0]).strip():
        raise BenchError(f"{at} must give exactly one of 'table' or 'figure' (e.g. table: \"Table 1\")")
    place = str(places[0])
    if place.strip().isdigit():  # table: 1 -> "Table 1"
        place = ("Table " if "table" in source else "Figure ") + place.strip()
    text = {k: source.get(k, "") for k in ("authors", "venue", "url")}
    for k, v in text.items():
        if not isinstance(v, str):
            raise BenchError(f"{at}.{k} must be text")
    if not isinstance(source.get("checked", False), bool):
        raise BenchError(f"{at}.checked must be true or false: were the values compared with the printed table?")
    return Source(paper.strip(), year, place, **text, checked=source.get("checked", False))


def _value(v: Any, source: Source, default: dict, at: str) -> Reported:
    if not isinstance(v, dict):
        raise BenchError(f"{at} must be a mapping with row, metric, config, mean and spread")
    _known(v, VALUE_KEYS, at)
    metric = v.get("metric")
    if metric not in DIRECTION:
        raise BenchError(f"{at}.metric {_short(metric)} is not a harness metric with a known direction; "
                         f"valid: {', '.join(sorted(DIRECTION))}")
    row = v.get("row", "")
    if not isinstance(row, str) or not row.strip():
        raise BenchError(f"{at}.row must name the method as the paper's table prints it")
    config = v.get("config")
    if not isinstance(config, dict) or not config or not all(isinstance(k, str) for k in config):
        raise BenchError(f"{at}.config must map grid keys to values, e.g. {{variant: mlp_gan}}")
    unit = v.get("unit", "")
    if unit not in UNITS:
        raise BenchError(f"{at}.unit must be one of {', '.join(repr(u) for u in UNITS)}, got {_short(unit)}")
    mean = _finite(v.get("mean"), f"{at}.mean")
    kind = v.get("kind", default.get("kind", "none"))
    if kind not in SPREAD_KINDS:
        raise BenchError(f"{at}: spread kind must be one of {', '.join(SPREAD_KINDS)}, got {_short(kind)}")
    spread = v.get("spread")
    if spread is not None:
        if kind == "none":
            raise BenchError(f"{at}: a spread is given but not its kind; set kind: std, sem or range")
        if kind == "range":
            if not isinstance(spread, list) or len(spread) != 2:
                raise BenchError(f"{at}.spread must be [low, high] for a range")
            spread = (_finite(spread[0], f"{at}.spread"), _finite(spread[1], f"{at}.spread"))
            if not spread[0] <= mean <= spread[1]:
                raise BenchError(f"{at}: the range {list(spread)} does not contain the mean {mean}")
        else:
            spread = _finite(spread, f"{at}.spread")
            if spread < 0:
                raise BenchError(f"{at}.spread must be >= 0, got {spread}")
    runs = v.get("runs", default.get("runs"))
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise BenchError(f"{at}.runs must be a positive count of runs or null, got {_short(runs)}")
    label = v.get("label", "")
    if not isinstance(label, str):
        raise BenchError(f"{at}.label must be a harness column label")
    items = tuple(sorted((k, tuple(x) if isinstance(x, list) else x) for k, x in config.items()))
    return Reported(source, row.strip(), metric, items, mean, spread, kind, runs, unit, label)


def check_config(value: Reported, base: dict, grid: dict, where: str) -> None:
    """Each (key, value) of the row's config must be set by the grid file: in base, or on an axis."""
    taken: dict[str, list] = {k: [v] for k, v in base.items()}
    for axis, options in grid.items():
        for option in options:
            pairs = option.items() if isinstance(option, dict) else [(axis, option)]
            for k, v in pairs:
                taken.setdefault(k, []).append(v)
    for key, want in value.config:
        if key not in taken:
            raise BenchError(f"{where}: published row {value.row!r} ({value.metric}) selects {key!r}, which the grid "
                             f"does not set; use keys of base or grid: {', '.join(sorted(taken))}")
        if not any(_same(want, got) for got in taken[key]):
            raise BenchError(f"{where}: published row {value.row!r} ({value.metric}) selects {key}={_short(want)}, "
                             f"a value the grid never runs; it runs {', '.join(_short(v) for v in taken[key])}")


def from_grid_text(text: str, where: str = "grid.yaml") -> tuple[Reported, ...]:
    """The published values of a grid file's text (results/<grid>/grid.yaml keeps it); () when none."""
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        raise BenchError(f"{where}: malformed YAML; the grid's published section cannot be read") from None
    return parse(data.get("published"), where) if isinstance(data, dict) else ()


def _known(mapping: dict, keys: set, at: str) -> None:
    unknown = sorted(str(k) for k in set(mapping) - keys)
    if unknown:
        raise BenchError(f"{at} has no key {unknown[0]!r}; valid keys: {', '.join(sorted(keys))}")


def _finite(x: Any, at: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise BenchError(f"{at} must be a finite number, got {_short(x)}")
    return float(x)


def _short(x: Any, limit: int = 40) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _same(a: Any, b: Any) -> bool:
    """Config values equal as the run's config.yaml would hold them (1 == 1.0, lists as tuples)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _num(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


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

    from bench.report import stats

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
                         "higher_is_better": DIRECTION[rep.metric], "published": rep.text(),
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
    return "better" if above == DIRECTION[rep.metric] else "worse"


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
        df = df[[_same(want, _cfg_value(v)) for v in df[column]]]
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
    ci = f" [{_num(lo)}, {_num(hi)}]" if n > 1 and math.isfinite(lo) else ""
    return f"{_num(mean)}{unit}{ci} (n={n})"


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
