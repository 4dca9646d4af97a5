"""The headline's verdicts on planted grids whose answer is known (no training): baselines per
dataset, refused ambiguous baselines, real-data ceilings outside the Holm family, the Holm family
itself, named bundle values, KL without a high-quality sample, uninformative and missing metrics."""

import math

import numpy as np
import pytest

from bench.errors import BenchError
from bench.report.build import Options, compute, layout, write_report
from bench.report.load import load_grid
from bench.report.synthetic import curve_record, make_planted, write_run


def _report(grid, **options):
    return compute(load_grid(grid), Options(**options))


def test_baseline_is_chosen_within_each_dataset(tmp_path):
    """dataset as the first axis: each dataset gets its own g_steps=1 baseline, never ring8's."""
    grid = make_planted(tmp_path, "g", axis="g_steps", values=[1, 2], datasets=("ring8", "grid25"), better=("2",))
    report = _report(grid)
    assert [h.title for h in report.headlines.values()] == ["ring8", "grid25"]
    t = report.table
    assert not (t["note"] == "baseline lacks this column").any()
    for h in report.headlines.values():
        assert [r.label for r in h.rows] == ["g_steps=1", "g_steps=2"] and h.rows[0].baseline
        assert h.sentences[0].startswith("g_steps=2: modes@2500 ") and "vs g_steps=1 (better)" in h.sentences[0]
    labels = dict(zip(report.view.order, report.view.label.values()))
    for r in t[t["note"] == ""].itertuples():  # every tested row is paired inside its own dataset
        assert report.view.stratum[r.baseline_id] == r.stratum
    assert sorted(set(labels.values())) == ["dataset=grid25, g_steps=1", "dataset=grid25, g_steps=2",
                                            "dataset=ring8, g_steps=1", "dataset=ring8, g_steps=2"]
    assert all(h.holm_m == 3 for h in report.headlines.values())  # 3 headline metrics x 1 comparison, per dataset


def _two_axes(root):
    grid = root / "cg"
    for d_cond in ("projection", "concat"):
        for real in (1.0, 0.9):
            for seed in range(5):
                rec = curve_record(500, "fd", 10.0 + seed + (d_cond == "concat") * 5, "FD@10k", False, kind="final",
                                   seed=seed)
                write_run(grid, {"variant": "cgan", "dataset": "digits", "d_cond": d_cond, "real_label": real,
                                 "seed": seed}, "done", [rec], 500)
    (grid / "grid.yaml").write_text("name: cg\ngrid:\n  d_cond: [projection, concat]\n  real_label: [1.0, 0.9]\n")
    return grid


def test_ambiguous_baseline_is_refused_naming_the_matches(tmp_path, bench_cli):
    grid = _two_axes(tmp_path)
    with pytest.raises(BenchError) as err:
        _report(grid, baseline=("d_cond=projection",))
    msg = str(err.value)
    assert "matches 2 configurations" in msg and "\n" not in msg
    assert "d_cond=projection, real_label=1.0; d_cond=projection, real_label=0.9" in msg
    default = _report(grid)  # the grid's first configuration: one baseline row, not two
    assert (default.table["note"] == "baseline").sum() == 1
    assert default.headlines[next(iter(default.headlines))].baseline == "d_cond=projection, real_label=1.0"
    pinned = _report(grid, baseline=("d_cond=concat", "real_label=0.9"))
    assert pinned.table.loc[pinned.table["note"] == "baseline", "config"].tolist() == ["d_cond=concat, real_label=0.9"]
    code, _, err_text = bench_cli("report", str(grid), "--baseline", "d_cond=projection", "--out", "o")
    assert code == 2 and "matches 2 configurations" in err_text
    with pytest.raises(BenchError, match="separates strata"):
        _report(make_planted(tmp_path, "two", axis="g_steps", values=[1, 2], datasets=("ring8", "grid25")),
                baseline=("dataset=ring8",))


