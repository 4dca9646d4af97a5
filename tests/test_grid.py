"""Grid expansion is a pure function pinned by a table; run ids are stable content hashes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.config import parse_grid, resolve
from bench.grid import expand, resolve_all

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
    code = ("from bench.config import resolve;"
            "print(resolve({'variant': 'dcgan', 'dataset': 'digits', 'real_label': 0.9}).run_id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == resolve({"variant": "dcgan", "dataset": "digits", "real_label": 0.9}).run_id
