"""Collapse, divergence and curve summaries on planted curves in synthetic run folders."""

import math

import numpy as np
import pytest

from bench.errors import BenchError
from bench.report.load import load_grid
from bench.report.stability import Thresholds, curve_summaries, parse_thresholds, run_stability
from bench.report.synthetic import curve_record, train_records, write_run

STEPS = [100 * (i + 1) for i in range(10)]


def _grid(tmp_path, runs):
    """runs: {name: (curves {metric: values}, state, losses (d, g) or None)} -> loaded grid."""
    grid = tmp_path / "g"
    for seed, (tag, (curves, state, losses)) in enumerate(runs.items()):
        recs = []
        for metric, values in curves.items():
            label, higher = {"modes_covered": ("modes@2500", True), "msssim_gap": ("MS-SSIM-gap@1kpairs", False),
                             "fd": ("FD@2k/train/ring8-mlp", False)}[metric]
            recs += [curve_record(s, metric, v, label, higher, seed=seed) for s, v in zip(STEPS, values)]
        if losses:
            for s, d, g in zip(STEPS, *losses):
                recs += train_records(s, d, g)
        step = 450 if state == "diverged" else STEPS[-1]
        write_run(grid, {"variant": "dcgan", "tag": tag, "seed": seed}, state, recs, step)
    data = load_grid(grid)
    ids = dict(zip(data.runs["cfg.tag"], data.runs["run_id"]))
    return data, ids


def _stability(data, thresholds=Thresholds()):
    st = run_stability(data.runs, data.records, data.columns, thresholds)
    return st.set_index("run_id")


def test_planted_collapse_found_at_its_step_and_stable_runs_not_flagged(tmp_path):
    data, ids = _grid(tmp_path, {
        "collapse": ({"modes_covered": [2, 5, 8, 8, 8, 8, 5, 4, 4, 4]}, "done", None),
        "stable": ({"modes_covered": [4, 6, 8, 8, 7, 8, 8, 7, 8, 8]}, "done", None),  # 12.5% dips only
        "recovers": ({"modes_covered": [8, 8, 5, 5, 8, 8, 8, 8, 8, 8]}, "done", None),
        "late": ({"modes_covered": [8, 5, 8, 8, 8, 8, 8, 8, 5, 5]}, "done", None),  # only the last drop counts
    })
    st = _stability(data)
    assert st.loc[ids["collapse"], "collapsed"] and st.loc[ids["collapse"], "collapse_onset"] == 700
    assert st.loc[ids["collapse"], "collapse_by"] == "modes@2500 -25%"
    assert not st.loc[ids["stable"], "collapsed"] and math.isnan(st.loc[ids["stable"], "collapse_onset"])
    assert not st.loc[ids["recovers"], "collapsed"]
    assert st.loc[ids["late"], "collapse_onset"] == 900
    assert not st["diverged"].any()


def test_threshold_option_changes_detection(tmp_path):
    data, ids = _grid(tmp_path, {"dip": ({"modes_covered": [8, 8, 8, 8, 8, 8, 8, 7, 7, 7]}, "done", None)})
    assert not _stability(data).loc[ids["dip"], "collapsed"]
    strict = parse_thresholds(["collapse.modes_covered=-10%"])
    assert _stability(data, strict).loc[ids["dip"], "collapse_onset"] == 800
    off = parse_thresholds(["collapse.modes_covered=off"])
    assert "modes_covered" not in off.collapse


def test_msssim_gap_rise_is_collapse(tmp_path):
    data, ids = _grid(tmp_path, {"r": ({"msssim_gap": [0.02, 0.03, 0.15, 0.16, 0.2, 0.14, 0.13, 0.2, 0.2, 0.2]}, "done", None)})
    assert _stability(data).loc[ids["r"], "collapse_onset"] == 300


def test_divergence_from_status_and_from_eval_threshold(tmp_path):
    data, ids = _grid(tmp_path, {
        "nan": ({"fd": [90, 80, 70, 60]}, "diverged", None),
        "fd": ({"fd": [400, 200, 350, 320, 310, 330, 301, 340, 999, 400]}, "done", None),
        "ok": ({"fd": [400, 200, 350, 320, 310, 330, 301, 340, 999, 250]}, "done", None),
    })
    st = _stability(data)
    assert st.loc[ids["nan"], "diverged"] and st.loc[ids["nan"], "diverged_at"] == 450
    assert st.loc[ids["nan"], "diverged_by"] == "non-finite loss"
    assert st.loc[ids["fd"], "diverged"] and st.loc[ids["fd"], "diverged_at"] == 300
    assert st.loc[ids["fd"], "diverged_by"] == "FD@2k/train/ring8-mlp >300"
    assert not st.loc[ids["ok"], "diverged"]


def test_loss_detector_d_to_zero_while_g_climbs(tmp_path):
    d_won = ([0.7] * 5 + [0.01] * 5, [1.0] * 5 + [2, 3, 4, 5, 6])
    wgan = ([-0.5] * 10, [1.0] * 5 + [2, 3, 4, 5, 6])  # critic loss below zero: not a winning D
    flat_g = ([0.7] * 5 + [0.01] * 5, [1.0] * 10)
    data, ids = _grid(tmp_path, {"won": ({}, "done", d_won), "wgan": ({}, "done", wgan), "flat": ({}, "done", flat_g)})
    st = _stability(data)
    assert st.loc[ids["won"], "collapse_onset"] == 600
    assert st.loc[ids["won"], "collapse_by"].startswith("loss_d<0.05")
    assert not st.loc[ids["wgan"], "collapsed"] and not st.loc[ids["flat"], "collapsed"]


def test_curve_summaries_final_best_auc(tmp_path):
    values = [100, 50, 80, 90, 70, 60, 65, 75, 85, 80]
    data, ids = _grid(tmp_path, {"a": ({"fd": values}, "done", None)})
    cs = curve_summaries(data.records, data.columns).set_index("run_id").loc[ids["a"]]
    assert cs["final"] == 80 and cs["best"] == 50 and cs["best_step"] == 200
    assert cs["final_minus_best"] == 30  # lower is better: positive = worse at the end
    assert cs["auc"] == pytest.approx(np.trapezoid(values, STEPS) / (STEPS[-1] - STEPS[0]))


@pytest.mark.parametrize("item", ["collapse.modes_covered=25%", "divergence.fd=300", "speed=1", "loss.d_max=zero",
                                  "collapse.modes_covered"])
def test_bad_threshold_is_one_line_error(item):
    with pytest.raises(BenchError) as err:
        parse_thresholds([item])
    assert "\n" not in str(err.value) and item in str(err.value)
