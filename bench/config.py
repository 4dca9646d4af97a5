"""Grid files and run configs: YAML in, typed frozen dataclasses out, every key checked.

A run config is a flat mapping: `variant`, `dataset`, the loop keys below, the variant's own
options (its Config dataclass) and dataset options under `data.` (its Options dataclass). Unknown
keys and wrong types are errors that name the key and the valid choices.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from bench import registry
from bench.errors import BenchError
from bench.identity import DATA_IDENTITY, NOT_HASHED, run_id

DATA_PREFIX = "data."
IMAGE_SIZES = (8, 16, 32, 64, 128)
_GRID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class LoopConfig:
    """Keys of the shared training loop, common to every variant and dataset."""

    seed: int = 0
    steps: int = 2000  # loop steps; each does d_steps D updates then g_steps G updates
    batch_size: int = 64
    image_size: int = 32  # side in pixels for image datasets (16, 32 or 64); unused for points
    log_every: int = 100  # steps per loss flush, the one host sync of the loop
    ckpt_every: int = 500  # steps per checkpoint; a multiple of log_every
    sample_every: int = 0  # steps per sample grid in the run folder; 0 = final grid only
    # steps per in-training (curve) evaluation, a multiple of log_every; 0 = auto (about 20, log-spaced
    # early, PROTOCOLS 7.2); -1 = no evaluation at all (curve and final), e.g. for `bench eval` later
    eval_every: int = 0
    # generated samples per evaluation, curve and final alike; 0 = the protocol's counts (PROTOCOLS:
    # 2k curve / 10k final images, 2,500 points, 26k stacked digits). The count is part of every label.
    eval_n: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = False  # NHWC memory format for conv nets (CUDA fast path)
    # Fast paths (issue 8; `bench speed --paths` measures each). amp changes the numbers, so it is part
    # of the run id; compile and fused_optim only change how fast the same math runs.
    amp: bool = False  # bf16 autocast of the forward passes; losses stay float32
    compile: bool = False  # torch.compile G and D; eager where it fails (recorded in status.json)
    fused_optim: bool = True  # fused Adam kernels on CUDA (ignored on CPU)


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved run: defaults filled in, every value type-checked."""

    variant: str
    dataset: str
    loop: LoopConfig
    options: Any  # the variant's Config instance
    data: Any  # the dataset's Options instance
    # Content fingerprint of file data, filled in by grid.resolve_all (bench/identity.py); "" for
    # built-in data, whose name and options already say what it is.
    data_identity: str = ""

    def flat(self) -> dict[str, Any]:
        """The canonical flat mapping, as written to config.yaml and hashed into the run id."""
        out: dict[str, Any] = {"variant": self.variant, "dataset": self.dataset}
        out.update(_plain(dataclasses.asdict(self.loop)))
        out.update(_plain(dataclasses.asdict(self.options)))
        out.update({DATA_PREFIX + k: v for k, v in _plain(dataclasses.asdict(self.data)).items()})
        if self.data_identity:
            out[DATA_IDENTITY] = self.data_identity
        return out

    @property
    def run_id(self) -> str:
        return run_id(self.flat())


