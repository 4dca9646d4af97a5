"""Property tests over grid files (issue 13): whatever a grid file holds, `bench run` ends in exit 0,
or in exit 2 with one short `error:` line, within seconds and without a traceback, creating nothing
outside its results folder; and every config that --dry-run accepts trains two steps.

The grid files are valid ones mutated (wrong types, huge, negative and non-finite numbers, unknown
and odd keys, odd names) and hostile texts (alias bombs, deep nesting, 5,000-digit integers,
non-UTF-8 bytes, broken YAML). Runs go through bench.cli.main in this process; examples are
derandomized, so every CI run tries the same files.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import time
import types
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import registry
from bench.config.checks import Range, field_range
from bench.cli import main
from bench.config.schema import LoopConfig, config_fields, parse_grid
from bench.errors import BenchError
from bench.config.grid import resolve_all
from bench.train.loop import train
from bench.store.runs import RunDir

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.filter_too_much, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=6)
TRAIN = settings(FUZZ, max_examples=5)  # per variant

VARIANTS = registry.variants.names()
DATASETS = registry.datasets.names()
OPTIONS = {name: registry.variants.get(name).Config for name in VARIANTS}
DATA_OPTIONS = {name: registry.datasets.get(name).Options for name in DATASETS}
TINY = {"steps": 20, "batch_size": 16, "log_every": 10, "ckpt_every": 10, "eval_every": -1, "image_size": 8}
KEYS = sorted({*config_fields(LoopConfig), *(k for c in OPTIONS.values() for k in config_fields(c)),
               *("data." + k for c in DATA_OPTIONS.values() for k in config_fields(c))})
ODD_KEYS = ["lr_dd", "", " ", "seed", "data.", "data.nope", "dcgan.width", "wgan.clip", "gan9.lr_g", "dcgan.",
            "a\nb", "x" * 300, "☃", "data_identity", "variant.lr_g"]
ODD_NAMES = ["a/b", "a\\b", "x\n", "..", ".", "", "-x", "a" * 65, "名前", "ok.name", "ok-1", 7, None, ["x"]]
# data.root only ever points at folders that are missing or empty: a root of / would walk the disk
ROOTS = ["", "missing", "empty", "./missing"]

ints = st.one_of(st.integers(-3, 300), st.sampled_from([2**32 - 1, 2**32, 10**8, 10**8 + 1, 10**11, 10**13,
                                                        10**300, -10**300, 2**64]))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, 1.0, 0.5, 0.999, 1.5, 5.0, -5.0, 1e-4, 1e300, 1e-320]))
texts = st.one_of(st.sampled_from(["1e3", "1E-4", "2.5e-4", "nan", "inf", "-inf", "cpu", "auto", "cuda:0", "relu",
                                   "batch", "layer", "none", "projection", "rmsprop", "", "fast", "cpu\n", "a\x00b"]),
                  st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
scalars = st.one_of(ints, floats, texts, st.booleans(), st.none())
SAFE_KEYS = [k for k in KEYS if k != "data.root"]  # junk never names a folder (see ROOTS)
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.sampled_from(SAFE_KEYS + ODD_KEYS), inner,
                                                                     max_size=3)), max_leaves=6)


def plausible(key: str) -> st.SearchStrategy:
    """Values of the key's own type, mostly in its range, some at or past its ends (junk for unknown keys)."""
    if key == "data.root":
        return st.sampled_from(ROOTS)
    if key in ("variant", "dataset"):
        return st.sampled_from((VARIANTS if key == "variant" else DATASETS) + ["stylegan9", "", 3])
    for cls in [LoopConfig, *OPTIONS.values(), *DATA_OPTIONS.values()]:
        name = key[len("data."):] if key.startswith("data.") else key
        if key.startswith("data.") == (cls in DATA_OPTIONS.values()) and name in config_fields(cls):
            return _typed(config_fields(cls)[name], field_range(cls, name))
    return junk


