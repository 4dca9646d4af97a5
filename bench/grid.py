"""Grid expansion: a pure function from a grid file and overrides to raw run mappings.

Order: seeds outermost (so a partly finished grid already has every configuration once), then the
cartesian product of the axes in file order. `--set` overrides win over base and grid; a `--set`
key that is a grid axis replaces that axis. No I/O, no randomness.
"""

from __future__ import annotations

import itertools
from typing import Any

from bench.config import GridFile, Incompatible, RunConfig, resolve, shrink_for_smoke
from bench.errors import BenchError


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
    seen, configs, skipped = set(), [], []
    for i, raw in enumerate(expand(grid, overrides)):
        try:
            config = resolve(raw, where=f"{grid.path or grid.name} (run {i + 1})")
        except Incompatible as exc:
            skipped.append(str(exc).split(": ", 1)[-1])
            continue
        if smoke:
            config = shrink_for_smoke(config)
        if config.run_id not in seen:
            seen.add(config.run_id)
            configs.append(config)
    if not configs:
        raise BenchError(f"{grid.path or grid.name}: no runnable runs ({skipped[0] if skipped else 'empty grid'})")
    from bench import registry  # the one I/O here: a missing dataset folder fails before any run starts

    for dataset, data, size in dict.fromkeys((c.dataset, c.data, c.loop.image_size) for c in configs):
        registry.datasets.get(dataset).check(data, size)
    return configs, sorted(set(skipped))
