"""The CLI fits its users' habits: torch-fidelity's metric names, a standalone scorer, eval on a
mixed grid, every `--set` form the README promises, the documented run order, progress lines that
name what varies, and the Ctrl-C line that says how to resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import registry
from bench.config.schema import resolve
from bench.train.loop import train
from bench.store.runs import RunDir

REPO = Path(__file__).resolve().parent.parent


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
    code, out, _ = bench_cli("eval", "--help")
    assert code == 0
    listed = [line.split()[0] for line in out.split("Metrics (--metrics A,B):")[1].splitlines() if line.strip()]
    assert sorted(listed) == sorted(set(registry.metrics.names()) | set(registry.metrics.aliases()))
    assert "  fd                Frechet distance on the built-in data's own feature extractor" in out


def test_unknown_metric_lists_names_and_aliases(mixed_grid, bench_cli):
    code, _, err = bench_cli("eval", str(mixed_grid), "--metrics", "fidd")
    assert code == 2 and err.count("\n") == 1
    assert "valid: class_msssim, class_scores," in err and "(aliases: fid, is, isc)" in err


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


# 5. Run order, 6. progress lines and the Ctrl-C line

LABELS_GRID = """\
name: labels
seeds: 2
base: {variant: dcgan, dataset: digits, image_size: 16, batch_size: 8, steps: 2, log_every: 1,
       ckpt_every: 2, eval_every: -1, width: 8, device: cpu}
grid:
  labels:
    - {real_label: 1.0, fake_label: 0.0}
    - {real_label: 0.9, fake_label: 0.0}
    - {real_label: 0.9, fake_label: 0.1}