def test_real_data_ceilings_are_lines_never_tests(tmp_path):
    """MS-SSIM-real and NDB-real are measured on real data: no p-value, not in the Holm family."""
    grid = tmp_path / "img"
    for i, variant in enumerate(["dcgan", "wgan", "lsgan"]):
        for seed in range(5):
            recs = [curve_record(600, "fd", 100.0 - 30 * (variant == "wgan") + seed, "FD@10k/train/digits-mlp", False,
                                 kind="final", seed=seed)]
            for name, value in [("msssim_gen", 0.3 + 0.01 * i + 0.001 * seed), ("msssim_real", 0.25),
                                ("msssim_gap", 0.05 + 0.01 * i + 0.001 * seed)]:
                recs.append(curve_record(600, name, value, f"{name}@10kpairs", False, kind="final", seed=seed, pairs=10000))
            for name, value in [("ndb_over_k", 0.4 - 0.1 * i), ("ndb_over_k_real", 0.04 + 0.001 * seed)]:
                recs.append(curve_record(600, name, value + 0.01 * seed, f"{name}@10k/K100", False, kind="final",
                                         seed=seed, K=100))
            write_run(grid, {"variant": variant, "dataset": "digits", "seed": seed}, "done", recs, 600)
    (grid / "grid.yaml").write_text("name: img\ngrid:\n  variant: [dcgan, wgan, lsgan]\n")
    report = _report(grid)
    t = report.table.merge(report.data.columns[["column", "name"]], on="column")
    real = t[t["name"].str.endswith("_real")]
    assert len(real) == 6 and (real["family"] == "ceiling").all() and real["p"].isna().all()
    assert (real["note"] == "real-data ceiling: not tested").all()
    h = next(iter(report.headlines.values()))
    assert [m.name for m in h.metrics] == ["fd"] and h.holm_m == 2  # FD for wgan and lsgan vs dcgan: nothing else
    assert t.loc[t["family"] == "headline", "p"].notna().sum() == 2
    others = t[(t["family"] == "exploratory") & t["p"].notna()]
    assert len(others) and others["p_holm"].isna().all() and not others["significant"].any()
    wgan = t[(t["name"] == "fd") & (t["row"] == "variant=wgan")].iloc[0]
    assert wgan["p_holm"] == pytest.approx(2 * wgan["p"]) and wgan["significant"]  # m = 2, not 2 + 14


def test_named_bundle_values_label_rows_legends_and_sentences(tmp_path):
    grid = make_planted(tmp_path)  # labels: {off: ..., one_sided: ..., two_sided: ...}
    report = _report(grid)
    h = next(iter(report.headlines.values()))
    assert [r.label for r in h.rows] == ["off", "one_sided", "two_sided"] and h.rows[0].baseline
    assert h.sentences[0].startswith("one_sided: modes@2500 +2.00 [+2.00, +2.00] vs off (better), p = 0.048 (Holm), 5 seeds")
    assert h.sentences[1].startswith("two_sided: ") and "(not significant)" in h.sentences[1]
    assert list(layout(report)["line"]) == ["off", "one_sided", "two_sided"]  # figure legends
    assert set(report.table["config"]) == {"off", "one_sided", "two_sided"}
    pinned = _report(grid, baseline=("labels=one_sided",))
    assert next(iter(pinned.headlines.values())).baseline == "one_sided"
    assert h.ceiling == ["8 (all)", "–", "–"] and h.family == "points" and h.family_title == "2-D mixture"


def test_holm_family_is_the_headline_metrics(tmp_path):
    report = _report(make_planted(tmp_path))
    h = next(iter(report.headlines.values()))
    t = report.table
    fam = t[t["family"] == "headline"]
    assert h.holm_m == 6 == fam["p"].notna().sum()  # 3 headline metrics x 2 configurations
    assert set(fam["column"]) == {m.column for m in h.metrics}
    assert [r.marks for r in h.rows] == [["", "", ""], ["*", "*", "*"], ["", "", ""]]
    curves = t[(t["family"] == "exploratory") & t["p"].notna()]
    assert len(curves) == 6 and curves["p_holm"].isna().all()
    assert any("6 tests of the headline metrics" in n for n in h.notes)


def test_kl_without_high_quality_sample_is_counted_as_the_worst_value(tmp_path):
    grid = make_planted(tmp_path, no_hq=(("two_sided", 1), ("two_sided", 3)))
    report = _report(grid)
    cols = report.data.columns
    kl_final = int(cols[(cols["name"] == "kl_modes") & (cols["kind"] == "final")]["column"].iloc[0])
    row = report.table[(report.table["column"] == kl_final) & (report.table["row"] == "two_sided")].iloc[0]
    assert row["n"] == 5 and row["no_hq"] == 2  # not dropped: n stays 5
    values = report.scores[(report.scores["column"] == kl_final) & report.scores["no_hq"]]["value"]
    assert np.allclose(values, math.log(8))
    h = next(iter(report.headlines.values()))
    assert any("2 of 15 runs had no high-quality sample" in n and "log 8 = 2.08" in n for n in h.notes)
    st = report.stability.set_index("run_id")
    flagged = st[st["collapse_by"] == "no high-quality sample"]
    assert len(flagged) == 2 and report.rule_counts["collapse.no_hq"] == 2
    from bench.report.text import render_markdown
    md = render_markdown(report, tmp_path)  # the markdown page carries the HTML's rule table, counts included
    row = next(line for line in md.splitlines() if line.startswith("| `collapse.no_hq`"))
    assert row.startswith("| `collapse.no_hq` | `KL undefined` |") and row.endswith("| 2 |")


