"""Which configuration every other one is compared with: one baseline per stratum (dataset and
protocol), never across strata (docs/protocols.md §7.3).

The default is the grid's first configuration in each stratum. `--baseline KEY=VALUE` (repeat for a
bundle; `AXIS=NAME` for a named bundle value) picks, in each stratum, the one configuration that
matches; a match of several configurations in one stratum is an error that lists them, because a
table with two "baseline" rows answers nothing. A stratum where nothing matches has no baseline and
no tests, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import yaml

from bench.errors import BenchError
from bench.report.load import GridData
from bench.config.axes import canon, is_stratum_key, pick, text
from bench.report.names import View, named_value

__all__ = ["Baseline", "canon", "parse_baseline", "partners", "config_order", "natural"]


@dataclass(frozen=True)
class Baseline:
    asked: str  # the user's pairs as text, or "" for the default
    chosen: tuple[tuple[str, str], ...]  # (stratum id, baseline config id) per stratum that has one

    def of(self, stratum: str) -> str | None:
        return dict(self.chosen).get(stratum)

    def is_base(self, cid: str) -> bool:
        return cid in {c for _, c in self.chosen}

    @property
    def text(self) -> str:
        return self.asked or "the grid's first configuration in each stratum"


def _pairs(texts: list[str], data: GridData, view: View) -> list:
    """Each KEY=VALUE as a predicate on a config dict, checked against the grid."""
    preds = []
    for item in texts:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise BenchError(f"--baseline {item!r}: expected KEY=VALUE, e.g. variant=dcgan")
        if (is_stratum_key(key) and key in data.varying) or any(a.name == key and a.stratum for a in view.axes):
            raise BenchError(f"--baseline {item!r}: {key} separates strata (datasets, protocols); a baseline is "
                             "chosen within each of them, so name a key that varies inside one")
        named = named_value(view, key, raw)
        if named:
            axes = [a for a in view.axes if a.name == key]
            preds.append(lambda cfg, vs=named, axes=axes: any(pick(a, cfg) in vs for a in axes))
            continue
        axis = next((a for a in view.axes if a.name == key), None)
        if axis is not None and key not in data.varying:  # an axis of the grid file, not a config key
            names = ", ".join(dict.fromkeys(v.name if v.name is not None else text(v.settings[0][1])
                                            if len(v.settings) == 1 else v.label() for v in axis.values))
            raise BenchError(f"--baseline {item!r}: axis {key} has no value named {raw!r}; its values: {names}")
        if key not in data.varying:
            axes = ", ".join(a.name for a in view.axes)
            raise BenchError(f"--baseline {item!r}: {key!r} does not vary in grid {data.name}; varying keys: "
                             f"{', '.join(k for k in data.varying if not is_stratum_key(k)) or '(none)'}"
                             + (f"; axes: {axes}" if axes else ""))
        try:
            value = canon(yaml.safe_load(raw))
        except yaml.YAMLError:
            value = canon(raw)
        values = {canon(c[key]) for c in data.configs.values() if key in c}
        if value not in values and canon(raw) in values:
            value = canon(raw)  # a string that YAML would have read as a number or bool
        if value not in values and canon(_float(raw)) in values:
            value = canon(_float(raw))  # 1e-4 (a string to YAML 1.1) or 1 for the grid's 0.0001 or 1.0
        if value not in values:
            raise BenchError(f"--baseline {item!r}: no run has {key}={raw}; values in grid {data.name}: "
                             + ", ".join(sorted(values)))
        preds.append(lambda cfg, k=key, v=value: k in cfg and canon(cfg[k]) == v)
    return preds


def _float(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def parse_baseline(texts: Iterable[str] | str | None, data: GridData, view: View) -> Baseline:
    """One baseline configuration per stratum: the user's pairs, or the grid's first configuration."""
    texts = [texts] if isinstance(texts, str) else list(texts or [])
    strata = list(view.strata)
    if not texts:
        return Baseline("", tuple((s, view.in_stratum(s)[0]) for s in strata if view.in_stratum(s)))
    preds = _pairs(texts, data, view)
    chosen = []
    for s in strata:
        hits = [c for c in view.in_stratum(s) if all(p(data.configs[c]) for p in preds)]
        if len(hits) > 1:
            where = f" in {view.strata[s]}" if len(strata) > 1 else ""
            raise BenchError(f"--baseline {' '.join(texts)} matches {len(hits)} configurations{where}: "
                             + "; ".join(view.row[c] for c in hits) + "; add KEY=VALUE pairs until one is left")
        if hits:
            chosen.append((s, hits[0]))
    if not chosen:
        raise BenchError(f"--baseline: no configuration has {', '.join(texts)} at once; pass pairs that occur together")
    return Baseline(", ".join(texts), tuple(chosen))


def partners(view: View, baseline: Baseline | None) -> dict[str, tuple[str | None, str]]:
    """config id -> (its stratum's baseline config id or None, note)."""
    out = {}
    for cid in view.order:
        base = baseline.of(view.stratum[cid]) if baseline else None
        if base == cid:
            out[cid] = (None, "baseline")
        else:
            out[cid] = (base, "" if base else "no baseline in this stratum")
    return out


def config_order(view: View, baseline: Baseline | None) -> list[str]:
    """Strata in grid order; in each, its baseline first, then the rest in the grid's order."""
    out = []
    for s in view.strata:
        ids = view.in_stratum(s)
        base = baseline.of(s) if baseline else None
        out += ([base] if base in ids else []) + [c for c in ids if c != base]
    return out


def natural(value) -> tuple:
    """Sort key: numbers by value before text, so lr=1e-4 comes before lr=2e-4 and 10 after 9."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, text(value))
