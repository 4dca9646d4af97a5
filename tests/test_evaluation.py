"""The Evaluator inside the loop: curves, best.pt, final and best records, RNG isolation, resume,
offline natural-image runs, and `bench eval` on a finished run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from bench import registry
from bench.cli import main
from bench.config.schema import resolve
from bench.metrics.evaluator import Evaluator
from bench.train.loop import train
from bench.metrics import fidelity
from bench.store.runs import RunDir

REQUIRED = {"extractor", "n_gen", "ref_dataset", "ref_split", "ref_fingerprint", "checkpoint", "eval_seed",
            "library", "seed"}


def tiny(dataset: str, variant: str = "dcgan", **keys):
    return resolve({"variant": variant, "dataset": dataset, "steps": 20, "batch_size": 16, "image_size": 16,
                    "log_every": 10, "ckpt_every": 10, "dcgan.width": 8, "device": "cpu", **keys})


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory, bench_cache):
    """The same tiny dcgan run on digits trained twice: with curve and final evaluation, and without."""
    root = tmp_path_factory.mktemp("results")
    runs = {}
    for eval_every in (10, -1):
        config = tiny("digits", eval_every=eval_every)
        run = RunDir(root, f"e{eval_every}", config.run_id)
        run.write_config(config.flat())
        run.set_status("queued")
        assert train(run, config) == "done"
        runs[eval_every] = run
    return runs


def _state(run: RunDir) -> dict:
    return torch.load(run.checkpoint_file, weights_only=True)


def test_evaluation_does_not_touch_training_rng(digits_runs):
    with_eval, without = _state(digits_runs[10]), _state(digits_runs[-1])
    for net in ("G", "D"):
        for key, value in with_eval[net].items():
            assert torch.equal(value, without[net][key]), f"{net}.{key} differs"
    assert torch.equal(with_eval["rng"]["torch"], without["rng"]["torch"])
    evals = [r for r in digits_runs[-1].read_metrics() if r["kind"] != "train"]
    assert evals == [] and not (digits_runs[-1].path / "ckpt" / "best.pt").exists()


def test_records_follow_the_schema_with_curve_final_and_best_apart(digits_runs):
    records = [r for r in digits_runs[10].read_metrics() if r["kind"] != "train"]
    assert {r["kind"] for r in records} == {"curve", "final", "best"}
    for r in records:
        assert {"step", "name", "value", "kind", "label", "protocol", "higher_is_better"} <= set(r)
        assert isinstance(r["step"], int) and isinstance(r["higher_is_better"], bool)
        assert REQUIRED <= set(r["protocol"]), (r["name"], REQUIRED - set(r["protocol"]))
        assert r["protocol"]["image_size"] == 16 and r["protocol"]["ref_dataset"] == "digits"
    curve = {(r["step"], r["label"]) for r in records if r["kind"] == "curve" and r["name"] == "fd"}
    assert curve == {(10, "FD@2k/all/digits-mlp"), (20, "FD@2k/all/digits-mlp")}
    final = {r["name"]: r for r in records if r["kind"] == "final"}
    assert {"fd", "kid", "precision", "recall", "density", "coverage", "msssim_gap", "ndb_over_k"} <= set(final)
    assert final["fd"]["label"] == "FD@10k/all/digits-mlp" and final["fd"]["protocol"]["checkpoint"] == "final"
    assert final["kid"]["std_kind"] == "subsets" and final["kid"]["std"] > 0
    assert final["kid"]["protocol"]["kid_subset_size"] == 1000 and final["kid"]["protocol"]["n_ref"] == 1797
    assert all(math.isfinite(r["value"]) for r in final.values())
    best = [r for r in records if r["kind"] == "best"]
    state = torch.load(digits_runs[10].path / "ckpt" / "best.pt", weights_only=True)
    assert set(state) == {"step", "metric", "value", "G"} and state["metric"] == "fd"
    fd_curve = {r["step"]: r["value"] for r in records if r["kind"] == "curve" and r["name"] == "fd"}
    assert state["step"] == min(fd_curve, key=fd_curve.get) and state["value"] == pytest.approx(min(fd_curve.values()))
    assert {r["step"] for r in best} == {state["step"]}
    assert {r["protocol"]["checkpoint"] for r in best} == {"best:fd"}


def test_resumed_evaluator_restores_best_so_far_from_records(tmp_path, bench_cache):
    config = tiny("ring8", "mlp_gan", steps=40)
    run = RunDir(tmp_path, "r", config.run_id)
    run.write_config(config.flat())
    base = {"kind": "curve", "label": "modes@2500", "protocol": {}, "higher_is_better": True}
    run.append_metrics([{**base, "step": 10, "name": "modes_covered", "value": 6.0},
                        {**base, "step": 20, "name": "modes_covered", "value": 8.0},
                        {**base, "step": 20, "name": "hq_fraction", "value": 0.9},
                        {**base, "step": 30, "name": "modes_covered", "value": 8.0},
                        {**base, "step": 30, "name": "hq_fraction", "value": 0.5}])
    data = registry.datasets.get("ring8").load(config.data, 16, torch.device("cpu"))
    variant = registry.variants.get("mlp_gan")(config.options, data.spec)
    evaluator = Evaluator(run, config, variant, data, torch.device("cpu"))
    assert evaluator.best_key == (8.0, 0.9)
    G, _ = variant.build()  # an untrained G covers fewer modes: best.pt must not be written
    evaluator.at_flush(G, 40)
    assert not evaluator.best_file.exists()
    curve = [r for r in run.read_metrics() if r["step"] == 40]
    assert {r["name"] for r in curve} == {"modes_covered", "hq_fraction", "kl_modes", "jsd_modes"}
    assert all(r["protocol"]["checkpoint"] == "step" and r["protocol"]["modes"] == 8 for r in curve)


def test_natural_images_offline_record_skipped_final_scores_and_finish(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    for name in (fidelity.INCEPTION_ENV, fidelity.VGG16_ENV, fidelity.DOWNLOAD_ENV):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3)).astype(np.uint8)).save(folder / f"{i}.png")
    config = tiny("imagefolder", "mlp_gan", **{"data.root": str(folder), "hidden_g": [32], "hidden_d": [32],
                                                 "eval_n": 500})
    run = RunDir(tmp_path / "results", "n", config.run_id)
    run.write_config(config.flat())
    assert train(run, config) == "done"
    final = {r["name"]: r for r in run.read_metrics() if r["kind"] == "final"}
    assert final["fid"]["value"] is None and final["fid"]["label"] == "FID@500/all"
    assert final["fid"]["protocol"]["skipped"].startswith("Inception weights not found: ")
    assert final["precision"]["protocol"]["skipped"].startswith("VGG16 weights not found: ")
    assert isinstance(final["msssim_gap"]["value"], float)
    assert run.status()["state"] == "done"


def test_bench_eval_appends_records_for_a_finished_run(digits_runs, capsys):
    run = digits_runs[-1]
    before = len(run.read_metrics())
    code = main(["eval", str(run.path), "--metrics", "fd,kid", "--n", "500", "--checkpoint", "final"])
    out, err = capsys.readouterr()
    assert code == 0, err
    added = run.read_metrics()[before:]
    assert {(r["name"], r["kind"], r["label"]) for r in added} == {
        ("fd", "final", "FD@500/all/digits-mlp"), ("kid", "final", "KID@500/all/digits-mlp"),
        ("fd_real", "final", "FD-real@500/all/digits-mlp"), ("kid_real", "final", "KID-real@500/all/digits-mlp")}
    assert next(r for r in added if r["name"] == "kid")["protocol"]["kid_subset_size"] == 500
    assert "FD@500/all/digits-mlp" in out and "seconds:" in err
    code = main(["eval", str(run.path), "--metrics", "fid_typo"])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "unknown metric 'fid_typo'; valid:" in err
    code = main(["eval", str(run.path), "--metrics", "mode_scores"])
    out, err = capsys.readouterr()
    assert code == 2 and "does not apply to dataset 'digits'" in err


@pytest.mark.slow
def test_probe_beats_chance_beside_a_random_discriminator(digits_runs, capsys):
    run = digits_runs[10]
    code = main(["eval", str(run.path), "--metrics", "probe", "--checkpoint", "final", "--n", "400"])
    assert code == 0, capsys.readouterr().err
    probe = {r["name"]: r for r in run.read_metrics() if r["name"].startswith("probe_acc")}
    assert set(probe) == {"probe_acc", "probe_acc_random_d", "probe_acc_pixels"}
    chance = probe["probe_acc"]["protocol"]["chance"]
    assert chance == pytest.approx(0.1)
    assert probe["probe_acc"]["value"] > 5 * chance and probe["probe_acc_random_d"]["value"] > 5 * chance
    assert probe["probe_acc_pixels"]["value"] > 0.9
    assert probe["probe_acc"]["protocol"]["probe_classifier"] == "linear_svc"
    assert probe["probe_acc"]["protocol"]["n_ref"] == 400 and probe["probe_acc"]["label"].endswith("@400")
    assert all(r["kind"] == "final" for r in probe.values())