def test_metric_at_one_value_for_every_run_is_uninformative_not_tested(tmp_path):
    grid = make_planted(tmp_path, stuck=("off", "one_sided", "two_sided"))
    report = _report(grid)
    h = next(iter(report.headlines.values()))
    assert [m.state for m in h.metrics] == ["uninformative"] * 3 and h.holm_m == 0
    assert any("modes@2500 uninformative for this grid: every run scores 1" in n for n in h.notes)
    assert h.sentences == ["No headline metric can be compared here (not computed or uninformative; see the notes)."]
    assert report.rule_counts["reach.modes_covered"] == 15  # and every run is flagged collapsed


def test_metric_that_could_not_be_computed_says_why_and_how_in_the_headline(tmp_path):
    grid = tmp_path / "dogs"
    reason = "Inception weights not found: /hub/pt_inception.pth is missing; download URL to that path"
    for variant in ("dcgan", "wgan"):
        for seed in range(5):
            recs = [curve_record(600, "fid", None, "FID@10k/train", False, kind="final", seed=seed, skipped=reason),
                    curve_record(600, "kid", None, "KID@10k/train/inception", False, kind="final", seed=seed,
                                 skipped=reason),
                    curve_record(600, "msssim_gap", 0.1 + seed * 0.01, "MS-SSIM-gap@10kpairs", False, kind="final",
                                 seed=seed)]
            write_run(grid, {"variant": variant, "dataset": "stanford_dogs", "seed": seed}, "done", recs, 600)
    (grid / "grid.yaml").write_text("name: dogs\ngrid:\n  variant: [dcgan, wgan]\n")
    out = tmp_path / "out"
    write_report(grid, out, Options(formats=("html", "md")))
    report = _report(grid)
    h = next(iter(report.headlines.values()))
    assert [(m.name, m.state) for m in h.metrics] == [("fid", "not computed"), ("kid", "not computed")]
    assert h.rows[0].cells == ["not computed", "not computed"]
    note = next(n for n in h.notes if n.startswith("FID@10k not computed"))
    assert reason in note and "bench eval dogs --metrics inception" in note
    md = (out / "report.md").read_text()
    assert "| not computed | not computed |" in md and "bench eval dogs --metrics inception" in md.split("## ")[1]


def test_smoke_banner_and_steps_trained(tmp_path):
    grid = make_planted(tmp_path, "ls-smoke", evals=2, steps_per_eval=10)
    text = (grid / "grid.yaml").read_text().replace("steps: 20", "steps: 600")
    (grid / "grid.yaml").write_text(text)
    out = tmp_path / "out"
    write_report(grid, out, Options(formats=("html", "md")))
    page, md = (out / "index.html").read_text(), (out / "report.md").read_text()
    for doc in (page, md):
        assert "Smoke run: not meaningful. Runs trained 20 steps (the grid file asks for 600)" in doc
    assert "steps trained: 20" in page


def test_two_grids_compared_on_their_shared_keys(tmp_path, bench_cli):
    """The same g_steps settings on two grids (as on digits and on stanford_dogs): one row per
    setting, one column per grid, ranks inside each; a DataFrame for notebooks."""
    results = tmp_path / "results"
    make_planted(results, "a", axis="g_steps", values=[1, 2], better=("2",))
    make_planted(results, "b", axis="g_steps", values=[1, 2, 4], datasets=("grid25",), better=("1",))
    code, _, err = bench_cli("report", "a", "b", "--results", str(results), "--format", "md")
    assert code == 0 and "comparison: " in err
    page = (tmp_path / "reports" / "compare-a-b" / "index.html").read_text()
    assert "Configurations matched on g_steps" in page and "a (ring8)" in page and "b (grid25)" in page
    from bench.report import compare_grids, frame

    cmp = compare_grids("a", "b", results=results)
    modes = cmp[(cmp["metric"] == "modes_covered")].set_index(["grid", "shared"])
    assert modes.loc[("a", "g_steps=2"), "rank"] == 1 and modes.loc[("b", "g_steps=1"), "rank"] == 1
    assert modes.loc[("b", "g_steps=4"), "mean"] == pytest.approx(19.0) and ("a", "g_steps=4") not in modes.index
    assert set(cmp["grid"]) == {"a", "b"} and modes.loc[("a", "g_steps=1"), "baseline"]
    tidy = frame("a", "b", results=results)
    assert set(tidy["grid"]) == {"a", "b"} and {"run_id", "step", "name", "value", "cfg.g_steps"} <= set(tidy.columns)
    assert len(tidy[tidy["grid"] == "b"]["run_id"].unique()) == 15
    other = make_planted(results, "c", axis="lr", values=[1e-4, 2e-4])
    with pytest.raises(BenchError, match="share no configuration key"):
        compare_grids("a", str(other), results=results)


