"""Grid expansion: a pure function from a grid file and overrides to raw run mappings.

Order: seeds outermost (so a partly finished grid already has every configuration once), then the
cartesian product of the axes in file order. `--set` overrides win over base and grid; a `--set`
key that is a grid axis replaces that axis, and a list makes one (`with_overrides`). No I/O, no
randomness.

Before the product is formed, every key and value is checked on its own and the runs are counted
by arithmetic (`check_grid`): the work is linear in the file, never in its runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from typing import Any

from bench import registry
from bench.config.checks import clip, short
from bench.config.schema import (DATA_PREFIX, GridFile, Incompatible, LoopConfig, RunConfig, UnknownKey, check_key,
                                 flatten_data_keys, parse_seeds, registered, resolve, shrink_for_smoke, split_scope)
from bench.config.schema import config_fields as fields
from bench.errors import BenchError
from bench.config.identity import DATA_IDENTITY

DEFAULT_MAX_RUNS = 10_000  # `--max-runs N` raises it; a grid past it is more often a typo than a plan


def with_overrides(grid: GridFile, overrides: dict[str, Any] | None = None) -> tuple[GridFile, dict[str, Any]]:
    """The `--set` forms that reshape the grid, applied to it: (grid, the plain overrides left).

    `seeds=N` (or a list) sets the seeds and `seed=N` runs one seed; a list on an axis replaces
    the axis and a list on a plain key makes it an axis (a list of lists for a key that itself
    takes a list, such as betas); on a bundle axis a mapping or a bundle's name picks the value.
    Idempotent and linear in the file, so expand, count_runs and check_grid each apply it."""
    overrides, axes, names, seeds = dict(overrides or {}), dict(grid.grid), dict(grid.names), grid.seeds
    if "seeds" in overrides and "seed" in overrides:
        raise BenchError("--set seeds and --set seed: give one (seeds=N runs seeds 0..N-1, seed=N one seed)")
    if "seeds" in overrides:
        seeds = parse_seeds(overrides.pop("seeds"), "--set seeds")
    elif "seed" in overrides:
        value = overrides.pop("seed")  # one value is checked by resolve, as a run's 'seed' key
        seeds = parse_seeds(value, "--set seed") if isinstance(value, list) else (value,)
    for key in list(overrides):
        value, bundle = overrides[key], key in axes and any(isinstance(v, dict) for v in axes[key])
        if isinstance(value, list) and (key in axes or not _takes_list(key) or all(isinstance(v, list) for v in value)):
            if not value:
                raise BenchError(f"--set {clip(key, 32)}=[]: an axis needs at least one value")
            picked = [_bundle_value(grid, key, v) if bundle and isinstance(v, str) else v for v in value]
            axes[key] = [flatten_data_keys(v, "--set") if isinstance(v, dict) else v for v in picked]
            if bundle and all(isinstance(v, str) for v in value):
                names[key] = list(value)
            else:
                names.pop(key, None)
        elif bundle:
            axes[key] = [flatten_data_keys(v, "--set") if isinstance(v, dict) else _bundle_value(grid, key, v)
                         for v in [value]]
            names[key] = [value] if isinstance(value, str) else []
            names = {k: v for k, v in names.items() if v}
        else:
            continue
        del overrides[key]
        if any(isinstance(v, dict) and "seed" in v for v in axes[key]):
            raise BenchError(f"--set {clip(key, 32)}: a value sets 'seed'; set seeds with --set seeds=N")
    axes = {k: v for k, v in axes.items() if k not in overrides}  # a plain value on an axis replaces it
    names = {k: v for k, v in names.items() if k in axes}
    return dataclasses.replace(grid, seeds=seeds, grid=axes, names=names), overrides


def _bundle_value(grid: GridFile, axis: str, name: Any) -> Any:
    """The value a bundle axis names `name` (labels=one_sided)."""
    known = grid.names.get(axis, [])
    if name in known:
        return grid.grid[axis][known.index(name)]
    how = (f"its names: {', '.join(known)}" if known else
           f"its values have no names; give the keys, e.g. --set '{axis}=[{{key: value}}]'")
    shown = name if isinstance(name, str) and len(name) < 32 else short(name, 32)
    raise BenchError(f"--set {clip(axis, 32)}={shown}: grid axis '{axis}' has no value named {short(name, 32)}; {how}")


def _takes_list(key: str) -> bool:
    """Whether some registered config declares `key` as a tuple or list (betas, hidden sizes), so a
    flat list on it is one value, not an axis."""
    name = key.rpartition(".")[2]
    if key.startswith(DATA_PREFIX):
        classes = [registry.datasets.get(d).Options for d in registry.datasets.names()]
    else:
        classes = [LoopConfig, *(registry.variants.get(v).Config for v in registry.variants.names())]
    return any(typing.get_origin(fields(cls).get(name)) in (tuple, list) for cls in classes)


def expand(grid: GridFile, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    grid, overrides = with_overrides(grid, overrides)
    seeds = list(grid.seeds)
    axes = list(grid.grid.items())
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


def count_runs(grid: GridFile, overrides: dict[str, Any] | None = None) -> int:
    """How many raw runs expand() makes, by arithmetic (duplicates and skipped pairs included)."""
    grid, overrides = with_overrides(grid, overrides)
    n = len(grid.seeds)
    for values in grid.grid.values():
        n *= len(values)
    return n


def check_grid(grid: GridFile, overrides: dict[str, Any] | None = None, max_runs: int = DEFAULT_MAX_RUNS) -> None:
    """Every key and value of the grid checked on its own, then the run count against max_runs.

    A key passes when some run of the grid could take it: some variant the grid names (the scope's,
    for `dcgan.width`) with some dataset it names. How keys combine is left to resolve()."""
    grid, overrides = with_overrides(grid, overrides)
    where = grid.path or grid.name
    parts = [(f"{where} (base)", grid.base)]
    for axis, values in grid.grid.items():
        if axis not in overrides:
            parts += [(f"{where} (grid axis {short(axis, 24)}, value {i + 1})", v if isinstance(v, dict) else {axis: v})
                      for i, v in enumerate(values)]
    parts = [(label, {k: v for k, v in keys.items() if k not in overrides}) for label, keys in parts]
    parts.append(("--set", overrides))
    named = {"variant": {}, "dataset": {}}
    for label, keys in parts:
        for kind, table in (("variant", registry.variants), ("dataset", registry.datasets)):
            if kind in keys:
                cls = registered(table, keys[kind], label)
                named[kind][cls.name] = cls
    for kind, classes in named.items():
        if not classes:
            raise BenchError(f"{where}: missing '{kind}'; set it in base, grid or with --set {kind}=NAME")
    variants, datasets = list(named["variant"].values()), list(named["dataset"].values())
    for label, keys in parts:
        for key, value in keys.items():
            if key not in ("variant", "dataset", DATA_IDENTITY):
                _check_alone(key, value, variants, datasets, label)
    n = count_runs(grid, overrides)
    if n > max_runs:
        seeds = len(grid.seeds)
        factors = [f"{seeds:,} seeds"] + [f"{len(v):,} {axis}" for axis, v in grid.grid.items() if axis not in overrides]
        count = f"{n:,}" if n < 10**15 else f"about 10^{int((n.bit_length() - 1) * 0.30103)}"
        raise BenchError(f"{where}: the grid makes {count} runs ({clip(' x '.join(factors), 80)}), over the limit of "
                         f"{max_runs:,}; shrink an axis or the seeds, or raise --max-runs")


def _check_alone(key: str, value: Any, variants: list, datasets: list, where: str) -> None:
    """Raise unless some (variant, dataset) of the grid takes key: value. A bad value beats an
    unknown key in the message: `width: -1` is wrong for dcgan, not missing from mlp_gan."""
    scope, name = split_scope(key, where)
    if scope is not None:
        variants, key = [registry.variants.get(scope)], name
    pairs = [(variants[0], d) for d in datasets] if key.startswith(DATA_PREFIX) else [(v, datasets[0]) for v in variants]
    unknown = bad = None
    for variant, dataset in pairs:
        try:
            check_key(key, value, variant, dataset, where)
            return
        except UnknownKey as exc:
            unknown = unknown or exc
        except BenchError as exc:
            bad = bad or exc
    raise bad or unknown


def resolve_all(grid: GridFile, overrides: dict[str, Any] | None = None, smoke: bool = False,
                max_runs: int = DEFAULT_MAX_RUNS) -> tuple[list[RunConfig], list[str]]:
    """Resolve every run before any starts: (configs, skipped reasons).

    Duplicates (same run id) are kept once, in order. A variant/dataset pair that cannot work
    (an image net on 2-D points) is skipped with its reason, so a product over both axes is
    usable; a grid left with no runs is an error. A grid of more than max_runs runs is refused.
    """
    check_grid(grid, overrides, max_runs)
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
