"""A metric's facts are declared once (bench/metrics/facts.py) and every reader takes them from there: a
throwaway metric declared and registered here shows up in the headline, `bench eval --help`, the
stability rules and the docs check, with no other file edited."""

from __future__ import annotations

import json

import pytest
from test_docs import doc_text, metric_problems, readme_metric_table, rule_problems

from bench import registry
from bench.metrics import facts
from bench.report.build import Options, compute
from bench.report.load import load_grid
from bench.report.stability import Thresholds, column_ideal
from bench.report.synthetic import curve_record, make_planted


@pytest.fixture
def throwaway(monkeypatch):
    """Value `sharpness` (higher is better, ideal 1, fourth headline metric of 2-D mixtures, reach rule
    40%) written by metric `sharpness_test`; everything is put back afterwards."""
    from bench.metrics.families.base import Metric

    monkeypatch.setattr(facts, "VALUES", dict(facts.VALUES))
    monkeypatch.setattr(facts, "METRICS", dict(facts.METRICS))
    monkeypatch.setattr(registry.metrics, "_entries", dict(registry.metrics._entries))
    facts.declare_value("sharpness", "sharpness", True, ideal=1.0, headline={"points": 3}, rules={"reach": "40%"})
    facts.declare("sharpness_test", "test only: how sharp the generated points are", ("points",), ("sharpness",))

    @registry.metrics.register("sharpness_test")
    class Sharpness(Metric):
        def outputs(self, ctx, stage, n):
            return {"sharpness": f"sharp@{n}"}

        def compute(self, ctx, gen, stage, n):
            return self.values(ctx, stage, n, {"sharpness": 0.5}, {"n_gen": n})

    return Sharpness


def test_a_new_metric_is_a_headline_column_of_its_family(throwaway, tmp_path):
    grid = make_planted(tmp_path)
    for run in sorted(p for p in grid.iterdir() if (p / "metrics.jsonl").is_file()):
        good = "real_label: 0.9" in (run / "config.yaml").read_text()
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(curve_record(600, "sharpness", 0.9 if good else 0.1, "sharp@2500", True,
                                            kind="final")) + "\n")
    h = next(iter(compute(load_grid(grid), Options()).headlines.values()))
    assert [m.name for m in h.metrics] == ["modes_covered", "hq_fraction", "kl_modes", "sharpness"]
    assert h.metrics[-1].title == "sharp@2500" and h.metrics[-1].higher
    assert h.holm_m == 8  # 4 headline metrics x 2 configurations against the baseline


def test_a_new_metric_is_in_eval_help_and_the_registry(throwaway, bench_cli):
    code, out, _ = bench_cli("eval", "--help")
    assert code == 0 and "  sharpness_test    test only: how sharp the generated points are" in out
    assert registry.metrics.get("sharpness_test") is throwaway and throwaway().families == ("points",)


def test_a_new_metric_brings_its_ideal_and_its_stability_rule(throwaway):
    assert column_ideal("sharpness", "sharp@2500", {}) == 1.0
    assert Thresholds().reach["sharpness"] == "40%"
    assert ("reach.sharpness", "40%") in Thresholds().describe()


def test_the_docs_check_asks_for_a_new_metric_and_its_rule(throwaway):
    text, table = doc_text(), readme_metric_table()
    assert metric_problems(text, table) == [
        "docs/metrics.md's metric table misses 'sharpness_test' or words it differently than bench/metrics/facts.py"]
    assert rule_problems(text) == ["rule 'reach.sharpness' is named nowhere in README.md or docs/"]


def test_facts_refuse_an_undeclared_value_and_a_second_declaration():
    with pytest.raises(ValueError, match="undeclared values"):
        facts.declare("nothing_here", "", ("points",), ("no_such_value",))
    with pytest.raises(ValueError, match="declared twice"):
        facts.declare_value("fd", "FD", False)


def test_the_primary_value_of_each_family_picks_the_best_checkpoint():
    assert facts.primary("points") == ("modes_covered", True, "hq_fraction")
    assert facts.primary("domain") == ("fd", False, None) and facts.primary("natural") == ("fid", False, None)
    assert facts.computed_by("kid", "natural") == "inception" and facts.computed_by("kid", "domain") == "kid"
    assert facts.computed_by("modes_covered", "domain_stacked") == "stacked_modes"
