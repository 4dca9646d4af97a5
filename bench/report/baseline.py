"""Which configuration every other one is compared with, and in what order configurations appear.

A baseline is one or more KEY=VALUE pairs (several when the grid has a bundle axis such as
{real_label: 1.0, fake_label: 0.0}). Each configuration is paired with the baseline configuration
that equals it in every other varying key, so `variant=dcgan` on a variant x dataset grid compares
wgan on digits with dcgan on digits, never with dcgan on ring8.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from bench.errors import BenchError
from bench.report.load import GridData


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class Baseline:
    items: tuple[tuple[str, str], ...]  # (key, canonical JSON of the value)

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.items]

    def matches(self, cfg: dict) -> bool:
        return all(k in cfg and canon(cfg[k]) == v for k, v in self.items)

    @property
    def text(self) -> str:
        return ", ".join(f"{k}={_plain(v)}" for k, v in self.items)


def _plain(value_json: str) -> str:
    v = json.loads(value_json)
    return v if isinstance(v, str) else value_json


def parse_baseline(texts: Iterable[str] | str | None, data: GridData) -> Baseline | None:
    """The user's KEY=VALUE pairs checked against the grid; none given picks the default."""
    texts = [texts] if isinstance(texts, str) else list(texts or [])
    if not texts:
        return default_baseline(data)
    items = []
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BenchError(f"--baseline {text!r}: expected KEY=VALUE, e.g. variant=dcgan")
        if key not in data.varying:
            raise BenchError(f"--baseline {text!r}: {key!r} does not vary in grid {data.name}; "
                             f"varying keys: {', '.join(data.varying) or '(none)'}")
        try:
            value = canon(yaml.safe_load(raw))
        except yaml.YAMLError:
            value = canon(raw)
        values = {canon(c[key]) for c in data.configs.values() if key in c}
        if value not in values and canon(raw) in values:
            value = canon(raw)  # a string that YAML would have read as a number or bool
        if value not in values:
            raise BenchError(f"--baseline {text!r}: no run has {key}={raw}; values in grid {data.name}: "
                             + ", ".join(sorted(values)))
        items.append((key, value))
    base = Baseline(tuple(items))
    if not any(base.matches(c) for c in data.configs.values()):
        raise BenchError(f"--baseline: no configuration has {base.text} at once; pass pairs that occur together")
    return base


def default_baseline(data: GridData) -> Baseline | None:
    """variant=dcgan when the grid varies the variant (PROTOCOLS 7.3), else the first value of the grid
    file's first axis (all its keys, for a bundle axis), else the lowest value of the first varying key."""
    if not data.varying:
        return None
    if "variant" in data.varying and any(c.get("variant") == "dcgan" for c in data.configs.values()):
        return Baseline((("variant", canon("dcgan")),))
    try:
        axes = (yaml.safe_load(data.grid_text) or {}).get("grid") or {}
    except (yaml.YAMLError, AttributeError):
        axes = {}
    for axis, values in axes.items() if isinstance(axes, dict) else ():
        if not isinstance(values, list) or not values:
            continue
        first = values[0] if isinstance(values[0], dict) else {str(axis).split(".")[-1]: values[0], axis: values[0]}
        items = tuple((k, canon(v)) for k, v in first.items() if k in data.varying)
        if items and any(Baseline(items).matches(c) for c in data.configs.values()):
            return Baseline(items)
    key = data.varying[0]
    lowest = min((c[key] for c in data.configs.values() if key in c), key=natural)
    return Baseline(((key, canon(lowest)),))


def partners(data: GridData, baseline: Baseline | None) -> dict[str, tuple[str | None, str]]:
    """config id -> (its baseline config id or None, note)."""
    if baseline is None:
        return {cid: (None, "no baseline") for cid in data.configs}
    others = [k for k in data.varying if k not in baseline.keys]
    values = {cid: {k: canon(c[k]) for k in others if k in c} for cid, c in data.configs.items()}
    bases = [cid for cid, c in data.configs.items() if baseline.matches(c)]
    out: dict[str, tuple[str | None, str]] = {}
    for cid, mine in values.items():
        if cid in bases:
            out[cid] = (None, "baseline")
            continue
        match = [b for b in bases if all(v == values[b].get(k, v) for k, v in mine.items())]
        out[cid] = (match[0], "") if len(match) == 1 else (None, "no baseline match" if not match else "baseline ambiguous")
    return out


def config_order(data: GridData, baseline: Baseline | None) -> list[str]:
    """Config ids grouped by the non-baseline keys (natural order), the baseline first in each group:
    every block of table rows, like every figure panel, reads as one ablation."""
    keys = baseline.keys if baseline else []

    def key(cid):
        cfg = data.configs[cid]
        others = tuple(natural(cfg[k]) for k in data.varying if k in cfg and k not in keys)
        own = tuple(natural(cfg.get(k)) for k in keys)
        return others, not (baseline and baseline.matches(cfg)), own

    return sorted(data.configs, key=key)


def natural(value) -> tuple:
    """Sort key: numbers by value before text, so lr=1e-4 comes before lr=2e-4 and 10 after 9."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, value if isinstance(value, str) else canon(value))
