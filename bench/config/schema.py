"""Grid files and run configs: YAML in, typed frozen dataclasses out, every key checked.

A run config is a flat mapping: `variant`, `dataset`, the loop keys below, the variant's own
options (its Config dataclass) and dataset options under `data.` (its Options dataclass). Unknown
keys and wrong types are errors that name the key and the valid choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from bench.config import published

from bench import registry
from bench.config.checks import SEED, STEPS, Range, clip, field_range, ranged, short
from bench.errors import BenchError
from bench.config.identity import DATA_IDENTITY, run_id

DATA_PREFIX = "data."
IMAGE_SIZES = (8, 16, 32, 64, 128)
_GRID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch: "$" lets a trailing newline pass


@dataclass(frozen=True)
class LoopConfig:
    """Keys of the shared training loop, common to every variant and dataset."""

    seed: int = ranged(0, SEED)
    steps: int = ranged(2000, STEPS)  # loop steps; each does d_steps D updates then g_steps G updates
    batch_size: int = ranged(64, Range(1, 2**16))
    image_size: int = ranged(32, Range(8, 128))  # side in pixels for image datasets (one of IMAGE_SIZES); unused for points
    # steps per loss flush, the one host sync of the loop; the loop buffers this many rows on the device
    log_every: int = ranged(100, Range(1, 10**5))
    ckpt_every: int = ranged(500, STEPS)  # steps per checkpoint; a multiple of log_every
    sample_every: int = ranged(0, Range(0, 10**8))  # steps per sample grid in the run folder; 0 = final grid only
    # steps per in-training (curve) evaluation, a multiple of log_every; 0 = auto (about 20, log-spaced
    # early, docs/protocols.md §7.2); -1 = no evaluation at all (curve and final), e.g. for `bench eval` later
    eval_every: int = ranged(0, Range(-1, 10**8))
    # generated samples per evaluation, curve and final alike; 0 = the protocol's counts (docs/protocols.md §2-4:
    # 2k curve / 10k final images, 2,500 points, 26k stacked digits). The count is part of every label.
    eval_n: int = ranged(0, Range(0, 10**5))
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = False  # NHWC memory format for conv nets (CUDA fast path)
    # Fast paths (issue 8; `bench speed --paths` measures each). amp changes the numbers, so it is part
    # of the run id; compile and fused_optim only change how fast the same math runs.
    amp: bool = False  # bf16 autocast of the forward passes; losses stay float32
    compile: bool = False  # torch.compile G and D; eager where it fails (recorded in status.json)
    fused_optim: bool = True  # fused Adam kernels on CUDA (ignored on CPU)
    log_tensorboard: bool = False  # also write flushes as TensorBoard events (extra: tensorboard); not hashed


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved run: defaults filled in, every value type-checked."""

    variant: str
    dataset: str
    loop: LoopConfig
    options: Any  # the variant's Config instance
    data: Any  # the dataset's Options instance
    # Content fingerprint of file data, filled in by grid.resolve_all (bench/config/identity.py); "" for
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
    variant = registered(registry.variants, variant_name, where)
    dataset = registered(registry.datasets, dataset_name, where)
    raw = _apply_scopes(raw, variant_name, where)
    loop_kw, option_kw, data_kw = {}, {}, {}
    sections = {"loop": loop_kw, "options": option_kw, "data": data_kw}
    for key, value in raw.items():
        section, name, checked = check_key(key, value, variant, dataset, where)
        sections[section][name] = checked
    try:
        config = RunConfig(variant_name, dataset_name, LoopConfig(**loop_kw),
                           variant.Config(**option_kw), dataset.Options(**data_kw), identity)
    except ValueError as exc:  # a dataclass __post_init__ rejecting a combination of values
        raise BenchError(f"{where}: {exc}") from None
    _check_loop(config.loop, where)
    if dataset.kind not in variant.data_kinds:
        raise Incompatible(f"{where}: variant '{variant_name}' needs {' or '.join(variant.data_kinds)}, "
                           f"dataset '{dataset_name}' is {dataset.kind}")
    if variant.conditional and dataset.labelled(config.data) is False:
        raise Incompatible(f"{where}: variant '{variant_name}' needs class labels, dataset '{dataset_name}' "
                           f"has none as configured; {dataset.label_fix}")
    if dataset.kind == "images" and config.loop.image_size not in IMAGE_SIZES:
        raise BenchError(f"{where}: 'image_size' must be one of {', '.join(map(str, IMAGE_SIZES))}, "
                         f"got {config.loop.image_size}")
    return config


