"""Report tables, pages and the CLI on synthetic result folders (no training)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from bench.cli import main
from bench.errors import BenchError
from bench.report import stats
from bench.report.build import Options, compute, write_report
from bench.report.load import load_grid
from bench.report.synthetic import curve_record, make_grid, write_run

VALUES = {"dcgan": [10.0, 11.0, 12.0, 13.0, 14.0], "wgan": [20.0, 21.0, 22.0, 23.0, 24.0], "lsgan": [9.0, 12.5, 30.0]}
XSS = "<script>alert(1)</script>"


def _cells(root, n_ref_split=False, xss=False):
    """variant x seeds with one final FD each; lsgan has 3 seeds. Optionally a second protocol or a hostile label."""
    grid = root / "cells"
    for variant, values in VALUES.items():
        for seed, v in enumerate(values):
            n_ref = 2000 if (n_ref_split and seed % 2) else 10000
            rec = curve_record(1000, "fd", v, XSS if xss else "FD@10k/train/ring8-mlp", False, kind="final",
                               seed=seed, n_ref=n_ref)
            write_run(grid, {"variant": variant, "dataset": "ring8", "seed": seed, "device": "cpu",
                             "note": "<b>x</b>" if xss else "plain"}, "done", [rec], 1000)
    (grid / "grid.yaml").write_text("name: cells\ngrid:\n  variant: [dcgan, wgan, lsgan]\n")
    return grid


def test_comparison_numbers_match_scipy(tmp_path):
    data = load_grid(_cells(tmp_path))
    assert len(data.columns) == 1  # the training seed in each protocol does not split the column
    assert data.varying == ["variant"]  # seed and device are not configuration
    report = compute(data, Options())
    t = report.table.set_index("config")
    wgan, lsgan = t.loc["variant=wgan"], t.loc["variant=lsgan"]
    x, y = np.array(VALUES["wgan"]), np.array(VALUES["dcgan"])
    assert wgan["n"] == 5 and wgan["mean"] == 22.0 and wgan["std"] == pytest.approx(np.std(x, ddof=1))
    ci = st.bootstrap((x,), np.mean, n_resamples=10_000, method="percentile",
                      rng=np.random.default_rng(stats.BOOTSTRAP_SEED)).confidence_interval
    assert (wgan["ci_low"], wgan["ci_high"]) == (ci.low, ci.high)
    p = st.mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue
    assert wgan["p"] == pytest.approx(p) and wgan["effect"] == 1.0
    assert wgan["p_holm"] == pytest.approx(p) and bool(wgan["significant"])  # the only test: m = 1
    assert lsgan["note"] == "n<5: no test" and math.isnan(lsgan["p"])
    u = st.mannwhitneyu(VALUES["lsgan"], y, method="exact").statistic
    assert lsgan["effect"] == pytest.approx(2 * u / 15 - 1)
    assert t.loc["variant=dcgan", "note"] == "baseline"
    assert list(t.index) == ["variant=dcgan", "variant=wgan", "variant=lsgan"]  # the grid file's order
    assert any("fewer than 5 seeds" in w for w in report.warnings)


def test_mixed_protocols_stay_in_separate_columns(tmp_path):
    data = load_grid(_cells(tmp_path, n_ref_split=True))
    assert len(data.columns) == 2 and set(data.columns["label"]) == {"FD@10k/train/ring8-mlp"}
    n_refs = sorted(data.protocols[k]["n_ref"] for k in data.columns["protocol"])
    assert n_refs == [2000, 10000]
    report = compute(data, Options())
    by_col = report.table.groupby("column")["n"].sum()
    assert sorted(by_col) == [5, 8]  # odd seeds (2 + 2 + 1) vs even seeds (3 + 3 + 2), never pooled
    assert any("2 protocols" in w and "n_ref" in w for w in report.warnings)


def test_partial_last_line_inf_and_null(tmp_path):
    grid = tmp_path / "g"
    recs = [curve_record(s, "fd", v, "FD@2k", False, seed=0) for s, v in [(100, 5.0), (200, "inf"), (300, None)]]
    path = write_run(grid, {"variant": "dcgan", "seed": 0}, "done", recs, 300)
    with open(path / "metrics.jsonl", "a") as f:
        f.write('{"step": 400, "name": "fd", "val')  # a writer killed mid-line
    data = load_grid(grid)
    values = data.records.sort_values("step")["value"].tolist()
    assert values[:2] == [5.0, math.inf] and math.isnan(values[2]) and len(values) == 3


def test_html_escapes_labels_and_config_values(tmp_path):
    out = tmp_path / "out"
    write_report(_cells(tmp_path, xss=True), out, Options(formats=("html", "md", "tex")))
    page = (out / "index.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" not in page  # note is constant
    tex = (out / "tables.tex").read_text()
    assert r"\textless{}script\textgreater{}" in tex and "<script>" not in tex


def test_baseline_option_and_its_errors(tmp_path):
    data = load_grid(_cells(tmp_path))
    t = compute(data, Options(baseline=("variant=wgan",))).table.set_index("config")
    assert t.loc["variant=wgan", "note"] == "baseline" and t.loc["variant=dcgan", "effect"] == -1.0
    for bad, words in [("variant=biggan", "no run has variant=biggan"), ("lr=1", "does not vary"),
                       ("variant", "expected KEY=VALUE")]:
        with pytest.raises(BenchError, match=words) as err:
            compute(data, Options(baseline=(bad,)))
        assert "\n" not in str(err.value)


def test_bundle_axis_baseline_is_its_first_bundle(tmp_path):
    grid = tmp_path / "ls"
    bundles = [(1.0, 0.0), (0.9, 0.0), (0.9, 0.1)]
    for i, (real, fake) in enumerate(bundles):
        for seed in range(5):
            rec = curve_record(600, "fd", 10.0 * (i + 1) + seed, "FD@10k", False, kind="final", seed=seed)
            write_run(grid, {"variant": "dcgan", "real_label": real, "fake_label": fake, "seed": seed}, "done", [rec], 600)
    (grid / "grid.yaml").write_text("name: ls\ngrid:\n  labels:\n    - {real_label: 1.0, fake_label: 0.0}\n"
                                    "    - {real_label: 0.9, fake_label: 0.0}\n    - {real_label: 0.9, fake_label: 0.1}\n")
    report = compute(load_grid(grid), Options())
    t = report.table.set_index("config")
    # labels list the keys in the grid file's order (config.yaml sorts them), rows come in its order
    assert list(t.index) == ["real_label=1.0, fake_label=0.0", "real_label=0.9, fake_label=0.0",
                             "real_label=0.9, fake_label=0.1"]
    assert t.loc["real_label=1.0, fake_label=0.0", "note"] == "baseline"
    assert (t.loc[["real_label=0.9, fake_label=0.0", "real_label=0.9, fake_label=0.1"], "effect"] == 1.0).all()
    pinned = compute(load_grid(grid), Options(baseline=("real_label=0.9", "fake_label=0.1")))
    assert pinned.table.set_index("config").loc["real_label=1.0, fake_label=0.0", "effect"] == -1.0
    with pytest.raises(BenchError, match="at once"):
        compute(load_grid(grid), Options(baseline=("real_label=1.0", "fake_label=0.1")))


def test_cli_writes_every_format_and_fails_cleanly(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    _cells(results)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--format", "md,csv,tex"]) == 0  # default: every grid under ./results
    out = tmp_path / "reports" / "cells"
    assert {p.name for p in out.iterdir()} >= {"report.md", "tables.tex", "tidy.csv", "runs.csv", "comparison.csv"}
    tidy = pd.read_csv(out / "tidy.csv")
    assert {"run_id", "seed", "step", "name", "value", "cfg.variant", "protocol.n_ref"} <= set(tidy.columns)
    assert len(tidy) == 13 and sorted(tidy["value"]) == sorted(v for vs in VALUES.values() for v in vs)
    md = (out / "report.md").read_text()
    assert "n<5: no test" in md and "| variant=wgan | 5 |" in md
    assert r"\toprule" in (out / "tables.tex").read_text()
    comparison = pd.read_csv(out / "comparison.csv")
    assert json.loads(comparison["protocol"][0])["n_ref"] == 10000
    assert main(["report", "nosuch", "--results", str(results)]) == 2
    assert main(["report", "--baseline", "variant=biggan"]) == 2
    assert main(["report", "--format", "pdf"]) == 2
    err = capsys.readouterr().err
    assert "'nosuch' is neither a grid" in err and "no run has variant=biggan" in err and "unknown pdf" in err


def test_planted_runs_found_and_figures_drawn_once(tmp_path):
    grid = make_grid(tmp_path, "syn", configs=8, seeds=5, evals=12)
    out = tmp_path / "rep"
    write_report(grid, out, Options(formats=("html",)))
    report = compute(load_grid(grid), Options())
    # runs k = 1..40: every 7th collapses (5 runs), every 11th that does not collapse diverges (3 runs)
    assert int(report.stability["collapsed"].sum()) == 5 and int(report.stability["diverged"].sum()) == 3
    figs = sorted((out / "figures").glob("*.png"))
    # named after what they show: two curves, the final FD, the losses, the headline curve
    assert [p.name for p in figs] == ["curve-FD@2k-train-ring8-mlp.png", "curve-modes@2500.png",
                                      "final-FD@10k-train-ring8-mlp.png", "headline-ring8-FD@2k-train-ring8-mlp.png",
                                      "losses.png"]
    stamps = [p.stat().st_mtime_ns for p in figs]
    write_report(grid, out, Options(formats=("html",)))
    assert [p.stat().st_mtime_ns for p in sorted((out / "figures").glob("*.png"))] == stamps


def test_report_code_never_imports_torch(tmp_path):
    grid = _cells(tmp_path)
    code = ("import sys; from pathlib import Path; from bench.cli import main; "
            f"rc = main(['report', {str(grid)!r}, '--out', {str(tmp_path / 'o')!r}]); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": "Agg"}, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "o" / "cells" / "index.html").is_file()


def test_curves_spanning_orders_of_magnitude_get_a_log_axis(tmp_path, monkeypatch):
    from bench.report import figures

    drawn = []
    monkeypatch.setattr(figures, "_render", lambda path, stamp, key, draw, how: drawn.append(draw()))
    steps = [50, 500, 1000, 2000]
    fd = pd.DataFrame({"panel": "", "line": "off", "run_id": "r0", "step": steps, "value": [1700.0, 400.0, 90.0, 37.0]})
    recall = fd.assign(value=[0.0, 0.2, 0.4, 0.45])  # a share with a zero: linear, log would drop the zero
    figures.curve_figure(tmp_path, fd, "FD@2k", higher=False)
    figures.curve_figure(tmp_path, recall, "R@5k", higher=True)
    assert [f.axes[0].get_yscale() for f in drawn] == ["log", "linear"]
    for f in drawn:
        figures.plt.close(f)
    assert figures.wants_log_axis(np.array([1700.0, np.nan, 37.0])) and not figures.wants_log_axis(np.array([5.0, 3.0]))


def test_versions_name_the_cpu_thread_counts_the_runs_trained_with(tmp_path):
    from bench.report.build import versions

    grid = _cells(tmp_path)
    assert "CPU threads per run (runs)" not in versions(load_grid(grid))  # runs that recorded none: no line
    for i, status in enumerate(sorted(grid.glob("*/status.json"))):
        st = json.loads(status.read_text())
        status.write_text(json.dumps({**st, "threads": [1, 2][i % 2]}))
    assert versions(load_grid(grid))["CPU threads per run (runs)"] == "1, 2"


def test_versions_show_the_time_split_and_a_grid_of_two_harness_versions_is_flagged(tmp_path):
    from bench.report.build import versions

    grid = _cells(tmp_path)
    assert "harness (runs)" not in versions(load_grid(grid)) and "time (runs)" not in versions(load_grid(grid))
    for i, status in enumerate(sorted(grid.glob("*/status.json"))):
        st = json.loads(status.read_text())
        status.write_text(json.dumps({**st, "harness": ["0.1.0+aaaaaaaaaaaa", "0.1.0+bbbbbbbbbbbb"][i % 2],
                                      "seconds": {"startup": 1.0, "train": 3.0}}))
    n = len(list(grid.glob("*/status.json")))
    shown = versions(load_grid(grid))
    assert shown["harness (runs)"] == "0.1.0+aaaaaaaaaaaa, 0.1.0+bbbbbbbbbbbb"
    assert shown["time (runs)"].startswith(f"time in runs: {4 * n:.0f} s (startup 25%, train 75%, curve eval 0%")
    assert any("trained by 2 harness versions" in w for w in compute(load_grid(grid), Options()).warnings)