"""


def _labels_plan(tmp_path):
    from bench.launch import scheduler
    from bench.config.schema import load_grid
    from bench.config.grid import resolve_all

    (tmp_path / "labels.yaml").write_text(LABELS_GRID)
    configs, _ = resolve_all(load_grid(str(tmp_path / "labels.yaml")))
    return scheduler.plan(tmp_path / "results", "labels", configs)


def _setting(config) -> tuple:
    flat = config.flat()
    return flat["real_label"], flat["fake_label"], flat["seed"]


@pytest.mark.parametrize("pack, expected", [
    (1, [[(1.0, 0.0, 0)], [(0.9, 0.0, 0)], [(0.9, 0.1, 0)], [(1.0, 0.0, 1)], [(0.9, 0.0, 1)], [(0.9, 0.1, 1)]]),
    (2, [[(1.0, 0.0, 0), (1.0, 0.0, 1)], [(0.9, 0.0, 0), (0.9, 0.0, 1)], [(0.9, 0.1, 0), (0.9, 0.1, 1)]]),
])
def test_training_order_is_seeds_first_across_configurations(tmp_path, pack, expected):
    from bench.launch.scheduler import pack_units

    planned = _labels_plan(tmp_path)
    by_path = {str(p.run.path): p.config for p in planned}
    assert [[_setting(by_path[u]) for u in unit] for unit in pack_units(planned, pack)] == expected


def test_pack_rounds_keep_every_configuration_per_round(tmp_path):
    from bench.launch.scheduler import pack_units

    planned = _labels_plan(tmp_path)  # 3 configurations x 2 seeds; pack 1 of 3 seeds is the same shape
    units = pack_units(planned, 1)
    first_round = {_setting(next(p.config for p in planned if str(p.run.path) == u[0]))[:2] for u in units[:3]}
    assert len(first_round) == 3


def test_progress_lines_name_the_varying_keys_and_dry_run_groups_by_configuration(tmp_path, bench_cli,
                                                                                   bench_cache):
    (tmp_path / "labels.yaml").write_text(LABELS_GRID)
    code, out, err = bench_cli("run", "labels.yaml", "--dry-run")
    assert code == 0, err
    rows = [line for line in out.splitlines() if "real_label=" in line]
    assert [(r.split("real_label=")[1].split()[0], r.split("fake_label=")[1].split()[0], r.split("seed=")[1])
            for r in rows] == [("1.0", "0.0", "0"), ("1.0", "0.0", "1"), ("0.9", "0.0", "0"), ("0.9", "0.0", "1"),
                               ("0.9", "0.1", "0"), ("0.9", "0.1", "1")]
    code, out, err = bench_cli("run", "labels.yaml")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == 6 and lines[0].startswith("[1/6]")
    assert "dcgan digits fake_label=0.0 real_label=1.0 seed=0: done" in lines[0]
    assert "fake_label=0.0 real_label=0.9 seed=0: done" in lines[1]
    assert "fake_label=0.1 real_label=0.9 seed=0: done" in lines[2]
    assert "real_label=1.0 seed=1: done" in lines[3]
    assert " steps/s; ETA " in lines[0] and lines[5].endswith(" steps/s)")  # the last run has no ETA
    code, out, err = bench_cli("status", "labels.yaml")
    assert code == 0 and [line.split()[-1] for line in out.splitlines() if "real_label=" in line] == \
        ["seed=0", "seed=1"] * 3


def test_status_dry_run_and_progress_name_a_named_bundle_by_its_name(tmp_path, bench_cli, bench_cache):
    named = LABELS_GRID.replace("""  labels:
    - {real_label: 1.0, fake_label: 0.0}
    - {real_label: 0.9, fake_label: 0.0}
    - {real_label: 0.9, fake_label: 0.1}""", """  labels:
    none: {real_label: 1.0, fake_label: 0.0}
    one_sided: {real_label: 0.9, fake_label: 0.0}
    two_sided: {real_label: 0.9, fake_label: 0.1}""")
    (tmp_path / "labels.yaml").write_text(named)
    code, out, err = bench_cli("run", "labels.yaml", "--dry-run")
    assert code == 0, err
    rows = [line.split("  ")[-1] for line in out.splitlines() if "queued" in line and "seed=" in line]
    assert rows == [f"variant=dcgan dataset=digits labels={n} seed={s}"
                    for n in ("none", "one_sided", "two_sided") for s in (0, 1)]
    code, out, err = bench_cli("run", "labels.yaml", "--set", "seeds=1")
    assert code == 0, err
    assert [line.split(": ")[0].split(" ", 2)[2] for line in err.splitlines() if line.startswith("[")] == \
        [f"dcgan digits labels={n} seed=0" for n in ("none", "one_sided", "two_sided")]
    code, out, err = bench_cli("status", "labels")
    assert code == 0, err
    assert sorted(line.split("  ")[-1] for line in out.splitlines() if " done " in line) == \
        [f"variant=dcgan dataset=digits labels={n} seed=0" for n in ("none", "one_sided", "two_sided")]


def test_ctrl_c_prints_the_command_that_resumes(tmp_path, bench_cli, monkeypatch):
    from bench.launch import scheduler

    (tmp_path / "labels.yaml").write_text(LABELS_GRID)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scheduler, "plan", interrupt)
    code, _, err = bench_cli("run", "labels.yaml", "--set", "steps=3", "--dry-run")
    assert code == 130 and err.strip().count("\n") == 0  # click ends the ^C line first
    assert err.strip() == ("interrupted; finished runs are kept and the others resume from their last checkpoint "
                           "with: bench run labels.yaml --set steps=3")


# 4. Overrides as the README promises


def _dry(bench_cli, *sets: str):
    args = ["run", str(REPO / "ablations" / "label_smoothing.yaml"), "--dry-run", "--results", "res"]
    for s in sets:
        args += ["--set", s]
    return bench_cli(*args)


def _rows(out: str) -> list[dict]:
    rows = []
    for line in out.splitlines():
        if "  queued  " in line:
            rows.append({"id": line.split()[0], **dict(word.split("=", 1) for word in line.split() if "=" in word)})
    return rows


def _ids_of(**options) -> set[str]:
    """Run ids of the full grid's configurations whose variant options are these (real_label=0.9 ...)."""
    from bench.config.grid import resolve_all
    from bench.config.schema import load_grid

    configs, _ = resolve_all(load_grid(REPO / "ablations" / "label_smoothing.yaml"))
    return {c.run_id for c in configs if all(getattr(c.options, k) == v for k, v in options.items())}