def _typed(annotation, bounds: Range | None) -> st.SearchStrategy:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return st.one_of(st.sampled_from(args), st.sampled_from(args), texts)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(st.none(), _typed([a for a in args if a is not type(None)][0], bounds))
    if origin is tuple:  # as lists: that is how YAML writes them
        if args[-1] is Ellipsis:
            return st.lists(_typed(args[0], bounds), min_size=1, max_size=3)
        return st.tuples(*(_typed(a, bounds) for a in args)).map(list)
    if annotation is int and bounds is not None:
        lo, hi = int(bounds.lo), int(bounds.hi)
        inside = st.integers(lo, min(hi, lo + 64))
        return st.one_of(inside, inside, inside, st.sampled_from([lo, hi, lo - 1, hi + 1]), ints)
    if annotation is float and bounds is not None:
        hi = min(bounds.hi, 10.0)
        inside = st.floats(bounds.lo, hi, exclude_min=bounds.lo_open, exclude_max=hi not in bounds)
        exponent = inside.map(lambda x: f"{x:e}")  # "2.500000e-01": a string YAML 1.1 leaves unread
        return st.one_of(inside, inside, exponent, st.sampled_from([bounds.lo, bounds.hi, -1.0, math.nan]), floats)
    return {bool: st.one_of(st.booleans(), st.booleans(), junk), str: texts, int: ints, float: floats}.get(
        annotation, junk)


def entries(n: int, own: list[str] = KEYS) -> st.SearchStrategy:
    """Up to n key: value pairs, the keys mostly from `own` (the variant's and the loop's)."""
    keys = st.one_of(st.sampled_from(own), st.sampled_from(own), st.sampled_from(KEYS),
                     st.sampled_from(ODD_KEYS + ["variant", "dataset"]))

    def value(k: str) -> st.SearchStrategy:
        return plausible(k) if k == "data.root" else st.one_of(plausible(k), plausible(k), junk)

    return st.lists(keys.flatmap(lambda k: st.tuples(st.just(k), value(k))), max_size=n).map(dict)


def sometimes(draw, odd: st.SearchStrategy, usual: st.SearchStrategy):
    """One draw in four from `odd`, else from `usual` (the simpler choice, which Hypothesis favours)."""
    return draw(odd) if draw(st.integers(0, 3)) == 3 else draw(usual)


@st.composite
def structured(draw) -> bytes:
    """A valid tiny grid, then mutated: what a user might write, and what they should not."""
    variant = draw(st.sampled_from(VARIANTS))
    dataset = draw(st.sampled_from(["digits", "digits", "ring8", "grid25", "shapes", "stacked_digits", "imagefolder"]))
    own = sorted({*config_fields(LoopConfig), *config_fields(OPTIONS[variant])})
    base = {"variant": variant, "dataset": dataset, **TINY, **draw(entries(2, own))}
    top: dict = {}
    top["name"] = sometimes(draw, st.sampled_from(ODD_NAMES), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,8}",
                                                                              fullmatch=True))
    top["seeds"] = sometimes(draw, st.one_of(st.sampled_from([0, -1, 10**6, 10**12, 2**32 + 1]),
                                             st.lists(ints, max_size=3), junk),
                             st.one_of(st.integers(1, 3), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3)))
    top["base"] = sometimes(draw, st.one_of(junk, st.just(base)), st.just(base))
    axes = {}
    names = st.one_of(st.sampled_from(own), st.sampled_from(KEYS), st.sampled_from(ODD_KEYS + ["labels", "variant"]))
    for axis in draw(st.lists(names, max_size=2, unique=True)):
        values = st.lists(plausible(axis), min_size=1, max_size=3)
        bundle = entries(2, own)
        named = st.dictionaries(st.one_of(st.sampled_from(ODD_NAMES[:6]), st.sampled_from(["a", "b", "one_sided"])),
                                st.one_of(plausible(axis), bundle), min_size=1, max_size=2)
        odd = [] if axis == "data.root" else [junk]
        axes[axis] = draw(st.one_of(values, values, values, st.lists(bundle, min_size=1, max_size=2), named, *odd))
    if draw(st.integers(0, 15)) == 15:  # many small axes: past the run limit, refused by arithmetic
        axes.update({k: [1, 2, 3] for k in ("z_dim", "d_steps", "g_steps", "width", "embed_dim", "batch_size",
                                             "log_every", "ckpt_every", "steps")})
    if axes:
        top["grid"] = axes
    if draw(st.integers(0, 7)) == 7:
        top[draw(st.sampled_from(["description", "sweep", 1, "published"]))] = draw(junk)
    if draw(st.integers(0, 7)) == 7:  # a paper's numbers for this grid (bench/config/published.py), perhaps mangled
        value = st.fixed_dictionaries({"row": texts, "metric": st.sampled_from(["modes_covered", "fid", "x", 3]),
                                       "config": st.one_of(st.just({"dataset": dataset}), junk),
                                       "mean": st.one_of(floats, ints, texts), "spread": st.one_of(floats, junk)})
        top["published"] = draw(st.fixed_dictionaries({
            "source": st.fixed_dictionaries({"paper": texts, "year": ints, "table": st.one_of(texts, junk)}),
            "values": st.lists(value, max_size=2)}, optional={"spread": junk}))
    return yaml.safe_dump(top, sort_keys=False, allow_unicode=True).encode()


