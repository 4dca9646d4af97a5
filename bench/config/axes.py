"""A grid file's axes as it wrote them: each value of a `grid:` axis, with its name when the axis is a
mapping of named bundles, and whether a run's flat config matches it. The report labels rows with these
(bench/report/names.py) and the progress lines name runs with them (bench/launch/status.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

STRATUM_KEYS = ("dataset", "image_size", "eval_n")  # plus every data.* key: they change what is measured


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def text(value: Any) -> str:
    return value if isinstance(value, str) else canon(value)


def is_stratum_key(key: str) -> bool:
    return key in STRATUM_KEYS or key.startswith("data.")


@dataclass(frozen=True)
class AxisValue:
    name: str | None  # the grid file's name for a named bundle, else None
    settings: tuple[tuple[str, Any], ...]  # (key as written in the grid file, value), in the file's order

    def label(self) -> str:
        return self.name if self.name is not None else ", ".join(f"{k.split('.')[-1] if not k.startswith('data.') else k}"
                                                                   f"={text(v)}" for k, v in self.settings)


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[AxisValue, ...]

    @property
    def stratum(self) -> bool:
        """An axis over datasets or protocols: it separates strata instead of labelling rows."""
        return all(is_stratum_key(_bare(k)) for v in self.values for k, _ in v.settings)


def _bare(key: str) -> str:
    return key if key.startswith("data.") else key.split(".")[-1]


def _flatten(mapping: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in mapping.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


class _KeyLoader(yaml.SafeLoader):
    """Safe YAML, except that a mapping key keeps its text: `off:` names a bundle, it is not False."""

    def construct_mapping(self, node, deep=False):
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:bool":
                key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep)


_KeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _KeyLoader.construct_mapping)


def parse_axes(grid_text: str) -> list[Axis]:
    """The axes of a grid file's `grid:` section; anything unreadable gives no axes (labels fall back)."""
    try:
        doc = yaml.load(grid_text or "", Loader=_KeyLoader) or {}
    except yaml.YAMLError:
        return []
    grid = doc.get("grid") if isinstance(doc, dict) else None
    axes = []
    for axis, values in (grid or {}).items() if isinstance(grid, dict) else ():
        if isinstance(values, dict):
            items = [(str(name), v) for name, v in values.items()]
        elif isinstance(values, list):
            items = [(None, v) for v in values]
        else:
            continue
        parsed = tuple(AxisValue(name, tuple(_flatten(v)) if isinstance(v, dict) else ((str(axis), v),))
                       for name, v in items)
        if parsed:
            axes.append(Axis(str(axis), parsed))
    return axes


def grid_base(grid_text: str) -> dict:
    try:
        doc = yaml.safe_load(grid_text or "") or {}
    except yaml.YAMLError:
        return {}
    base = doc.get("base") if isinstance(doc, dict) else None
    return dict(_flatten(base)) if isinstance(base, dict) else {}


def pipeline_check(grid_text: str) -> bool:
    """The grid file's `pipeline_check: true`: a grid that exists to check the pipeline, not to answer."""
    try:
        doc = yaml.safe_load(grid_text or "") or {}
    except yaml.YAMLError:
        return False
    return isinstance(doc, dict) and doc.get("pipeline_check") is True


def _config_key(key: str, cfg: dict) -> str | None:
    if key in cfg:
        return key
    bare = _bare(key)
    return bare if bare in cfg else None


def matches(value: AxisValue, cfg: dict) -> bool:
    """Whether a run's flat config carries every setting of this axis value."""
    for key, want in value.settings:
        k = _config_key(key, cfg)
        if k is None or canon(cfg[k]) != canon(want):
            return False
    return True


def pick(axis: Axis, cfg: dict) -> AxisValue | None:
    """The axis value a run was made from. A run of `projection_sn: {d_cond: projection,
    spectral_norm_d: true}` also carries `projection: {d_cond: projection}`, so of the values it
    matches, the one that sets the most keys wins (the first, on a tie)."""
    return max((v for v in axis.values if matches(v, cfg)), key=lambda v: len(v.settings), default=None)