def _plain(d: dict) -> dict:
    """Tuples become lists so YAML and JSON round-trip the same value."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def resolve(raw: dict[str, Any], where: str = "config") -> RunConfig:
    """Turn a flat mapping of user keys into a RunConfig, or raise BenchError naming the bad key."""
    raw = dict(raw)
    for key in ("variant", "dataset"):
        if not isinstance(raw.get(key), str):
            raise BenchError(f"{where}: missing '{key}'; set it in base, grid or with --set {key}=NAME")
    variant_name, dataset_name = raw.pop("variant"), raw.pop("dataset")
    identity = raw.pop(DATA_IDENTITY, "")  # written by the harness into config.yaml, never by a user
    if not isinstance(identity, str) or not re.fullmatch(r"[0-9a-f]{0,64}", identity):
        raise BenchError(f"{where}: '{DATA_IDENTITY}' must be a hex fingerprint; delete the run folder to retrain")
    variant = registry.variants.get(variant_name)
    dataset = registry.datasets.get(dataset_name)
    raw = _apply_scopes(raw, variant_name, where)
    loop_kw, option_kw, data_kw = {}, {}, {}
    loop_fields = _fields(LoopConfig)
    option_fields = _fields(variant.Config)
    data_fields = _fields(dataset.Options)
    for key, value in raw.items():
        if key.startswith(DATA_PREFIX):
            name = key[len(DATA_PREFIX):]
            if name not in data_fields:
                valid = ", ".join(DATA_PREFIX + k for k in sorted(data_fields))
                raise BenchError(f"{where}: dataset '{dataset_name}' has no key '{key}'; valid keys: {valid}")
            data_kw[name] = check_type(value, data_fields[name], key, where)
        elif key in loop_fields:
            loop_kw[key] = check_type(value, loop_fields[key], key, where)
        elif key in option_fields:
            option_kw[key] = check_type(value, option_fields[key], key, where)
        else:
            valid = ", ".join(sorted(["variant", "dataset", *loop_fields, *option_fields]))
            raise BenchError(f"{where}: variant '{variant_name}' has no key '{key}'; valid keys: {valid}")
    try:
        config = RunConfig(variant_name, dataset_name, LoopConfig(**loop_kw),
                           variant.Config(**option_kw), dataset.Options(**data_kw), identity)
    except ValueError as exc:  # a dataclass __post_init__ rejecting a combination of values
        raise BenchError(f"{where}: {exc}") from None
    _check_loop(config.loop, where)
    if dataset.kind not in variant.data_kinds:
        raise Incompatible(f"{where}: variant '{variant_name}' needs {' or '.join(variant.data_kinds)}, "
                           f"dataset '{dataset_name}' is {dataset.kind}")
    if dataset.kind == "images" and config.loop.image_size not in IMAGE_SIZES:
        raise BenchError(f"{where}: 'image_size' must be one of {', '.join(map(str, IMAGE_SIZES))}, "
                         f"got {config.loop.image_size}")
    return config


class Incompatible(BenchError):
    """A variant paired with data it cannot model (an image net on 2-D points)."""


def shrink_for_smoke(config: RunConfig) -> RunConfig:
    """A tiny version of a run for CI: few steps, small batches and images. Its id differs."""
    loop = config.loop
    small = dataclasses.replace(loop, steps=min(loop.steps, 20), batch_size=min(loop.batch_size, 16),
                                image_size=min(loop.image_size, 16), log_every=10, ckpt_every=10,
                                sample_every=0, eval_n=min(loop.eval_n or 500, 500))
    return dataclasses.replace(config, loop=small)


def _apply_scopes(raw: dict[str, Any], variant_name: str, where: str) -> dict[str, Any]:
    """Keys `VARIANT.key` apply to runs of that variant only and win over plain `key`."""
    plain, scoped = {}, {}
    for key, value in raw.items():
        scope, dot, name = key.partition(".")
        if not dot or key.startswith(DATA_PREFIX):
            plain[key] = value
        elif scope not in registry.variants.names():
            raise BenchError(f"{where}: '{key}' is scoped to unknown variant '{scope}'; valid scopes: data, "
                             + ", ".join(registry.variants.names()))
        elif scope == variant_name:
            scoped[name] = value
    return {**plain, **scoped}


def _check_loop(loop: LoopConfig, where: str) -> None:
    positive = ["steps", "batch_size", "log_every", "ckpt_every", "image_size"]
    for key in positive:
        if getattr(loop, key) <= 0:
            raise BenchError(f"{where}: '{key}' must be positive, got {getattr(loop, key)}")
    if loop.ckpt_every % loop.log_every:
        raise BenchError(f"{where}: 'ckpt_every' ({loop.ckpt_every}) must be a multiple of 'log_every' "
                         f"({loop.log_every}); checkpoints are taken at flushes")
    if loop.sample_every < 0:
        raise BenchError(f"{where}: 'sample_every' must be >= 0")
    if loop.eval_n < 0 or 0 < loop.eval_n < 100:
        raise BenchError(f"{where}: 'eval_n' must be 0 (the protocol's sample counts) or at least 100, "
                         f"got {loop.eval_n}")
    if loop.eval_every < -1 or (loop.eval_every > 0 and loop.eval_every % loop.log_every):
        raise BenchError(f"{where}: 'eval_every' must be -1 (none), 0 (auto) or a multiple of 'log_every' "
                         f"({loop.log_every}), got {loop.eval_every}")
    if not re.match(r"^(auto|cpu|cuda(:\d+)?)$", loop.device):
        raise BenchError(f"{where}: 'device' must be auto, cpu, cuda or cuda:N, got {loop.device!r}")


def _fields(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_type(value: Any, annotation: Any, key: str, where: str) -> Any:
    """Return value converted to the annotated type (int -> float, list -> tuple) or raise."""
    def fail(expected: str):
        raise BenchError(f"{where}: '{key}' must be {expected}, got {value!r}")

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return check_type(value, inner[0], key, where) if len(inner) == 1 else value
    if origin is Literal:
        if value not in args:
            fail("one of " + ", ".join(map(str, args)))
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)) or not value:
            fail("a non-empty list")
        return tuple(check_type(v, args[0], key, where) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            fail(f"a list of {len(args)} values")
        return tuple(check_type(v, a, key, where) for v, a in zip(value, args))
    raise TypeError(f"unsupported annotation {annotation!r} for {key}")  # our bug, not the user's


# ---------------------------------------------------------------- grid files

@dataclass(frozen=True)
class GridFile:
    """A parsed grid file: what the user asked for, before expansion."""

    name: str
    seeds: tuple[int, ...]
    base: dict[str, Any]
    grid: dict[str, list[Any]]  # axis -> values; a value may be a mapping of keys set together
    path: str = ""
    text: str = ""


GRID_KEYS = {"name", "seeds", "base", "grid", "description"}


def load_grid(path: str | Path) -> GridFile:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"grid file {path} not found; pass the path to a YAML grid such as ablations/smoke.yaml")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise BenchError(f"{path}: malformed YAML{at}: {getattr(exc, 'problem', exc)}; fix the syntax") from None
    return parse_grid(data, str(path), text)


def parse_grid(data: Any, where: str, text: str = "") -> GridFile:
    if not isinstance(data, dict):
        raise BenchError(f"{where}: a grid file must be a mapping with keys {', '.join(sorted(GRID_KEYS))}")
    unknown = set(data) - GRID_KEYS
    if unknown:
        raise BenchError(f"{where}: unknown top-level key '{sorted(unknown)[0]}'; valid keys: "
                         + ", ".join(sorted(GRID_KEYS)))
    name = data.get("name", Path(where).stem)
    if not isinstance(name, str) or not _GRID_NAME.match(name) or name in (".", ".."):
        raise BenchError(f"{where}: 'name' must be letters, digits, '_', '-' or '.', got {name!r}")
    seeds = data.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
        seeds = tuple(range(seeds))
    elif isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        seeds = tuple(seeds)
    else:
        raise BenchError(f"{where}: 'seeds' must be a positive count or a list of integers, got {seeds!r}")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise BenchError(f"{where}: 'base' must be a mapping of key: value")
    base = flatten_data_keys(base, where)
    if "seed" in base:
        raise BenchError(f"{where}: set seeds with the top-level 'seeds', not 'seed' in base")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise BenchError(f"{where}: 'grid' must be a mapping of key: [values]")
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise BenchError(f"{where}: grid axis '{axis}' must be a non-empty list, got {values!r}")
        if axis == "seed":
            raise BenchError(f"{where}: set seeds with the top-level 'seeds', not a 'seed' axis")
    grid = {axis: [flatten_data_keys(v, where) if isinstance(v, dict) else v for v in values]
            for axis, values in grid.items()}
    return GridFile(name, seeds, base, grid, where, text)


def flatten_data_keys(mapping: dict, where: str) -> dict:
    """Nested sections become dotted keys: `data: {root: x}` is `data.root: x`, and
    `dcgan: {width: 32}` is `dcgan.width: 32` (applies to dcgan runs only)."""
    out = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise BenchError(f"{where}: key {key!r} must be a string")
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are read as YAML scalars or lists (0.9, true, [0.5, 0.9])."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"--set {item!r}: expected key=value, e.g. --set real_label=0.9")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise BenchError(f"--set {item!r}: the value is not valid YAML; quote strings") from None
    return out
