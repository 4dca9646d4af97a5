"""Grid expansion: a pure function from a grid file and overrides to raw run mappings.

Order: seeds outermost (so a partly finished grid already has every configuration once), then the
cartesian product of the axes in file order. `--set` overrides win over base and grid; a `--set`
key that is a grid axis replaces that axis. No I/O, no randomness.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from bench.config import GridFile, Incompatible, RunConfig, resolve, shrink_for_smoke
from bench.errors import BenchError
from bench.identity import DATA_IDENTITY


def expand(grid: GridFile, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    overrides = dict(overrides or {})
    if "seed" in overrides:
        seeds = [overrides.pop("seed")]
    else:
        seeds = list(grid.seeds)
    axes = [(axis, values) for axis, values in grid.grid.items() if axis not in overrides]
    runs = []
    for seed in seeds:
        for point in itertools.product(*(values for _, values in axes)):
            raw = dict(grid.base)
            for (axis, _), value in zip(axes, point):
                # A mapping value sets several keys together (e.g. two-sided label smoothing).
                raw.update(value if isinstance(value, dict) else {axis: value})
            raw.update(overrides)
            raw["seed"] = seed
            runs.append(raw)
    return runs


def resolve_all(grid: GridFile, overrides: dict[str, Any] | None = None,
                smoke: bool = False) -> tuple[list[RunConfig], list[str]]:
    """Resolve every run before any starts: (configs, skipped reasons).

    Duplicates (same run id) are kept once, in order. A variant/dataset pair that cannot work
    (an image net on 2-D points) is skipped with its reason, so a product over both axes is
    usable; a grid left with no runs is an error.
    """
    resolved, skipped = [], []
    for i, raw in enumerate(expand(grid, overrides)):
        where = f"{grid.path or grid.name} (run {i + 1})"
        if DATA_IDENTITY in raw:
            raise BenchError(f"{where}: '{DATA_IDENTITY}' is computed from the data's files; remove it")
        try:
            config = resolve(raw, where=where)
        except Incompatible as exc:
            skipped.append(str(exc).split(": ", 1)[-1])
            continue
        resolved.append(shrink_for_smoke(config) if smoke else config)
    if not resolved:
        raise BenchError(f"{grid.path or grid.name}: no runnable runs ({skipped[0] if skipped else 'empty grid'})")
    resolved = with_data_identity(resolved)
    configs: dict[str, RunConfig] = {}
    for config in resolved:
        configs.setdefault(config.run_id, config)
    return list(configs.values()), sorted(set(skipped))


def with_data_identity(configs: list[RunConfig]) -> list[RunConfig]:
    """Check every dataset the grid names (the one I/O here: a missing folder fails before any run
    starts) and put the content fingerprint of file data into each run's identity."""
    from bench import registry

    identity = {}
    for key in dict.fromkeys((c.dataset, c.data, c.loop.image_size) for c in configs):
        dataset = registry.datasets.get(key[0])
        dataset.check(key[1], key[2])
        identity[key] = dataset.identity(key[1], key[2])
    return [dataclasses.replace(c, data_identity=identity[(c.dataset, c.data, c.loop.image_size)]) for c in configs]
