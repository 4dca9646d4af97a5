"""The CLI fits its users' habits: torch-fidelity's metric names, a standalone scorer, eval on a
mixed grid, every `--set` form the README promises, the documented run order, progress lines that
name what varies, and the Ctrl-C line that says how to resume."""

from __future__ import annotations

import pytest

from bench import registry
from bench.cli import main
from bench.config import resolve
from bench.loop import train
from bench.metrics import suite  # noqa: F401  (registers the metrics)
from bench.runs import RunDir


def tiny(dataset: str, variant: str = "dcgan", **keys):
    return resolve({"variant": variant, "dataset": dataset, "steps": 4, "batch_size": 8, "image_size": 16,
                    "log_every": 2, "ckpt_every": 2, "eval_every": -1, "dcgan.width": 8, "device": "cpu",
                    **keys})


@pytest.fixture(scope="module")
def mixed_grid(tmp_path_factory, bench_cache):
    """A finished grid folder with one digits run and one ring8 run (mlp_gan fits both)."""
    root = tmp_path_factory.mktemp("results")
    for dataset in ("digits", "ring8"):
        config = tiny(dataset, "mlp_gan")
        run = RunDir(root, "mixed", config.run_id)
        run.write_config(config.flat())
        run.set_status("queued")
        assert train(run, config) == "done"
    return root / "mixed"


# 1. Names users already know


@pytest.mark.parametrize("alias, on_digits", [("fid", "fd"), ("kid", "kid"), ("prc", "prc")])
def test_torch_fidelity_names_resolve_to_the_metric_that_fits(alias, on_digits):
    assert registry.metrics.candidates(alias)[0] == on_digits
    for target in registry.metrics.candidates(alias):
        registry.metrics.get(target)  # every target is registered


@pytest.mark.parametrize("alias", ["isc", "is"])
def test_inception_score_names(alias):
    assert registry.metrics.candidates(alias) == ("inception",)


def test_help_lists_every_metric_and_alias_once(bench_cli):
    from bench.eval_command import METRIC_HELP

    assert set(METRIC_HELP) == set(registry.metrics.names()) | set(registry.metrics.aliases())
    code, out, _ = bench_cli("eval", "--help")
    assert code == 0
    for name in METRIC_HELP:
        assert any(line.split()[:1] == [name] for line in out.splitlines()), name


def test_unknown_metric_lists_names_and_aliases(mixed_grid, bench_cli):
    code, _, err = bench_cli("eval", str(mixed_grid), "--metrics", "fidd")
    assert code == 2 and err.count("\n") == 1
    assert "valid: class_scores," in err and "(aliases: fid, is, isc)" in err


# 3. bench eval on a mixed grid


def test_eval_fid_on_a_mixed_grid_skips_ring8_with_a_note(mixed_grid, bench_cli):
    code, out, err = bench_cli("eval", str(mixed_grid), "--metrics", "fid,kid", "--n", "200",
                               "--checkpoint", "final")
    assert code == 0, err
    assert "FD@200/" in out and "KID@200/" in out
    assert err.count("does not apply; run skipped") == 1 and "(ring8): fid, kid does not apply" in err
    code, out, err = bench_cli("eval", str(mixed_grid), "--metrics", "mode_scores,fd", "--n", "200",
                               "--checkpoint", "final")
    assert code == 0, err
    assert "(ring8): fd does not apply; skipped for this run" in err
    assert "(digits): mode_scores does not apply; skipped for this run" in err


def test_eval_of_a_metric_no_run_takes_is_one_error(mixed_grid, bench_cli):
    code, _, err = bench_cli("eval", str(mixed_grid), "--metrics", "stacked_modes", "--checkpoint", "final")
    assert code == 2 and "error: --metrics stacked_modes: no run of" in err


def test_eval_of_one_run_still_refuses_a_metric_that_does_not_apply(mixed_grid, bench_cli):
    ring = next(p for p in mixed_grid.iterdir() if RunDir.open(p).read_config()["dataset"] == "ring8")
    code, _, err = bench_cli("eval", str(ring), "--metrics", "fid")
    assert code == 2 and "does not apply to dataset 'ring8'" in err
