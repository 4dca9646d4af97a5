"""Property tests over the newer inputs (issue 26), as tests/test_grid_fuzz.py does for grid files:
`bench score` on generated arrays and image folders, `published:` sections, `--threshold` and
`--baseline` values, `bench explore` and `bench sample` options. Each ends in exit 0 with a right
result, or exit 2 with one `error:` line of at most 300 characters: never a traceback or a hang, and
nothing written outside the output it names. Examples are derandomized, so every CI run tries the
same inputs; the counts keep the file to well under a minute on a 2-core machine.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.errors import BenchError
from bench.report.synthetic import curve_record, write_run
from conftest import tiny_grid, train_grid
from test_grid_fuzz import FUZZ, _tree, bench, check_outcome, junk, texts

SIZE = 8  # every reference set here holds 8 px images


# ------------------------------------------------------------------ bench score: arrays


ARRAY_FAULTS = ["none"] * 6 + ["count", "channels", "size", "flat", "int", "uint8", "bool", "nan", "inf", "-inf",
                               "scale", "shift", "huge"]


@st.composite
def arrays(draw) -> tuple[np.ndarray, bool]:
    """An array for `samples` with at most one fault, and whether bench score must take it (no fault)."""
    fault = draw(st.sampled_from(ARRAY_FAULTS))
    n = draw(st.integers(0, 3) if fault == "count" else st.integers(10, 13))
    channels = draw(st.sampled_from([2, 4] if fault == "channels" else [1, 3]))
    h, w = draw(st.sampled_from([(SIZE, SIZE - 1), (SIZE + 1, SIZE + 1), (4, 4)])) if fault == "size" else (SIZE, SIZE)
    dtype = {"int": np.int64, "uint8": np.uint8, "bool": np.bool_}.get(fault) or draw(
        st.sampled_from([np.float32, np.float64, np.float16]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.random((n, channels, h, w))
    if draw(st.booleans()) and x.size:
        x.flat[0], x.flat[-1] = 0.0, 1.0  # the ends of [0, 1] are inside it
    if fault in ("nan", "inf", "-inf"):
        x.flat[draw(st.integers(0, x.size - 1))] = float(fault)
    elif fault in ("scale", "uint8", "int"):
        x = x * 255
    elif fault == "shift":
        x = x * 2 - 1
    elif fault == "huge":
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([1e30, -1e30, 1e300, -1e-3, 1.01]))
    with np.errstate(all="ignore"):
        x = x.astype(dtype)
    if fault == "flat":
        x = x.reshape(n, -1)
    return x, fault == "none"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, bench_cache) -> Path:
    """A valid reference set; scored once here, so the digits extractor is fitted before any example is timed."""
    path = tmp_path_factory.mktemp("ref") / "ref.npz"
    np.savez(path, samples=np.random.default_rng(1).random((12, 1, SIZE, SIZE)).astype(np.float32))
    code, _, err, _ = bench(["score", str(path), str(path), "--metrics", "fd"], path.parent)
    assert code == 0, err
    return path


@pytest.fixture
def folder(tmp_path):
    """A fresh empty folder per example."""
    count = iter(range(10**6))

    def make() -> Path:
        path = tmp_path / f"e{next(count)}"
        path.mkdir()
        return path

    return make


@settings(FUZZ, max_examples=50)
@given(case=arrays(), side=st.sampled_from(["a", "b"]))
def test_score_takes_exactly_the_arrays_of_images_in_0_1(case, side, reference, folder):
    x, ok = case
    here = folder()
    np.savez(here / "x.npz", samples=x)
    args = [str(here / "x.npz"), str(reference)] if side == "a" else [str(reference), str(here / "x.npz")]
    code, _, err, seconds = bench(["score", *args, "--metrics", "fd", "--out", "fd.json"], here)
    check_outcome(code, err, seconds, limit=30)
    assert (code == 0) == ok, (x.dtype, x.shape, err)
    event("scored" if ok else "refused")
    assert sorted(p.name for p in here.iterdir()) == (["fd.json", "x.npz"] if ok else ["x.npz"])
    if ok:
        (rec,) = json.loads((here / "fd.json").read_text())["records"][:1]
        assert rec["name"] == "fd" and math.isfinite(rec["value"]) and rec["value"] > -1e-3


# ------------------------------------------------------------------ bench score: folders

MODES = ["L", "I;16", "RGB", "RGBA", "P", "1", "LA"]
FAITHFUL = ("L", "I;16", "RGB")  # modes that hold the grey pixels exactly: the set must score as the array


def _save(path: Path, grey: np.ndarray, mode: str, size: tuple[int, int]) -> None:
    image = Image.fromarray(grey)
    if mode == "I;16":
        image = Image.fromarray(grey.astype(np.uint16) * 257)
    elif mode != "L":
        image = image.convert(mode)
    if size != grey.shape:
        image = image.resize(size)
    image.save(path)


@st.composite
def image_folders(draw):
    n = draw(st.one_of(st.integers(0, 3), st.integers(10, 12)))
    mode = draw(st.sampled_from(MODES))
    odd_size = draw(st.sampled_from([None] * 6 + [(SIZE, SIZE - 1), (SIZE + 2, SIZE + 2)]))
    odd_at = draw(st.integers(0, max(n - 1, 0)))
    corrupt = draw(st.sampled_from([None] * 5 + ["truncated", "garbage", "empty"]))
    seed = draw(st.integers(0, 2**16))
    return n, mode, odd_size, odd_at, corrupt, seed


@settings(FUZZ, max_examples=40)
@given(case=image_folders())
def test_score_takes_exactly_the_folders_that_decode_to_one_square_size(case, folder, reference):
    n, mode, odd_size, odd_at, corrupt, seed = case
    here = folder()
    grey = np.random.default_rng(seed).integers(0, 256, (max(n, 1), SIZE, SIZE), dtype=np.uint8)[:n]
    (here / "set").mkdir()
    for i, g in enumerate(grey):
        _save(here / "set" / f"{i:02d}.png", g, mode, odd_size if (odd_size and i == odd_at) else (SIZE, SIZE))
    if corrupt and n:
        bad = here / "set" / f"{odd_at:02d}.png"
        data = bad.read_bytes()
        bad.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x89PNG junk", "empty": b""}[corrupt])
    np.savez(here / "ref.npz", samples=(grey[:, None] / 255).astype(np.float32))
    code, _, err, seconds = bench(["score", "set", "ref.npz", "--metrics", "fd", "--out", "fd.json"], here)
    check_outcome(code, err, seconds, limit=30)
    ok = n >= 10 and not corrupt and odd_size is None
    assert (code == 0) == ok, (case, err)
    event("scored" if ok else "refused")
    if ok and mode in FAITHFUL:
        assert abs(json.loads((here / "fd.json").read_text())["records"][0]["value"]) < 1e-3
    assert sorted(p.name for p in here.iterdir()) == (["fd.json", "ref.npz", "set"] if ok else ["ref.npz", "set"])


# ------------------------------------------------------------------ published: sections

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**400, 10**400),
                    st.sampled_from(["6e0", "1E-3", "2.5", "nan", "-inf", "1e999", "", "six", 10**400]))
values = st.fixed_dictionaries(
    {"row": st.one_of(texts, st.just("<script>x</script>"), st.text(max_size=400)),
     "metric": st.sampled_from(["modes_covered", "fid", "hq_fraction", "x", 3, None]),
     "config": st.one_of(st.just({"variant": "dcgan"}), st.just({"variant": "nosuch"}), st.just({"lr": 1}), junk),
     "mean": numbers},
    optional={"spread": st.one_of(numbers, st.lists(numbers, max_size=3), junk),
              "kind": st.sampled_from(["std", "sem", "range", "none", "x", 1]),
              "unit": st.sampled_from(["", "%", "pct", None]), "runs": st.one_of(st.integers(-2, 5), junk),
              "label": st.one_of(texts, junk), "extra": junk})
sections = st.one_of(
    st.fixed_dictionaries({"source": st.one_of(st.fixed_dictionaries(
        {"paper": st.one_of(texts, st.just("<img onerror=x>")), "year": st.one_of(st.integers(1900, 2100), junk),
         "table": st.one_of(texts, junk)}), junk), "values": st.one_of(st.lists(values, max_size=3), junk)},
        optional={"spread": junk}),
    junk)
VALID_ROW = {"row": "GAN", "metric": "modes_covered", "config": {"variant": "dcgan"}, "mean": 6.3, "kind": "std",
             "spread": 0.5, "runs": 10}
ROW_CHOICES = {"row": st.one_of(st.just("Ours <b>"), texts, st.text(max_size=400)),
               "metric": st.sampled_from(["fid", "hq_fraction", "x", 3]),
               "config": st.sampled_from([{"variant": "wgan"}, {"dataset": "ring8"}, {"variant": "nosuch"}, {"lr": 1}, {}]),
               "mean": numbers, "spread": st.one_of(numbers, st.lists(numbers, max_size=3)),
               "kind": st.sampled_from(["sem", "range", "none", "x"]), "unit": st.sampled_from(["%", "pct"]),
               "runs": st.one_of(st.integers(-2, 5), junk), "label": st.one_of(texts, junk), "note": texts}


@st.composite
def near_valid_sections(draw) -> dict:
    """A valid section with up to two fields of one row replaced: most read, some do not."""
    row = dict(VALID_ROW)
    for key in draw(st.lists(st.sampled_from(sorted(ROW_CHOICES)), max_size=2, unique=True)):
        row[key] = draw(ROW_CHOICES[key])
    return {"source": {"paper": draw(st.sampled_from(["PacGAN", "<script>x</script>", "a|b`c"])), "year": 2018,
                       "table": "Table 1"}, "values": [row, {**VALID_ROW, "row": "WGAN", "config": {"variant": "wgan"}}]}


sections = st.one_of(near_valid_sections(), near_valid_sections(), sections)


@settings(FUZZ, max_examples=120)
@given(section=sections)
def test_any_published_section_is_read_or_refused_in_one_line(section, folder):
    from bench.config.published import parse

    try:
        parsed = parse(section, "g.yaml", base={"variant": "dcgan", "dataset": "ring8"}, grid={"variant": ["dcgan", "wgan"]})
    except BenchError as exc:
        assert "\n" not in str(exc) and len(f"error: {exc}") <= 300, str(exc)
        event("refused")
        return
    event(f"read ({len(parsed)} values)")
    for value in parsed:  # accepted: finite numbers, and text the page can print
        assert math.isfinite(value.mean) and isinstance(value.text(), str)


@settings(FUZZ, max_examples=15)
@given(section=sections)
def test_a_grid_with_any_published_section_plans_or_is_refused(section, folder):
    here = folder()
    grid = {**tiny_grid(), "grid": {"variant": ["mlp_gan", "wgan"]}, "published": section}
    (here / "g.yaml").write_text(yaml.safe_dump(grid, allow_unicode=True))
    before = _tree(here)
    code, _, err, seconds = bench(["run", "g.yaml", "--dry-run", "--results", "results"], here)
    check_outcome(code, err, seconds)
    assert _tree(here) == before


# ------------------------------------------------------------------ report options

RULE_KEYS = ["loss.d_max", "loss.g_rise", "loss.windows", "grad.g_share", "reach.modes_covered", "collapse.fd",
             "divergence.fd", "collapse.", "nope", "", "reach", "divergence.kid"]
rule_text = st.one_of(
    st.sampled_from(["off", "nan", "inf", "-inf", "0", "-3", "1e999", "50%", "500%", "0%", "-25%", "-250%", "+0.1",
                     "+0", "start+25%", "start+0%", ">300", "<-5", ">1e999", "==0", "3", "2.5", "1,5", " 7 "]),
    st.from_regex(r"(start\+|[<>]=?|[+-])?-?[0-9]{1,4}(\.[0-9]{0,3})?(e-?[0-9]{1,3})?%?", fullmatch=True),
    texts)
valid_threshold = st.one_of(
    st.floats(1e-6, 10).map(lambda x: f"loss.d_max={x}"), st.floats(0, 10).map(lambda x: f"loss.g_rise={x}"),
    st.integers(1, 1000).map(lambda x: f"loss.windows={x}"), st.floats(1e-6, 1).map(lambda x: f"grad.g_share={x}"),
    st.integers(1, 100).map(lambda x: f"reach.recall={x}%"), st.integers(1, 100).map(lambda x: f"collapse.fd=-{x}%"),
    st.integers(1, 500).map(lambda x: f"divergence.fd=start+{x}%"), st.integers(-999, 999).map(lambda x: f"divergence.fd=>{x}"))
threshold_items = st.one_of(valid_threshold, valid_threshold,
                            st.tuples(st.sampled_from(RULE_KEYS), rule_text).map(lambda kv: f"{kv[0]}={kv[1]}"), texts)


@settings(FUZZ, max_examples=120)
@given(items=st.lists(threshold_items, min_size=1, max_size=3))
def test_any_threshold_is_in_range_or_refused_in_one_line(items):
    from bench.report.stability import LOSS_RANGES, parse_thresholds

    try:
        t = parse_thresholds(items)
    except BenchError as exc:
        assert "\n" not in str(exc) and len(f"error: {exc}") <= 300, str(exc)
        event("refused")
        return
    event("kept")
    for key, (lo, hi, closed) in LOSS_RANGES.items():
        value = getattr(t, key.replace(".", "_"))
        assert math.isfinite(value) and (lo <= value if closed else lo < value) and value <= hi
    for rule in [*t.collapse.values(), *t.reach.values(), *t.divergence.values()]:
        assert "nan" not in rule and "inf" not in rule


@pytest.fixture(scope="module")
def labelled_grid(tmp_path_factory) -> Path:
    """A synthetic grid over a named bundle axis (labels) and lr, two seeds each."""
    root = tmp_path_factory.mktemp("baseline")
    grid = root / "results" / "ls"
    bundles = {"plain": (1.0, 0.0), "one_sided": (0.9, 0.0)}
    for i, (real, fake) in enumerate(bundles.values()):
        for lr in (1e-4, 2e-4):
            for seed in range(2):
                rec = curve_record(600, "fd", 10.0 * (i + 1) + seed + lr * 1e4, "FD@10k", False, kind="final", seed=seed)
                write_run(grid, {"variant": "dcgan", "real_label": real, "fake_label": fake, "lr": lr, "seed": seed},
                          "done", [rec], 600)
    (grid / "grid.yaml").write_text(yaml.safe_dump({"name": "ls", "grid": {
        "labels": {k: {"real_label": r, "fake_label": f} for k, (r, f) in bundles.items()}, "lr": [1e-4, 2e-4]}}))
    return grid


baseline_items = st.one_of(
    st.sampled_from(["labels=plain", "labels=one_sided", "lr=1e-4", "lr=0.0002", "real_label=0.9"]),
    st.tuples(st.sampled_from(["labels", "lr", "real_label", "variant", "seed", "dataset", "", "nope"]),
              st.sampled_from(["plain", "one_sided", "nothing", "1e-4", "0.0001", "2e-4", "0.9", "dcgan", "", "x=y",
                               "[1]", "{a: 1}", "nan"])).map(lambda kv: f"{kv[0]}={kv[1]}"),
    texts)


@settings(FUZZ, max_examples=60)
@given(items=st.one_of(st.lists(baseline_items, min_size=1, max_size=2),
                       st.tuples(st.sampled_from(["labels=plain", "labels=one_sided", "real_label=1.0"]),
                                 st.sampled_from(["lr=1e-4", "lr=0.0002", "lr=3e-4"])).map(list)))
def test_any_baseline_picks_one_configuration_per_stratum_or_is_refused_in_one_line(items, labelled_grid):
    from bench.report.baseline import parse_baseline
    from bench.report.load import load_grid
    from bench.report.names import build_view

    data = load_grid(labelled_grid)
    view = build_view(data.configs, data.varying, data.grid_text)
    try:
        chosen = parse_baseline(items, data, view)
    except BenchError as exc:
        assert "\n" not in str(exc) and len(f"error: {exc}") <= 300, str(exc)
        event("refused")
        return
    event("chosen")
    assert chosen.chosen and all(cid in data.configs for _, cid in chosen.chosen)


# ------------------------------------------------------------------ explore and sample options


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = train_grid(tmp_path_factory.mktemp("trained"), tiny_grid(steps=4, log_every=2, ckpt_every=2))
    return next(p for p in (root / "results" / "tiny").iterdir() if p.is_dir())


seeds = st.one_of(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1), st.sampled_from([-1, 2**63, 2**64, 10**30]),
                  texts)
devices = st.sampled_from(["cpu"] * 4 + ["auto", "foo", "cuda", "cuda:7", "cuda:-1", "", "cpu:0", "meta", "mps"])
explore_options = st.lists(st.one_of(
    st.tuples(st.just("--seed"), seeds), st.tuples(st.just("--device"), devices),
    st.tuples(st.just("--pairs"), st.one_of(st.integers(10, 30), st.sampled_from([0, 9, 100_001, -5]), texts)),
    st.tuples(st.just("--interp"), st.sampled_from(["auto", "slerp", "lerp", "lerp", "cubic", ""])),
    st.tuples(st.just("--checkpoint"), st.sampled_from(["final", "final", "best", "7", ""]))), max_size=2)


def _args(pairs) -> list[str]:
    return [str(x) for pair in pairs for x in pair]


@settings(FUZZ, max_examples=20)
@given(options=explore_options)
def test_any_explore_options_explore_or_are_refused_in_one_line(options, trained, folder):
    import torch

    if torch.cuda.is_available():
        pytest.skip("device names are drawn for a machine without CUDA")
    here = folder()
    run = here / "run"
    shutil.copytree(trained, run)
    before = _tree(here)
    opts = _args(options)
    if "--pairs" not in opts:
        opts += ["--pairs", "10"]
    code, out, err, seconds = bench(["explore", "run", *opts], here)
    check_outcome(code, err, seconds, limit=30)
    event(f"exit {code}")
    new = set(_tree(here)) - set(before)
    assert all(p.startswith("run/explore") for p in new), new  # metrics.jsonl gains lines, nothing else appears
    if code == 0:
        assert "PPL@" in out and any(p.startswith("run/explore/ppl-") for p in new)
    else:
        assert not new


sample_options = st.lists(st.one_of(
    st.tuples(st.just("--seed"), seeds), st.tuples(st.just("--n"), st.one_of(st.integers(1, 50),
                                                                             st.sampled_from([0, -1, 10**7]), texts)),
    st.tuples(st.just("--class"), st.sampled_from([0, 3, -1, "x"])),
    st.tuples(st.just("--checkpoint"), st.sampled_from(["final", "best", "4", "2", "-1", "1e3", ""]))), max_size=3)
outs = st.sampled_from(["s.npz", "new/s.npz", "a/b/s.npz", "s.txt", "s", ".npz", "run/s.npz", "/proc/s.npz"])


@settings(FUZZ, max_examples=20)
@given(options=sample_options, out=outs)
def test_any_sample_options_write_the_named_file_or_are_refused_in_one_line(options, out, trained, folder):
    here = folder()
    shutil.copytree(trained, here / "run")
    before = _tree(here)
    code, _, err, seconds = bench(["sample", "run", "--out", out, *_args(options)], here)
    check_outcome(code, err, seconds, limit=30)
    event(f"exit {code}")
    new = set(_tree(here)) - set(before)
    named = os.path.normpath(out)
    if code == 0:
        assert new <= {named, os.path.dirname(named)} and named in new
        with np.load(here / out) as arrays:
            x = arrays["samples"]
        assert np.isfinite(x).all() and x.ndim == 2
    else:
        assert not new
    assert not (here.parent / "s.npz").exists()
