"""Grid expansion is a pure function pinned by a table; run ids are stable content hashes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.config.schema import parse_grid, resolve
from bench.errors import BenchError
from bench.config.grid import check_grid, count_runs, expand, resolve_all
from conftest import run_dirs, tiny_grid

BASE = {"variant": "dcgan", "dataset": "digits"}

# (grid file, --set overrides, expected (key values) per run in order)
EXPANSIONS = [
    ({"seeds": 1, "base": BASE}, {}, [{"seed": 0}]),
    ({"seeds": 2, "base": BASE, "grid": {"lr_g": [1, 2]}}, {},
     [{"seed": 0, "lr_g": 1}, {"seed": 0, "lr_g": 2}, {"seed": 1, "lr_g": 1}, {"seed": 1, "lr_g": 2}]),
    ({"seeds": [3], "base": BASE, "grid": {"lr_g": [1, 2], "lr_d": [5, 6]}}, {},
     [{"lr_g": 1, "lr_d": 5}, {"lr_g": 1, "lr_d": 6}, {"lr_g": 2, "lr_d": 5}, {"lr_g": 2, "lr_d": 6}]),
    # --set wins over base ...
    ({"base": {**BASE, "lr_g": 1}}, {"lr_g": 9}, [{"lr_g": 9}]),
    # ... and replaces a grid axis instead of multiplying it
    ({"base": BASE, "grid": {"lr_g": [1, 2]}}, {"lr_g": 9}, [{"lr_g": 9}]),
    # a mapping value sets keys together (two-sided smoothing), --set still wins
    ({"base": BASE, "grid": {"labels": [{"real_label": 0.9}, {"real_label": 0.9, "fake_label": 0.1}]}},
     {"fake_label": 0.2}, [{"real_label": 0.9, "fake_label": 0.2}] * 2),
    ({"seeds": 3, "base": BASE}, {"seed": 7}, [{"seed": 7}]),
    # an axis written as a mapping names its values; it expands as the list of them
    ({"base": BASE, "grid": {"lr_g": {"slow": 1, "fast": 2}, "labels": {"one": {"real_label": 0.9}}}}, {},
     [{"lr_g": 1, "real_label": 0.9}, {"lr_g": 2, "real_label": 0.9}]),
]


@pytest.mark.parametrize("grid, overrides, expected", EXPANSIONS)
def test_expand_table(grid, overrides, expected):
    runs = expand(parse_grid(grid, "g.yaml"), overrides)
    assert len(runs) == len(expected)
    for run, keys in zip(runs, expected):
        assert {k: run[k] for k in keys} == keys


def test_duplicate_runs_collapse_and_incompatible_pairs_skip():
    grid = parse_grid({"base": BASE, "grid": {"variant": ["mlp_gan", "dcgan"], "dataset": ["ring8", "digits"],
                                               "labels": [{"real_label": 0.9}, {"real_label": 0.9}]}}, "g.yaml")
    configs, skipped = resolve_all(grid)
    assert len(configs) == 3  # dcgan x ring8 skipped, duplicate bundles kept once
    assert skipped == ["variant 'dcgan' needs images, dataset 'ring8' is points"]


def test_run_id_covers_defaults_and_ignores_key_order():
    a = resolve({"variant": "dcgan", "dataset": "digits", "lr_g": 2e-4, "seed": 0})
    b = resolve({"seed": 0, "dataset": "digits", "variant": "dcgan"})  # lr_g is the default anyway
    assert a.run_id == b.run_id and len(a.run_id) == 12
    changed = {resolve({"variant": "dcgan", "dataset": "digits", key: value}).run_id
               for key, value in [("lr_g", 3e-4), ("seed", 1), ("real_label", 0.9), ("steps", 10),
                                  ("data.flip", True), ("betas", [0.0, 0.9])]}
    assert a.run_id not in changed and len(changed) == 6
    # where a run executes does not change what it computes
    assert resolve({"variant": "dcgan", "dataset": "digits", "device": "cpu"}).run_id == a.run_id


def test_run_id_is_stable_across_processes():
    code = ("from bench.config.schema import resolve;"
            "print(resolve({'variant': 'dcgan', 'dataset': 'digits', 'real_label': 0.9}).run_id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == resolve({"variant": "dcgan", "dataset": "digits", "real_label": 0.9}).run_id


# ------------------------------------------------------------------ named bundles, run counts

LABELS = {"off": {"real_label": 1.0}, "one_sided": {"real_label": 0.9},
          "two_sided": {"real_label": 0.9, "fake_label": 0.1}}


def test_named_bundles_expand_like_the_list_form_and_keep_their_names():
    named = parse_grid({"seeds": 2, "base": BASE, "grid": {"labels": LABELS, "lr_g": {"slow": 1e-4, "fast": 1e-3}}},
                       "g.yaml")
    listed = parse_grid({"seeds": 2, "base": BASE, "grid": {"labels": list(LABELS.values()), "lr_g": [1e-4, 1e-3]}},
                        "g.yaml")
    assert named.names == {"labels": ["off", "one_sided", "two_sided"], "lr_g": ["slow", "fast"]}
    assert listed.names == {} and expand(named) == expand(listed)
    assert [c.run_id for c in resolve_all(named)[0]] == [c.run_id for c in resolve_all(listed)[0]]


@pytest.mark.parametrize("axis, message", [
    ({"a b": {"real_label": 1.0}}, "names a value 'a b'"),
    ({"ok\n": {"real_label": 1.0}}, "names a value 'ok\\n'"),
    ({7: {"real_label": 1.0}}, "names a value 7"),
])
def test_bundle_names_are_plain_labels(axis, message):
    with pytest.raises(BenchError, match=re.escape(message)):
        parse_grid({"base": BASE, "grid": {"labels": axis}}, "g.yaml")


@pytest.mark.parametrize("grid, overrides, expected", EXPANSIONS)
def test_count_runs_is_the_length_of_the_expansion(grid, overrides, expected):
    assert count_runs(parse_grid(grid, "g.yaml"), overrides) == len(expected)


def test_max_runs_refuses_a_grid_before_expanding_it(bench_cli, write_grid, tmp_path):
    grid = str(write_grid({**tiny_grid(), "seeds": 3, "grid": {"lr_g": [1e-4, 2e-4, 3e-4, 4e-4]}}))
    code, _, err = bench_cli("run", grid, "--dry-run", "--max-runs", "11")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "makes 12 runs (3 seeds x 4 lr_g), over the limit of 11; shrink an axis or the seeds, or raise --max-runs" in err
    assert bench_cli("run", grid, "--dry-run", "--max-runs", "12")[0] == 0
    assert bench_cli("run", grid, "--dry-run", "--max-runs", "4", "--set", "seed=1")[0] == 0  # one seed
    code, _, err = bench_cli("status", grid, "--max-runs", "11")
    assert code == 2 and "over the limit of 11" in err
    assert bench_cli("status", grid)[0] == 0
    assert run_dirs(tmp_path / "results") == []


def test_every_value_is_checked_before_expansion():
    grid = parse_grid({"base": BASE, "grid": {f"lr_{i}": list(range(10)) for i in range(8)}}, "g.yaml")
    with pytest.raises(BenchError, match=r"\(grid axis 'lr_0', value 1\): variant 'dcgan' has no key 'lr_0'"):
        check_grid(grid)
    scoped = parse_grid({"base": {**BASE, "wgan.clip": -1.0}}, "g.yaml")  # checked though no wgan run is in it
    with pytest.raises(BenchError, match=r"\(base\): 'clip' must be a finite number > 0"):
        check_grid(scoped)
    # a value passes when some run of the grid takes it: width is a dcgan key, not an mlp_gan one
    check_grid(parse_grid({"base": BASE, "grid": {"variant": ["mlp_gan", "dcgan"], "width": [8, 16]}}, "g.yaml"))
    with pytest.raises(BenchError, match="'width' must be an integer between 1 and 1,024, got -1"):
        check_grid(parse_grid({"base": BASE, "grid": {"variant": ["mlp_gan", "dcgan"], "width": [-1]}}, "g.yaml"))


# ------------------------------------------------------------------ unreadable images, before any run

def _folder(root, good: int, bad: int):
    from PIL import Image

    root.mkdir(parents=True)
    for i in range(good):
        Image.new("RGB", (12, 9), (i % 256, 40, 80)).save(root / f"img{i:03d}.png")
    for i in range(bad):
        (root / f"zz_bad{i}.jpg").write_bytes(b"<html>not an image</html>")
    return root


def test_too_many_unreadable_images_fail_before_the_first_run(bench_cli, write_grid, tmp_path, bench_cache):
    root = _folder(tmp_path / "faces", 99, 2)  # 2 of 101: over the 1% that loading tolerates
    grid = write_grid(tiny_grid(variant="dcgan", dataset="imagefolder", image_size=8, **{"data.root": str(root)}))
    code, _, err = bench_cli("run", str(grid), "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "over 1% of the 101 images under" in err and "first zz_bad0.jpg" in err
    assert not (tmp_path / "results").exists()


def test_a_few_unreadable_images_pass_the_check_and_a_built_cache_skips_it(bench_cli, write_grid, tmp_path,
                                                                          bench_cache, monkeypatch):
    from bench.datasets import cache

    root = _folder(tmp_path / "faces", 120, 1)
    grid = write_grid({**tiny_grid(variant="dcgan", dataset="imagefolder", image_size=8, steps=2, log_every=1,
                                   ckpt_every=2, batch_size=4, **{"data.root": str(root), "dcgan.width": 4})})
    assert bench_cli("run", str(grid), "--dry-run")[0] == 0
    assert bench_cli("run", str(grid))[0] == 0  # builds the cache
    monkeypatch.setattr(cache, "_opens", lambda path: pytest.fail("headers opened though the cache is built"))
    assert bench_cli("run", str(grid), "--dry-run")[0] == 0