class Incompatible(BenchError):
    """A variant paired with data it cannot model (an image net on 2-D points)."""


class UnknownKey(BenchError):
    """A key that the run's variant, loop and dataset all lack (as opposed to a bad value)."""


def registered(table: registry.Registry, name: Any, where: str) -> Any:
    """table.get(name), naming the user's value in its short form when it is not registered."""
    if not isinstance(name, str) or name not in table.names():
        raise BenchError(f"{where}: unknown {table.kind} {short(name)}; valid: {', '.join(table.names())}")
    return table.get(name)


def check_key(key: str, value: Any, variant: Any, dataset: Any, where: str) -> tuple[str, str, Any]:
    """One key of a run of `variant` on `dataset` (registry classes), scopes already applied:
    (section, field name, the value converted to the field's type and checked against its range)."""
    if key.startswith(DATA_PREFIX):
        name, cls, section = key[len(DATA_PREFIX):], dataset.Options, "data"
    elif key in config_fields(LoopConfig):
        name, cls, section = key, LoopConfig, "loop"
    else:
        name, cls, section = key, variant.Config, "options"
    fields = config_fields(cls)
    if name not in fields:
        raise UnknownKey(_unknown_key(key, variant, dataset, where))
    return section, name, check_type(value, fields[name], key, where, field_range(cls, name))


def _unknown_key(key: str, variant: Any, dataset: Any, where: str) -> str:
    """Lists the valid keys of the key's own kind and names the nearest key of any kind. The loop
    keys, the same for every run, are left to the README: with them the line would pass 300 characters."""
    if key.startswith(DATA_PREFIX):
        valid = sorted(DATA_PREFIX + k for k in config_fields(dataset.Options))
        head = f"dataset '{dataset.name}' has no key {short(key, 32)}; valid keys: {', '.join(valid)}"
    else:
        valid = sorted(config_fields(variant.Config))
        head = f"variant '{variant.name}' has no key {short(key, 32)}; valid keys: {', '.join(valid)}"
    near = difflib.get_close_matches(key, [*valid, *config_fields(LoopConfig), "variant", "dataset"], n=1)
    if near and len(key) <= 24:
        return f"{where}: {head}; did you mean '{near[0]}'?"
    return f"{where}: {head}" + ("" if key.startswith(DATA_PREFIX) else "; loop keys: README")


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
        scope, name = split_scope(key, where)
        if scope is None:
            plain[key] = value
        elif scope == variant_name:
            scoped[name] = value
    return {**plain, **scoped}


def split_scope(key: str, where: str) -> tuple[str | None, str]:
    """("dcgan", "width") for `dcgan.width`; (None, key) for a plain or `data.` key."""
    scope, dot, name = key.partition(".")
    if not dot or key.startswith(DATA_PREFIX):
        return None, key
    if scope not in registry.variants.names():
        raise BenchError(f"{where}: {short(key)} is scoped to unknown variant {short(scope)}; valid scopes: data, "
                         + ", ".join(registry.variants.names()))
    return scope, name


def _check_loop(loop: LoopConfig, where: str) -> None:
    """How loop keys combine; the range of each key on its own is declared in LoopConfig."""
    if loop.ckpt_every % loop.log_every:
        raise BenchError(f"{where}: 'ckpt_every' ({loop.ckpt_every}) must be a multiple of 'log_every' "
                         f"({loop.log_every}); checkpoints are taken at flushes")
    if 0 < loop.eval_n < 100:
        raise BenchError(f"{where}: 'eval_n' must be 0 (the protocol's sample counts) or at least 100, "
                         f"got {loop.eval_n}")
    if loop.eval_every > 0 and loop.eval_every % loop.log_every:
        raise BenchError(f"{where}: 'eval_every' must be -1 (none), 0 (auto) or a multiple of 'log_every' "
                         f"({loop.log_every}), got {loop.eval_every}")
    if loop.log_tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise BenchError(f"{where}: 'log_tensorboard' needs the tensorboard package; pip install -e '.[tensorboard]'")
    if not re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", loop.device):
        raise BenchError(f"{where}: 'device' must be auto, cpu, cuda or cuda:N, got {short(loop.device)}")