@pytest.mark.parametrize("form, runs, check", [
    ("dataset=[digits,shapes]", 36, lambda rows: {r["dataset"] for r in rows} == {"digits", "shapes"}),
    ("real_label=[1.0, 0.9]", 24, lambda rows: {(r["real_label"], r["fake_label"]) for r in rows} ==
     {("1.0", "0.0"), ("0.9", "0.0"), ("1.0", "0.1"), ("0.9", "0.1")}),
    ("labels=[{real_label: 0.9}]", 6, lambda rows: "real_label" not in rows[0]),
    ("labels=one_sided", 6, lambda rows: {r["id"] for r in rows} == _ids_of(real_label=0.9, fake_label=0.0)),
    ("labels=[none, two_sided]", 12, lambda rows: {r["labels"] for r in rows} == {"none", "two_sided"}),
    ("seeds=1", 3, lambda rows: {r["seed"] for r in rows} == {"0"}),
    ("seeds=[3, 7]", 6, lambda rows: {r["seed"] for r in rows} == {"3", "7"}),
    ("seed=2", 3, lambda rows: {r["seed"] for r in rows} == {"2"}),
    ("betas=[0.5, 0.9]", 18, lambda rows: "betas" not in rows[0]),  # a list key: one value, not an axis
    ("betas=[[0.5, 0.9], [0.0, 0.9]]", 36, lambda rows: {r["betas"] for r in rows} == {"[0.5,", "[0.0,"}),
])
def test_every_set_form(bench_cli, form, runs, check):
    code, out, err = _dry(bench_cli, form)
    assert code == 0, err
    assert f": {runs} runs (dry run" in out
    assert check(_rows(out)), out


def test_bundle_by_name_keeps_the_run_ids_of_the_full_grid(bench_cli):
    _, full, _ = _dry(bench_cli)
    code, one, err = _dry(bench_cli, "labels=one_sided")
    assert code == 0, err
    ids = {line.split()[0] for line in one.splitlines() if "  queued  " in line}
    assert len(ids) == 6 and ids <= {line.split()[0] for line in full.splitlines() if "  queued  " in line}


@pytest.mark.parametrize("form, message", [
    ("labels=bogus", "--set labels=bogus: grid axis 'labels' has no value named 'bogus'; its names: none, "
                     "one_sided, two_sided"),
    ("real_label=[]", "--set real_label=[]: an axis needs at least one value"),
    ("real_label=[1.0, 2.0]", "'real_label' must be a probability between 0 and 1, got 2.0"),
    ("labels=[{seed: 1}]", "--set labels: a value sets 'seed'; set seeds with --set seeds=N"),
    ("seeds=0", "--set seeds: 'seeds' must be a count from 1"),
    ("dataset=[digits, nope]", "unknown dataset 'nope'"),
])
def test_bad_set_forms_are_one_line(bench_cli, form, message):
    code, out, err = _dry(bench_cli, form)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not Path("res").exists()  # bench_cli runs in tmp_path


def test_run_limit_is_checked_before_expansion(bench_cli):
    code, _, err = _dry(bench_cli, "seeds=1000000", "real_label=[0.1, 0.2, 0.3]", "fake_label=[0.0, 0.1]")
    assert code == 2 and "makes 18,000,000 runs (1,000,000 seeds x 3 labels x 3 real_label x 2 fake_label)" in err


def test_seeds_and_seed_together_are_refused(bench_cli):
    code, _, err = _dry(bench_cli, "seeds=2", "seed=1")
    assert code == 2 and "give one" in err


# 2. bench score A B


@pytest.fixture(scope="module")
def planted_sets(tmp_path_factory, bench_cache):
    """Real digits as a PNG folder and as an .npz (the same images), and a brightened copy."""
    import numpy as np
    import torch
    from PIL import Image

    root = tmp_path_factory.mktemp("sets")
    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": 16, "device": "cpu"})
    data = registry.datasets.get("digits").load(config.data, 16, torch.device("cpu"))
    images = data.images.cpu()[:300]
    x = images.float() / 255 if images.dtype == torch.uint8 else (images.clamp(-1, 1) + 1) / 2
    (root / "folder").mkdir()
    for i, img in enumerate((x[:, 0].numpy() * 255).round().astype(np.uint8)):
        Image.fromarray(img).save(root / "folder" / f"{i:03d}.png")
    np.savez(root / "same.npz", samples=x.numpy().astype(np.float32), value_range=np.array([0.0, 1.0]))
    np.savez(root / "shifted.npz", samples=(x * 0.5 + 0.4).clamp(0, 1).numpy().astype(np.float32))
    return root