def _bomb(levels: int) -> str:
    items = ["&l0 [" + ", ".join(["x"] * 9) + "]"]
    items += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


BASE = "base: {variant: mlp_gan, dataset: ring8, steps: 20, batch_size: 16, log_every: 10, ckpt_every: 10, eval_every: -1}\n"


@st.composite
def hostile(draw) -> bytes:
    """Texts that no YAML dump produces: alias bombs, deep nesting, huge integers, bad bytes."""
    where = draw(st.sampled_from(["base", "axis", "seeds", "name", "description", "top"]))
    value = draw(st.one_of(
        st.integers(2, 9).map(_bomb),
        st.sampled_from([50, 500, 1000, 5000]).flatmap(
            lambda n: st.sampled_from(["[" * n + "]" * n, "{a: " * n + "1" + "}" * n])),
        st.sampled_from([300, 5000]).map(lambda n: "1" + "0" * n),
        st.sampled_from(['"x\\n"', "a/b", "1e3", ".nan", "-.inf", "!!binary aGk=", "!!set {a, b}", "2021-13-45",
                         "!!python/object:os.system x", "*undefined", "&a [*a]", "0x1F", "0o17", "1_000", "~"]),
    ))
    text = {"base": BASE.replace("ckpt_every: 10", f"ckpt_every: 10, lr_g: {value}"),
            "axis": BASE + f"grid: {{lr_g: {value}}}\n", "seeds": BASE + f"seeds: {value}\n",
            "name": f"name: {value}\n" + BASE, "description": BASE + f"description: {value}\n",
            "top": f"{value}\n"}[where]
    data = text.encode()
    mangle = draw(st.integers(0, 4))
    if mangle == 1:  # bytes that are not UTF-8 somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"])) + data[at:]
    elif mangle == 2:  # cut short
        data = data[:draw(st.integers(0, len(data)))]
    return data


grid_files = st.one_of(structured(), structured(), hostile(), st.binary(max_size=64))


def bench(args: list[str], cwd: Path) -> tuple[int, str, str, float]:
    out, err, old = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            start = time.perf_counter()
            code = main(args)
            seconds = time.perf_counter() - start
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue(), seconds


def check_outcome(code: int, err: str, seconds: float, limit: float = 5) -> None:
    assert "Traceback" not in err, err
    assert seconds < limit, seconds
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err[:600]
        # an unknown key lists every key the run accepts, grouped (loop, variant, data): longer by design
        assert len(lines[0]) <= (800 if "Valid keys: loop:" in lines[0] else 300), lines[0]


@pytest.fixture
def examples(tmp_path, monkeypatch, bench_cache):
    """A fresh folder per example, holding g.yaml and an empty folder 'empty'."""
    monkeypatch.delenv("BENCH_DATA", raising=False)
    monkeypatch.delenv("BENCH_RESULTS", raising=False)
    counter = itertools.count()

    def make(data: bytes) -> Path:
        folder = tmp_path / f"e{next(counter)}"
        (folder / "empty").mkdir(parents=True)
        (folder / "g.yaml").write_bytes(data)
        return folder

    return make


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@FUZZ
@given(data=grid_files)
def test_any_grid_file_is_run_or_refused_in_one_line(data, examples):
    folder = examples(data)
    before = _tree(folder)
    code, _, err, seconds = bench(["run", "g.yaml", "--dry-run", "--results", "results"], folder)
    check_outcome(code, err, seconds)
    assert _tree(folder) == before  # a dry run creates nothing, not even the results folder


small_grids = st.fixed_dictionaries({
    "name": st.sampled_from(["f1", "f2"]),
    "seeds": st.sampled_from([1, 2, [7]]),
    "base": st.fixed_dictionaries({"variant": st.sampled_from(["mlp_gan", "wgan"]), "dataset": st.just("ring8"),
                                   "steps": st.just(2), "batch_size": st.just(4), "log_every": st.sampled_from([1, 2]),
                                   "ckpt_every": st.just(2), "eval_every": st.just(-1)}),
}, optional={"grid": st.sampled_from([
    {"labels": {"off": {"lr_g": 1e-4}, "fast": {"lr_g": "1e-3"}}},  # named bundles, a YAML 1.1 exponent
    {"lr_d": ["2E-4", 5e-5]},
    {"d_steps": [1, 0]},  # 0 is refused before anything runs
    {"lr_g": [".nan"]},
    {"seed": [1]},
])})