@functools.cache  # get_type_hints evaluates every annotation string: most of resolve's time
def config_fields(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


MAX_ITEMS = 64  # items of a list key of any length (hidden layer sizes)
MAX_TEXT = 1024  # characters of a string key (a folder, a device)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a NUL or newline in a path fails inside os calls


def check_type(value: Any, annotation: Any, key: str, where: str, bounds: Range | None = None) -> Any:
    """Return value converted to the annotated type (int -> float, list -> tuple) or raise. A number,
    or each number of a list, must lie in `bounds` (the field's declared range) when one is given."""
    def fail(expected: str):
        raise BenchError(f"{where}: {short(key)} must be {expected}, got {short(value)}")

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return check_type(value, inner[0], key, where, bounds) if len(inner) == 1 else value
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
        if bounds is not None and value not in bounds:
            fail(bounds.describe("an integer"))
        return value
    if annotation is float:
        number = _number(value)
        if number is None:
            fail("a number")
        if bounds is not None and number not in bounds:
            fail(bounds.describe("a number"))
        return number
    if annotation is str:
        if not isinstance(value, str):
            fail("a string")
        if len(value) > MAX_TEXT or _CONTROL.search(value):
            fail(f"one line of at most {MAX_TEXT:,} characters")
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_ITEMS:
            fail(f"a list of 1 to {MAX_ITEMS} values")
        return tuple(check_type(v, args[0], key, where, bounds) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            fail(f"a list of {len(args)} values")
        return tuple(check_type(v, a, key, where, bounds) for v, a in zip(value, args))
    raise TypeError(f"unsupported annotation {annotation!r} for {key}")  # our bug, not the user's


def _number(value: Any) -> float | None:
    """value as a float, or None. Strings that float() reads count: YAML 1.1 reads an exponent
    without a dot (1e3, 1E-4) as a string. "nan" and "inf" pass here and fail every finite range."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer past 1.8e308: outside every finite range
        return math.inf if value > 0 else -math.inf


# ---------------------------------------------------------------- grid files

@dataclass(frozen=True)
class GridFile:
    """A parsed grid file: what the user asked for, before expansion."""

    name: str
    seeds: tuple[int, ...] | range  # a count is kept as a range: the run limit refuses 10^12 before it is built
    base: dict[str, Any]
    grid: dict[str, list[Any]]  # axis -> values; a value may be a mapping of keys set together
    path: str = ""
    text: str = ""
    # axis -> the name of each value, for an axis written as a mapping of name: value (named bundles).
    # Names label runs in reports; they never enter a run's config, so its id is that of the list form.
    names: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    published: tuple = ()  # bench.config.published.Reported values: the paper's numbers this grid reproduces


GRID_KEYS = {"name", "seeds", "base", "grid", "description", "published"}


MAX_GRID_BYTES = 256 * 1024  # grid files are a page of YAML; PyYAML parses about 150 KB a second
MAX_DEPTH = 32  # collections within collections; a grid file needs about five levels
# What PyYAML raises besides YAMLError: ValueError from int() past Python's 4,300-digit limit or from
# a date like 2021-13-45, RecursionError where a structure is walked recursively.
_YAML_FAILS = (ValueError, TypeError, OverflowError, RecursionError)


class _TooDeep(Exception):
    pass


class _GridLoader(yaml.SafeLoader):
    """SafeLoader that stops at MAX_DEPTH: PyYAML's scanner slows with the square of the flow depth
    and its composer recurses once per level, so 1,000 brackets took seconds to end in RecursionError."""

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read_yaml(text: str) -> Any:
    """yaml.safe_load with the depth limit; raises _TooDeep past it."""
    return yaml.load(text, Loader=_GridLoader)  # noqa: S506 - a SafeLoader subclass


def load_grid(path: str | Path) -> GridFile:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"grid file {path} not found; pass the path to a YAML grid such as ablations/smoke.yaml")
    if path.stat().st_size > MAX_GRID_BYTES:
        raise BenchError(f"{path}: {path.stat().st_size:,} bytes is too large for a grid file (at most "
                         f"{MAX_GRID_BYTES:,}); list the values to try, not data")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                         f"save it as UTF-8") from None
    try:
        data = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = clip(str(getattr(exc, "problem", None) or exc), 120)
        raise BenchError(f"{path}: malformed YAML{at}: {problem}; fix the syntax") from None
    except _TooDeep:
        raise BenchError(f"{path}: collections nested more than {MAX_DEPTH} deep; flatten them (a grid file "
                         f"needs about five levels)") from None
    except _YAML_FAILS as exc:
        problem = "collections nested too deeply" if isinstance(exc, RecursionError) else clip(str(exc), 120)
        raise BenchError(f"{path}: a value cannot be read ({problem}); fix it") from None
    return parse_grid(data, str(path), text)


def parse_grid(data: Any, where: str, text: str = "") -> GridFile:
    """The grid file's structure checked; its keys and values are checked by grid.check_grid."""
    if not isinstance(data, dict):
        raise BenchError(f"{where}: a grid file must be a mapping with keys {', '.join(sorted(GRID_KEYS))}")
    unknown = [key for key in data if key not in GRID_KEYS]  # YAML keys need not be strings, nor sortable
    if unknown:
        raise BenchError(f"{where}: unknown top-level key {short(unknown[0])}; valid keys: "
                         + ", ".join(sorted(GRID_KEYS)))
    name = data.get("name", Path(where).stem)
    if not isinstance(name, str) or not _GRID_NAME.fullmatch(name) or name in (".", ".."):
        raise BenchError(f"{where}: 'name' must be 1 to 64 letters, digits, '_', '-' or '.', got {short(name)}")
    if not isinstance(data.get("description") or "", str):
        raise BenchError(f"{where}: 'description' must be text, got {short(data['description'])}")
    seeds = parse_seeds(data.get("seeds", 1), where)
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise BenchError(f"{where}: 'base' must be a mapping of key: value")
    base = flatten_data_keys(base, where)
    if "seed" in base:
        raise BenchError(f"{where}: set seeds with the top-level 'seeds', not 'seed' in base")
    axes = data.get("grid") or {}
    if not isinstance(axes, dict):
        raise BenchError(f"{where}: 'grid' must be a mapping of key: [values]")
    grid, names = {}, {}
    for axis, values in axes.items():
        if axis == "seed":
            raise BenchError(f"{where}: set seeds with the top-level 'seeds', not a 'seed' axis")
        if not isinstance(axis, str):
            raise BenchError(f"{where}: grid axis {short(axis)} must be a key name")
        if isinstance(values, dict) and values:
            names[axis] = list(values)
            bad = next((n for n in names[axis] if not isinstance(n, str) or not _GRID_NAME.fullmatch(n)), None)
            if bad is not None:
                raise BenchError(f"{where}: grid axis {short(axis, 24)} names a value {short(bad)}; value names are "
                                 f"1 to 64 letters, digits, '_', '-' or '.'")
            values = list(values.values())
        elif not isinstance(values, list) or not values:
            raise BenchError(f"{where}: grid axis {short(axis)} must be a non-empty list or a mapping of "
                             f"name: value, got {short(values)}")
        grid[axis] = [flatten_data_keys(v, where) if isinstance(v, dict) else v for v in values]
        if any(isinstance(v, dict) and "seed" in v for v in grid[axis]):
            raise BenchError(f"{where}: grid axis {short(axis, 24)} sets 'seed'; set seeds with the top-level "
                             f"'seeds'")
    return GridFile(name, seeds, base, grid, where, text, names, published.parse(data.get("published"), where, base, grid))


def parse_seeds(seeds: Any, where: str) -> tuple[int, ...] | range:
    """A count n (seeds 0..n-1) or a list of seeds, each one a valid numpy and torch seed."""
    if isinstance(seeds, int) and not isinstance(seeds, bool) and 1 <= seeds <= SEED.hi + 1:
        return range(seeds)
    if isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s in SEED
                                                 for s in seeds):
        return tuple(seeds)
    raise BenchError(f"{where}: 'seeds' must be a count from 1 to 2^32 or a list of integers from 0 to "
                     f"2^32 - 1, got {short(seeds)}")


def flatten_data_keys(mapping: dict, where: str) -> dict:
    """Nested sections become dotted keys: `data: {root: x}` is `data.root: x`, and
    `dcgan: {width: 32}` is `dcgan.width: 32` (applies to dcgan runs only)."""
    out = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise BenchError(f"{where}: key {short(key)} must be a string")
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
            raise BenchError(f"--set {short(item)}: expected key=value, e.g. --set real_label=0.9")
        try:
            out[key.strip()] = read_yaml(text) if text.strip() else ""
        except (yaml.YAMLError, _TooDeep, *_YAML_FAILS):
            raise BenchError(f"--set {short(item)}: the value is not valid YAML; quote strings") from None
    return out
