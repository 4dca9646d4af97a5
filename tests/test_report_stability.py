"""Collapse, divergence and curve summaries on planted curves in synthetic run folders.

Two planted cases come from real grids where the old absolute rules misfired: a healthy digits run
whose FD fell 1112 -> 984 -> 931 -> 760 (flagged by `FD@2k > 300`, a rule for Inception FID), and a
60-step grid whose runs covered no mode yet (both flagged diverged by `modes_covered <= 0`); and one
where the old rules stayed blind: a ring8 run stuck at 1 of 8 modes from its first evaluation."""

import math

import numpy as np
import pytest

from bench.errors import BenchError
from bench.report.load import load_grid
from bench.report.stability import Thresholds, curve_summaries, detect, parse_thresholds, run_stability
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
            extra = {"modes": 8} if metric == "modes_covered" else {}
            recs += [curve_record(s, metric, v, label, higher, seed=seed, **extra) for s, v in zip(STEPS, values)]
        if losses:
            for s, d, g in zip(STEPS, *losses):
                recs += train_records(s, d, g)
        step = 450 if state == "diverged" else STEPS[-1]
        write_run(grid, {"variant": "dcgan", "tag": tag, "seed": seed}, state, recs, step)
    data = load_grid(grid)
    ids = dict(zip(data.runs["cfg.tag"], data.runs["run_id"]))
    return data, ids


def _stability(data, thresholds=Thresholds()):
    st = run_stability(data.runs, data.records, data.columns, thresholds, data.protocols)
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


def test_divergence_from_status_and_relative_to_the_runs_own_start(tmp_path):
    data, ids = _grid(tmp_path, {
        "nan": ({"fd": [90, 80, 70, 60]}, "diverged", None),
        # ends worse than its own untrained start (1100) by more than 25% of it: diverged at 800
        "blowup": ({"fd": [1100, 600, 300, 350, 500, 900, 1300, 1450, 1500, 1600]}, "done", None),
        "nan_fd": ({"fd": [1100, 600, 300, 250, 240, 230, math.nan, math.nan, math.nan, math.nan]}, "done", None),
        "wobbly": ({"fd": [1100, 600, 300, 350, 500, 900, 1300, 900, 700, 650]}, "done", None),  # recovered
    })
    st = _stability(data)
    assert st.loc[ids["nan"], "diverged"] and st.loc[ids["nan"], "diverged_at"] == 450
    assert st.loc[ids["nan"], "diverged_by"] == "non-finite loss"
    assert st.loc[ids["blowup"], "diverged_at"] == 800
    assert st.loc[ids["blowup"], "diverged_by"] == "FD@2k/train/ring8-mlp start+25%"
    assert st.loc[ids["nan_fd"], "diverged_at"] == 700
    assert not st.loc[ids["wobbly"], "diverged"]


def test_healthy_digits_fd_near_1000_is_not_diverged(tmp_path):
    """On the built-in digits features FD starts near 1,100: falling to 760 is learning, not divergence."""
    data, ids = _grid(tmp_path, {"digits": ({"fd": [1112, 1050, 984, 990, 931, 900, 850, 820, 790, 760]}, "done", None)})
    st = _stability(data)
    assert not st.loc[ids["digits"], "diverged"] and not st.loc[ids["digits"], "collapsed"]


def test_short_grid_with_no_mode_yet_is_not_diverged_but_never_reached_the_ceiling(tmp_path):
    """A 60-step grid: both runs (normal and high lr) cover 0 modes throughout. Nothing diverged;
    both never reached half of the 8 modes, so both are flagged collapsed from the first evaluation."""
    data, ids = _grid(tmp_path, {"normal_lr": ({"modes_covered": [0] * 10}, "done", None),
                                 "high_lr": ({"modes_covered": [0] * 10}, "done", None)})
    st = _stability(data)
    assert not st["diverged"].any()
    assert (st["collapse_onset"] == 100).all() and st["collapse_by"].str.contains("< 50% of 8").all()


def test_run_stuck_at_one_of_eight_modes_is_collapsed_from_the_start(tmp_path):
    data, ids = _grid(tmp_path, {"stuck": ({"modes_covered": [1] * 10}, "done", None),
                                 "fine": ({"modes_covered": [3, 5, 7, 8, 8, 8, 8, 8, 8, 8]}, "done", None)})
    found = detect(data.runs, data.records, data.columns, Thresholds(), data.protocols)
    st = found.runs.set_index("run_id")
    assert st.loc[ids["stuck"], "collapsed"] and st.loc[ids["stuck"], "collapse_onset"] == 100
    assert not st.loc[ids["fine"], "collapsed"]
    assert found.counts() == {"reach.modes_covered": 1}  # the page prints each rule with this count
    assert "reach.modes_covered" in {k for k, _, _ in Thresholds().rules()}


def test_absolute_limit_is_still_an_option(tmp_path):
    data, ids = _grid(tmp_path, {"fd": ({"fd": [400, 200, 350, 320, 310, 330, 301, 340, 999, 400]}, "done", None)})
    assert not _stability(data).loc[ids["fd"], "diverged"]
    st = _stability(data, parse_thresholds(["divergence.fd=>300"]))
    assert st.loc[ids["fd"], "diverged_at"] == 300 and st.loc[ids["fd"], "diverged_by"] == "FD@2k/train/ring8-mlp >300"


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
                                  "collapse.modes_covered", "reach.recall=0.5", "divergence.fd=start+25"])
def test_bad_threshold_is_one_line_error(item):
    with pytest.raises(BenchError) as err:
        parse_thresholds([item])
    assert "\n" not in str(err.value) and item in str(err.value)