@FEW
@given(grid=small_grids)
def test_real_runs_create_only_run_folders(grid, examples):
    folder = examples(yaml.safe_dump(grid, sort_keys=False).encode())
    code, _, err, seconds = bench(["run", "g.yaml", "--results", "results"], folder)
    check_outcome(code, err, seconds, limit=60)  # training takes its time; 5 s is the bound for checking
    created = sorted(set(_tree(folder)) - {"g.yaml", "empty"})
    if code == 2:
        assert created == []
    else:
        runs = [p for p in (folder / "results" / grid["name"]).iterdir() if p.is_dir()]
        assert runs and all((p / "status.json").is_file() for p in runs)
        assert all(c == "results" or c.startswith("results/") for c in created)


# ------------------------------------------------------------------ accepted configs train

SMALL = {"z_dim": 16, "width": 8, "hidden_g": 16, "hidden_d": 16, "embed_dim": 8, "maxout_pieces": 4,
         "d_steps": 3, "g_steps": 3, "data.count": 64, "data.classes": 4, "data.per_class": 4}


def _option(key: str, annotation, bounds: Range | None) -> st.SearchStrategy | None:
    """A value the key's range admits, its edges included; net and data sizes kept small for speed.
    None for a kind of key this does not draw (text: a folder, a device)."""
    if bounds is not None and key in SMALL:
        bounds = Range(bounds.lo, min(bounds.hi, SMALL[key]))
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if annotation is bool:
        return st.booleans()
    if origin in (typing.Union, types.UnionType):
        inner = _option(key, [a for a in args if a is not type(None)][0], bounds)
        return st.none() if inner is None else st.one_of(st.none(), inner)
    if origin is tuple:
        item = _option(key, args[0], bounds)
        if item is None:
            return None
        return st.lists(item, min_size=1, max_size=2) if args[-1] is Ellipsis else st.tuples(*[item] * len(args))
    if annotation is int:
        return st.integers(int(bounds.lo), int(bounds.hi))
    if annotation is float:
        hi = min(bounds.hi, 10.0)
        edges = [e for e in (bounds.lo, hi) if e in bounds]
        return st.one_of(st.sampled_from(edges or [hi / 2]), st.floats(bounds.lo, hi, exclude_min=bounds.lo_open,
                                                                        exclude_max=hi not in bounds))
    return None


@st.composite
def accepted_configs(draw, variant: str) -> dict:
    kinds = registry.variants.get(variant).data_kinds
    dataset = draw(st.sampled_from([d for d in ("digits", "shapes", "stacked_digits", "ring8", "grid25")
                                    if registry.datasets.get(d).kind in kinds]))
    raw = {"variant": variant, "dataset": dataset, "steps": 2, "batch_size": 4, "image_size": 8, "ckpt_every": 2,
           "log_every": draw(st.sampled_from([1, 2])), "eval_every": -1, "device": "cpu",
           "amp": draw(st.booleans()), "channels_last": draw(st.booleans())}
    cls = OPTIONS[variant]
    for key, annotation in config_fields(cls).items():
        values = _option(key, annotation, field_range(cls, key))
        if values is not None and draw(st.integers(0, 2)) == 0:
            raw[key] = draw(values)
    data_cls = DATA_OPTIONS[dataset]
    for key, annotation in config_fields(data_cls).items():
        values = _option("data." + key, annotation, field_range(data_cls, key))
        if values is not None:
            raw["data." + key] = draw(values)
    if variant == "cgan" and dataset == "shapes":
        raw["data.classes"] = max(2, raw["data.classes"])  # a conditional net needs two classes (at build time)
    return raw


@pytest.mark.parametrize("variant", VARIANTS)
@TRAIN
@given(data=st.data())
def test_every_config_the_dry_run_accepts_trains_two_steps(variant, data, tmp_path_factory):
    raw = data.draw(accepted_configs(variant))
    try:
        (config,), _ = resolve_all(parse_grid({"name": "t", "base": raw}, "t.yaml"))
    except BenchError:
        return  # refused up front (an image net on points, wgan_gp with batch norm, ...): what --dry-run says
    run = RunDir(tmp_path_factory.mktemp("train"), "t", config.run_id)
    run.write_config(config.flat())
    assert train(run, config) in ("done", "diverged")