def test_bundle_names_survive_yaml_booleans(tmp_path):
    """`off:` unquoted is a YAML boolean; as a bundle name it must still read `off`."""
    grid = make_planted(tmp_path)
    (grid / "grid.yaml").write_text("name: planted\ngrid:\n  labels:\n    off: {real_label: 1.0, fake_label: 0.0}\n"
                                    "    one_sided: {real_label: 0.9, fake_label: 0.0}\n"
                                    "    two_sided: {real_label: 0.9, fake_label: 0.1}\n")
    h = next(iter(_report(grid).headlines.values()))
    assert [r.label for r in h.rows] == ["off", "one_sided", "two_sided"]


def test_ceiling_line_measured_at_a_smaller_count_says_so(tmp_path):
    """The domain ceiling scores half the reference against the other half: when that half is smaller than
    the generated count, the headline says which counts the line and the columns use."""
    grid = tmp_path / "digits"
    for variant in ("dcgan", "wgan"):
        for seed in range(5):
            proto = {"kind": "final", "seed": seed, "n_gen": 5000, "ceiling_n": 2500}
            recs = [curve_record(600, "recall", 0.6 + 0.01 * seed, "R@5k/train/digits-mlp", True, **proto),
                    curve_record(600, "recall_real", 0.88, "R-real@5k/train/digits-mlp", True, **proto),
                    curve_record(600, "fd", 20.0 + seed, "FD@10k/train/digits-mlp", False, kind="final", seed=seed,
                                 n_gen=10000, ceiling_n=2500),
                    curve_record(600, "fd_real", 3.0, "FD-real@10k/train/digits-mlp", False, kind="final", seed=seed,
                                 n_gen=10000, ceiling_n=2500),
                    curve_record(600, "kid", 0.1 + seed, "KID@2k/train/digits-mlp", False, kind="final", seed=seed,
                                 n_gen=2000, ceiling_n=2000),
                    curve_record(600, "kid_real", 0.0, "KID-real@2k/train/digits-mlp", False, kind="final", seed=seed,
                                 n_gen=2000, ceiling_n=2000)]
            write_run(grid, {"variant": variant, "dataset": "mnist5k", "seed": seed}, "done", recs, 600)
    (grid / "grid.yaml").write_text("name: digits\ngrid:\n  variant: [dcgan, wgan]\n")
    h = next(iter(_report(grid).headlines.values()))
    assert h.ceiling[[m.name for m in h.metrics].index("recall")] == "0.880"
    notes = [n for n in h.notes if n.startswith("Ceiling line")]
    # One sentence for both columns measured above the half's count; KID's ceiling at its own count needs none.
    assert len(notes) == 1 and "one half of 2,500 real images" in notes[0] and "5,000 and 10,000 generated" in notes[0]


def test_a_bundle_that_sets_more_keys_than_another_it_matches_keeps_its_own_name(tmp_path):
    """`projection_sn` sets d_cond: projection as `projection` does, plus spectral_norm_d: its runs carry
    both bundles' settings, and must be labelled, grouped and chosen as projection_sn, not projection."""
    from bench.launch.status import describer

    bundles = {"concat": {"d_cond": "concat", "spectral_norm_d": False},
               "projection": {"d_cond": "projection", "spectral_norm_d": False},
               "projection_sn": {"d_cond": "projection", "spectral_norm_d": True}}
    grid = tmp_path / "cg"
    for i, (name, cfg) in enumerate(bundles.items()):
        for seed in range(5):
            recs = [curve_record(600, "fd", 10.0 * (i + 1) + seed, "FD@10k/train/digits-mlp", False,
                                 kind="final", seed=seed)]
            write_run(grid, {"variant": "cgan", "dataset": "digits", "seed": seed, **cfg}, "done", recs, 600)
    text = ("name: cg\ngrid:\n  d:\n    concat: {d_cond: concat}\n    projection: {d_cond: projection}\n"
            "    projection_sn: {d_cond: projection, spectral_norm_d: true}\n")
    (grid / "grid.yaml").write_text(text)
    report = _report(grid)
    h = next(iter(report.headlines.values()))
    assert [r.label for r in h.rows] == ["concat", "projection", "projection_sn"]
    assert [r.n for r in h.rows] == [5, 5, 5]  # three configurations, not two with 5 and 10 seeds
    pinned = next(iter(_report(grid, baseline=("d=projection",)).headlines.values()))
    assert [r.label for r in pinned.rows if r.baseline] == ["projection"]
    describe = describer([{"variant": "cgan", "dataset": "digits", "seed": 0, **c} for c in bundles.values()], text)
    assert [describe({"variant": "cgan", "dataset": "digits", "seed": 0, **c}) for c in bundles.values()] == \
        [f"variant=cgan dataset=digits d={name} seed=0" for name in bundles]
