"""Published numbers: a grid's `published:` section, parsed and checked. The table that sets each
reported value beside what the harness measured is bench/report/published.py.

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
and no pandas here: config.py imports this module for every grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import yaml

from bench.errors import BenchError
from bench.metrics import facts

SPREAD_KINDS = ("std", "sem", "range", "none")  # none: the table prints a mean only
UNITS = {"": 1.0, "%": 0.01}  # printed unit -> factor to the harness's unit
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
            body = f"{number_text(self.mean)}{unit}"
        elif self.kind == "range":
            body = f"{number_text(self.mean)}{unit} [{number_text(self.spread[0])}, {number_text(self.spread[1])}]"
        else:
            body = f"{number_text(self.mean)} ± {number_text(self.spread)}{unit}"
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
    if metric not in facts.VALUES:
        raise BenchError(f"{at}.metric {_short(metric)} is not a harness metric with a known direction; "
                         f"valid: {', '.join(sorted(facts.VALUES))}")
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
        if not any(same_value(want, got) for got in taken[key]):
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


def same_value(a: Any, b: Any) -> bool:
    """Config values equal as the run's config.yaml would hold them (1 == 1.0, lists as tuples)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def number_text(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
