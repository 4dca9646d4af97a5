"""What a newcomer meets in the README's first screen: a dataset name as a scoring reference and its
export, status of a grid not yet run, Hydra-style overrides, overrides recorded with the runs, the
pipeline-check banner, the unknown-key list, tab-indented YAML, report on a grid file, TensorBoard
events for finished runs, and the score table's alignment."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import REPO, tiny_grid


def _digits_npz(path, n=300):
    """A brightened copy of the first n digits at 16 px: a 'generated' set that differs from the real one."""
    import numpy as np
    import torch

    from bench import registry
    from bench.config.schema import resolve

    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": 16, "device": "cpu"})
    images = registry.datasets.get("digits").load(config.data, 16, torch.device("cpu")).images[:n]
    x = (images.float() / 255 * 0.7 + 0.2).clamp(0, 1)
    np.savez(path, samples=x.numpy().astype(np.float32))
    return path


# 1. A dataset name as the reference, and its export


def test_score_on_a_dataset_name_equals_score_on_its_exported_folder(bench_cli, bench_cache, tmp_path):
    a = str(_digits_npz(tmp_path / "a.npz"))
    code, _, err = bench_cli("data", "export", "digits", str(tmp_path / "real"), "--size", "16")
    assert code == 0 and "wrote 1797 images of digits at 16 px" in err, err
    code, by_name, err = bench_cli("score", a, "digits", "--out", str(tmp_path / "name.json"))
    assert code == 0, err
    code, by_folder, err = bench_cli("score", a, str(tmp_path / "real"), "--features", "digits",
                                     "--out", str(tmp_path / "folder.json"))
    assert code == 0, err
    name = json.loads((tmp_path / "name.json").read_text())["records"]
    folder = json.loads((tmp_path / "folder.json").read_text())["records"]
    assert [(r["label"], r["value"]) for r in name] == [(r["label"], r["value"]) for r in folder]
    assert by_name == by_folder  # the printed tables too
    fd = next(r for r in name if r["name"] == "fd")
    assert fd["value"] > 1 and fd["protocol"]["ref_dataset"] == "digits"


def test_export_writes_the_datasets_images_in_order_and_never_into_a_used_folder(bench_cli, bench_cache, tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from bench.study.references import load

    code, _, err = bench_cli("data", "export", "shapes:classes=2,per_class=5", str(tmp_path / "out"), "--size", "8")
    assert code == 0, err
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(10)]
    images, labels = load("shapes:classes=2,per_class=5", 8)
    assert images.shape == (10, 3, 8, 8) and labels is not None
    for f, image in zip(files, images):
        assert torch.equal(torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1), image)
    code, _, err = bench_cli("data", "export", "digits", str(tmp_path / "out"))
    assert code == 2 and "exists and is not an empty folder" in err and len(list((tmp_path / "out").iterdir())) == 10


@pytest.mark.parametrize("spec, message", [
    ("ring8", "ring8: dataset 'ring8' is points; bench score and bench data export take image sets"),
    ("mnistk", "no such file or folder, and no dataset 'mnistk'; datasets: anime, cartoonset"),
    ("digits:colour=red", "digits:colour=red: dataset 'digits' has no option 'colour'; valid: flip"),
    ("digits:split", "expected NAME:KEY=VALUE,... such as cifar10:split=test"),
])
def test_a_bad_dataset_reference_is_one_line(bench_cli, tmp_path, spec, message):
    code, _, err = bench_cli("data", "export", spec, str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_the_score_table_keeps_its_columns_on_long_labels():
    from bench.study.score import table

    records = [{"name": "fd", "label": "FD@300/set/digits-mlp", "value": 12.5},
               {"name": "precision_real", "label": "P-real@50000/set/a-very-long-extractor-name-mlp", "value": 0.5,
                "std": 0.01}]
    lines = table(records).splitlines()
    value_end = {len(line.split(" ± ")[0]) for line in lines}
    assert len(value_end) == 1  # every value ends in the same column
    assert lines[1].index("FD@") == lines[2].index("P-real") == lines[0].index("label")


# 3. Status of a grid not yet run; 7. Hydra-style overrides


def test_status_of_an_unrun_grid_shows_the_resolved_configs_as_dry_run_does(bench_cli):
    grid = str(REPO / "ablations" / "wasserstein.yaml")
    code, status, err = bench_cli("status", grid)
    assert code == 0, err
    code, dry, err = bench_cli("run", grid, "--dry-run")
    assert code == 0, err
    assert "variant=None" not in status and "0/0 " not in status
    assert status.splitlines()[1:] == dry.splitlines()[1:]  # the same rows; only the title differs
    assert "variant=dcgan dataset=mnist5k" in status and "0/2000" in status


def test_key_value_after_the_grid_file_is_set(bench_cli):
    grid = str(REPO / "ablations" / "smoke.yaml")
    code, positional, err = bench_cli("run", grid, "variant=dcgan", "seeds=3", "--dry-run")
    assert code == 0, err
    code, with_set, err = bench_cli("run", grid, "--set", "variant=dcgan", "--set", "seeds=3", "--dry-run")
    assert code == 0 and positional == with_set and "3 runs" in positional.splitlines()[0]
    code, status, _ = bench_cli("status", grid, "variant=dcgan", "seeds=3")
    assert code == 0 and status.splitlines()[2:5] == positional.splitlines()[2:5]
    code, _, err = bench_cli("run", grid, "dcgan", "--dry-run")
    assert code == 2 and "unexpected argument 'dcgan'; after the grid file give overrides as KEY=VALUE" in err


def test_a_comma_list_points_at_the_bracket_form(bench_cli):
    code, _, err = bench_cli("run", str(REPO / "ablations" / "smoke.yaml"), "--set", "variant=dcgan,wgan_gp",
                             "--dry-run")
    assert code == 2 and err.count("\n") == 1
    assert "a comma list is Hydra's sweep form; a list here is written in brackets: --set 'variant=[dcgan,wgan_gp]'" in err


# 8. Every key the run accepts; 10. tab-indented YAML


def test_an_unknown_key_lists_every_key_grouped_loop_keys_included(bench_cli):
    from bench.config.schema import LoopConfig, config_fields

    code, _, err = bench_cli("run", str(REPO / "ablations" / "smoke.yaml"), "--set", "step=100", "--dry-run")
    assert code == 2 and err.count("\n") == 1
    assert "variant 'dcgan' has no key 'step'; did you mean 'steps'? Valid keys: loop: " in err
    loop = re.search(r"loop: ([^;]+);", err).group(1).split(", ")
    assert loop == sorted(config_fields(LoopConfig)) and "steps" in loop and "batch_size" in loop
    assert "; dcgan: augment, betas, d_steps, " in err and err.rstrip().endswith("; data (digits): data.flip")


def test_a_tab_indented_grid_file_says_indent_with_spaces(bench_cli, write_grid):
    path = write_grid("name: t\nseeds: 1\nbase:\n\tvariant: dcgan\n")
    code, _, err = bench_cli("run", str(path), "--dry-run")
    assert code == 2 and err.count("\n") == 1 and err.rstrip().endswith("indent with spaces, not tabs"), err
    path = write_grid("name: t\nbase: {variant: dcgan\n")  # other syntax errors keep the general fix
    code, _, err = bench_cli("run", str(path), "--dry-run")
    assert code == 2 and err.rstrip().endswith("fix the syntax"), err


# 5. Overrides recorded with the runs; 2. a pipeline check says so; 10. report takes a grid file


@pytest.fixture
def overridden(bench_cli, write_grid, tmp_path, bench_cache):
    """A 3-configuration grid file trained only on two of them, in the reverse of file order, by --set."""
    grid = tiny_grid(steps=4, log_every=2, ckpt_every=2)
    grid["grid"] = {"lr_g": [0.0001, 0.0002, 0.0003]}
    grid["pipeline_check"] = True
    path = write_grid(grid)
    code, _, err = bench_cli("run", str(path), "lr_g=[0.0003,0.0001]", "--set", "steps=2")
    assert code == 0, err
    return path


def test_overrides_are_recorded_and_status_follows_the_order_they_planned(bench_cli, overridden, tmp_path):
    recorded = json.loads((tmp_path / "results" / "tiny" / "overrides.json").read_text())
    assert [e["set"] for e in recorded] == [["lr_g=[0.0003,0.0001]", "steps=2"]] and len(recorded[0]["runs"]) == 2
    code, status, err = bench_cli("status", "tiny")
    assert code == 0, err
    lines = status.splitlines()
    assert lines[0] == "tiny: 2 runs (overrides: lr_g=[0.0003,0.0001] steps=2)"
    assert [re.search(r"lr_g=(\S+)", line).group(1) for line in lines[2:4]] == ["0.0003", "0.0001"]


def test_the_report_names_the_overrides_and_a_pipeline_check_gets_the_banner(bench_cli, overridden, tmp_path):
    from types import SimpleNamespace

    from bench.report.build import training
    from bench.report.load import find_grids, load_grid
    from bench.report.render_headline import banner_lines, overrides_text

    [folder] = find_grids([str(overridden)], tmp_path / "results")  # a grid file names its results folder
    assert folder == tmp_path / "results" / "tiny"
    t = training(load_grid(folder))
    assert t["pipeline_check"] and t["smoke"] and t["overrides"] == ["lr_g=[0.0003,0.0001] steps=2"]
    report = SimpleNamespace(training=t, data=SimpleNamespace(damaged={}))
    assert overrides_text(report) == "Trained with overrides of the grid file: lr_g=[0.0003,0.0001] steps=2."
    [banner] = banner_lines(report)
    assert banner.startswith("Pipeline check (its grid file says so): not meaningful. Runs trained 2 steps")


def test_smoke_yaml_is_a_pipeline_check():
    assert yaml.safe_load((REPO / "ablations" / "smoke.yaml").read_text())["pipeline_check"] is True


# 6. log_tensorboard on a finished grid


def test_log_tensorboard_on_a_finished_grid_writes_events_from_the_records(bench_cli, write_grid, tmp_path, bench_cache):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bench.store.runs import RunDir

    path = write_grid(tiny_grid(steps=4, log_every=2, ckpt_every=2))
    assert bench_cli("run", str(path))[0] == 0
    code, _, err = bench_cli("run", str(path), "log_tensorboard=true")
    assert code == 0 and "log_tensorboard: 1 finished run(s) had no events; wrote them from their records" in err
    [run_path] = [p for p in (tmp_path / "results" / "tiny").iterdir() if p.is_dir()]
    events = EventAccumulator(str(run_path / "tensorboard"))
    events.Reload()
    recorded = [(r["step"], r["value"]) for r in RunDir.open(run_path).read_metrics() if r["name"] == "loss_d"]
    assert [(e.step, pytest.approx(e.value)) for e in events.Scalars("train/loss_d")] == recorded
    code, _, err = bench_cli("run", str(path), "log_tensorboard=true")
    assert code == 0 and "log_tensorboard" not in err  # written once


# 10. The report's contents line can wrap


def test_the_contents_line_has_break_points_between_its_links():
    from types import SimpleNamespace

    from bench.report.render import toc

    report = SimpleNamespace(published=None, headlines={}, warnings=[], metric_groups=lambda: [("FD", 0)] * 30)
    nav = toc(report)
    assert "</a> <a" in nav and "</a><a" not in nav
