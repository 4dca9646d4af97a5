"""The grid's own words for its configurations: labels, order and strata, read from results/<grid>/grid.yaml.

A run's config.yaml is flat and carries no names, but the grid file that produced it does: an axis
is a list of values (`g_steps: [1, 2]`), a list of bundles (`labels: [{real_label: 1.0, fake_label:
0.0}, ...]`) or a mapping of named bundles (`labels: {off: {...}, one_sided: {...}}`). Each
configuration is matched back to the axis value it came from, so rows, legends and sentences read
`one_sided` (or `real_label=0.9, fake_label=0.0`, keys in the grid's order) and appear in the grid's
order. A configuration that matches no axis value (an old grid file, a --set override) keeps the
`key=value` label of its varying keys.

A stratum is one dataset and evaluation protocol (dataset, image size, eval_n, data.* options):
statistics, baselines and tests never cross strata (docs/protocols.md §7.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.config.axes import Axis, AxisValue, canon, is_stratum_key, parse_axes, pick, text

@dataclass
class View:
    """Labels, order and strata of one grid's configurations (config ids as in GridData.configs)."""

    axes: list[Axis]
    label: dict[str, str]  # config id -> full label (stratum included when several)
    row: dict[str, str]  # config id -> label within its stratum
    order: list[str]  # config ids: strata in grid order, configurations in grid order within each
    stratum: dict[str, str]  # config id -> stratum id
    strata: dict[str, str] = field(default_factory=dict)  # stratum id -> title (e.g. "digits")
    row_keys: list[str] = field(default_factory=list)  # varying config keys that are not stratum keys
    parts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # config id -> (axis, label) in the row

    def line_and_panel(self, cid: str) -> tuple[str, str]:
        """Figure layout: the first row axis draws lines, the stratum and the other axes make panels."""
        parts = self.parts.get(cid, [])
        line = parts[0][1] if parts else self.row[cid]
        rest = [p for _, p in parts[1:]]
        panel = ", ".join(([self.strata[self.stratum[cid]]] if len(self.strata) > 1 else []) + rest)
        return line, panel or "all configurations"

    def in_stratum(self, sid: str) -> list[str]:
        return [c for c in self.order if self.stratum[c] == sid]


def build_view(configs: dict[str, dict], varying: list[str], grid_text: str) -> View:
    axes = parse_axes(grid_text)
    present = {}  # axis index -> value indices matched by some configuration
    picks: dict[str, list[int | None]] = {}
    for cid, cfg in configs.items():
        idx = []
        for a, axis in enumerate(axes):
            value = pick(axis, cfg)
            hit = None if value is None else axis.values.index(value)
            idx.append(hit)
            if hit is not None:
                present.setdefault(a, set()).add(hit)
        picks[cid] = idx
    shown = [a for a, axis in enumerate(axes) if len(present.get(a, ())) > 1]  # axes that vary here
    strat_keys = [k for k in varying if is_stratum_key(k)]
    row_keys = [k for k in varying if not is_stratum_key(k)]
    label, row, stratum, titles, rank, parts = {}, {}, {}, {}, {}, {}
    for cid, cfg in configs.items():
        srow, stitle, mine = [], [], []
        if shown and all(picks[cid][a] is not None for a in shown):
            for a in shown:
                part = axes[a].values[picks[cid][a]].label()
                (stitle if axes[a].stratum else srow).append(part)
                if not axes[a].stratum:
                    mine.append((axes[a].name, part))
        else:  # no grid file, or a configuration no axis value explains (a --set override): key=value
            for k in varying:
                if k in cfg and not (k.startswith("data.") and "dataset" in varying):
                    part = f"{k}={text(cfg[k])}"
                    (stitle if is_stratum_key(k) else srow).append(part)
                    if not is_stratum_key(k):
                        mine.append((k, part))
        parts[cid] = mine
        sid = canon([[k, cfg.get(k)] for k in strat_keys])
        stratum[cid] = sid
        titles.setdefault(sid, ", ".join(p.split("=", 1)[1] if p.startswith("dataset=") else p for p in stitle)
                          or str(cfg.get("dataset", "all runs")))
        label[cid] = ", ".join(stitle + srow) or "all runs"
        row[cid] = ", ".join(srow) or label[cid]
        rank[cid] = (tuple(picks[cid][a] if picks[cid][a] is not None else len(axes[a].values) for a in shown),
                     tuple(_natural(cfg.get(k)) for k in varying))
    first_seen: dict[str, tuple] = {}
    for cid in sorted(configs, key=lambda c: rank[c]):
        first_seen.setdefault(stratum[cid], rank[cid])
    order = sorted(configs, key=lambda c: (first_seen[stratum[c]], rank[c]))
    strata = {stratum[c]: titles[stratum[c]] for c in order}
    return View(axes, label, row, order, stratum, strata, row_keys, parts)


def _natural(value) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, value if isinstance(value, str) else canon(value))


def named_value(view: View, key: str, raw: str) -> list[AxisValue]:
    """Axis values a --baseline AXIS=NAME names (a named bundle, or one value of an axis)."""
    out = []
    for axis in view.axes:
        if axis.name != key:
            continue
        for v in axis.values:
            if v.name == raw or (v.name is None and len(v.settings) == 1 and text(v.settings[0][1]) == raw):
                out.append(v)
    return out