def test_score_identical_sets_is_about_zero_and_a_shifted_set_is_larger(planted_sets, bench_cli):
    import json

    out = planted_sets / "same.json"
    code, table, err = bench_cli("score", str(planted_sets / "folder"), str(planted_sets / "same.npz"),
                                 "--metrics", "fid,kid,prc", "--out", str(out))
    assert code == 0, err
    records = json.loads(out.read_text())["records"]
    by_name = {r["name"]: r for r in records}
    assert abs(by_name["fd"]["value"]) < 1e-3 and by_name["precision"]["value"] > 0.95
    assert by_name["fd"]["label"] == "FD@300/set/digits-mlp" and "FD@300/set/digits-mlp" in table
    protocol = by_name["fd"]["protocol"]
    assert protocol["ref_dataset"] == str(planted_sets / "same.npz")
    assert protocol["gen_source"] == str(planted_sets / "folder") and protocol["n_gen"] == 300
    assert "digits-mlp@" in protocol["extractor"] and protocol["extractor_fitted_on"] == "digits"
    code, table, err = bench_cli("score", str(planted_sets / "shifted.npz"), str(planted_sets / "same.npz"),
                                 "--metrics", "fd", "--out", str(planted_sets / "shifted.json"))
    assert code == 0, err
    shifted = json.loads((planted_sets / "shifted.json").read_text())["records"][0]["value"]
    assert shifted > 100 * max(abs(by_name["fd"]["value"]), 1e-3)


@pytest.mark.parametrize("args, message", [
    (["missing", "missing2"], "missing: not an image folder or an .npz file"),
    (["{same}", "{same}", "--metrics", "mode_scores"], "'mode_scores' is not one; valid: density_coverage, fd"),
    (["{same}", "{same}", "--out", "x.txt"], "--out x.txt: the file name must end in .json"),
])
def test_score_mistakes_are_one_line(planted_sets, bench_cli, args, message):
    args = [a.format(same=planted_sets / "same.npz") for a in args]
    code, _, err = bench_cli("score", *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err


# 8. TensorBoard


def test_log_tensorboard_writes_losses_and_curve_metrics_at_flushes_and_keeps_the_run_id(tmp_path, bench_cache):
    import importlib.util
    import io
    import os

    import numpy as np
    from PIL import Image

    if importlib.util.find_spec("tensorboard") is None:  # CI installs the dev extra and requires it
        (pytest.fail if os.environ.get("BENCH_REQUIRE_DEV") else pytest.skip)(
            "tensorboard is not installed: pip install -e '.[dev]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    plain = tiny("ring8", "mlp_gan", steps=6, eval_every=3, log_every=3, ckpt_every=3)
    config = tiny("ring8", "mlp_gan", steps=6, eval_every=3, log_every=3, ckpt_every=3, log_tensorboard=True)
    assert config.run_id == plain.run_id
    run = RunDir(tmp_path, "tb", config.run_id)
    run.write_config(config.flat())
    run.set_status("queued")
    assert train(run, config) == "done"
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss_d" in tags and "train/loss_g" in tags
    assert [e.step for e in events.Scalars("train/loss_d")] == [3, 6]  # one point per flush
    curve = [t for t in tags if t.startswith("curve/")]
    assert curve and [e.step for e in events.Scalars(curve[0])] == [3, 6]
    loss = next(r["value"] for r in run.read_metrics() if r["name"] == "loss_d" and r["step"] == 3)
    assert events.Scalars("train/loss_d")[0].value == pytest.approx(loss, rel=1e-6)
    # the sample strip of each curve evaluation, the same picture as samples/timeline/
    assert [e.step for e in events.Images("samples")] == [3, 6]
    def pixels(png: bytes):
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    strip = pixels((run.samples_dir / "timeline" / "step-0000006.png").read_bytes())
    logged = events.Images("samples")[-1]
    assert (logged.height, logged.width) == strip.shape[:2] and strip.std() > 0  # a picture, not a blank
    assert np.array_equal(pixels(logged.encoded_image_string), strip)


def test_log_tensorboard_without_the_package_is_one_line(tmp_path, bench_cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    (tmp_path / "labels.yaml").write_text(LABELS_GRID)
    code, _, err = bench_cli("run", "labels.yaml", "--set", "log_tensorboard=true", "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "pip install -e '.[tensorboard]'" in err
