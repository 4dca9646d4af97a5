"""Issue 26, one test per item: the newer surfaces (bench score, bench explore, published sections, the
report's options, bench data) give a right answer or one `error:` line with exit 2, never a silent
wrong number, a traceback or a stray folder. Item 4 (a published row matching several configurations)
is tested where it is fixed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bench.errors import BenchError
from bench.report.synthetic import curve_record, write_run
from bench.store.runs import RunDir
from conftest import tiny_grid, train_grid


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and all(w in err for w in words), err


# ------------------------------------------------------------------ a finished run to explore


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = train_grid(tmp_path_factory.mktemp("finished"), tiny_grid(steps=4, log_every=2, ckpt_every=2))
    return next(p for p in (root / "results" / "tiny").iterdir() if p.is_dir())


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    target = tmp_path / "results" / "tiny" / finished_run.name
    shutil.copytree(finished_run, target)
    return target


# 1. explore on an unfinished run; 20. on a run whose status.json is damaged
@pytest.mark.parametrize("state", ["running", "queued", "failed"])
def test_explore_refuses_a_run_that_has_not_finished(run_copy, bench_cli, state):
    RunDir.open(run_copy).set_status(state, step=2)
    code, _, err = bench_cli("explore", str(run_copy), "--pairs", "10")
    one_line_error(code, err, f"is {state} (step 2 of 4); finish it with bench run first")
    assert not (run_copy / "explore").exists()
    assert not any(r["name"] == "ppl" for r in RunDir.open(run_copy).read_metrics())


def test_explore_refuses_a_damaged_status_file(run_copy, bench_cli):
    (run_copy / "status.json").write_text("{not json")
    code, _, err = bench_cli("explore", str(run_copy), "--pairs", "10")
    one_line_error(code, err, "status.json: not JSON", "delete the run folder")


# 10. seed, device and a file where explore/ goes; 20. the device fix names an explore option
@pytest.mark.parametrize("args, words", [
    (["--seed", str(2**64)], ["--seed 18446744073709551616: must be in [0, 2^63)"]),
    (["--seed", "-1"], ["--seed -1: must be in [0, 2^63)"]),
    (["--device", "foo"], ["device 'foo' is not a device name", "use --device cpu"]),
    (["--device", "cuda:7"], ["device 'cuda:7'", "use --device cpu"]),
])
def test_explore_options_fail_in_one_line(run_copy, bench_cli, args, words):
    if "cuda:7" in args:
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a CUDA device 7")
    code, _, err = bench_cli("explore", str(run_copy), "--pairs", "10", *args)
    one_line_error(code, err, *words)
    assert "--set device" not in err


def test_explore_folder_taken_by_a_file(run_copy, bench_cli):
    (run_copy / "explore").write_text("not a folder")
    code, _, err = bench_cli("explore", str(run_copy), "--pairs", "10")
    one_line_error(code, err, "explore exists and is not a folder; move it away")


# 18. two latent seeds, two labels
def test_explore_seed_is_in_the_label(run_copy, bench_cli):
    for seed in ("", "5", "6"):
        code, out, err = bench_cli("explore", str(run_copy), "--pairs", "10", *(["--seed", seed] if seed else []))
        assert code == 0, err
    labels = sorted(r["label"] for r in RunDir.open(run_copy).read_metrics() if r["name"] == "ppl")
    assert labels == ["PPL@10/slerp/xy", "PPL@10/slerp/xy/seed5", "PPL@10/slerp/xy/seed6"]
    assert {p.name for p in (run_copy / "explore").glob("ppl-*")} == {
        "ppl-final.json", "ppl-final-seed5.json", "ppl-final-seed6.json"}


# ------------------------------------------------------------------ bench score


@pytest.fixture(scope="module")
def images(tmp_path_factory, bench_cache) -> Path:
    """Forty 8 px grey images as an 8-bit folder, the same as 16-bit PNGs, and as a [0, 1] .npz."""
    root = tmp_path_factory.mktemp("score")
    pixels = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    for folder in ("png8", "png16"):
        (root / folder).mkdir()
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(root / "png8" / f"{i:02d}.png")
        Image.fromarray(p.astype(np.uint16) * 257).save(root / "png16" / f"{i:02d}.png")  # I;16, same picture
    np.savez(root / "set.npz", samples=(pixels[:, None] / 255).astype(np.float32))
    return root


def _fd(bench_cli, a, b, tmp_path) -> float:
    out = tmp_path / "fd.json"
    code, _, err = bench_cli("score", str(a), str(b), "--metrics", "fd", "--out", str(out))
    assert code == 0, err
    return json.loads(out.read_text())["records"][0]["value"]


# 3. 16-bit PNGs: rescaled, not clipped to white, in score and in the dataset decoder
def test_sixteen_bit_images_score_as_their_eight_bit_twins(images, bench_cli, tmp_path):
    assert Image.open(images / "png16" / "00.png").mode == "I;16"
    assert abs(_fd(bench_cli, images / "png16", images / "png8", tmp_path)) < 1e-3
    from bench.datasets.decode import Preprocess, decode_one

    for i in range(3):
        eight, sixteen = (decode_one(images / d / f"{i:02d}.png", Preprocess(8)) for d in ("png8", "png16"))
        assert np.array_equal(eight, sixteen)


@pytest.mark.parametrize("array, words", [
    (np.full((20, 1, 8, 8), np.nan, np.float32), "1,280 of 1,280 sample values are NaN or infinite"),
    (np.full((20, 1, 8, 8), np.inf, np.float32), "NaN or infinite"),
    (np.full((20, 3, 8, 8), 200, np.uint8), "holds uint8 values (0-255 pixels: divide by 255)"),
    (np.full((20, 1, 8, 8), 1e30), "sample values span [1e+30, 1e+30]; bench score takes images in [0, 1]"),
    (np.full((20, 1, 8, 8), -0.5, np.float32), "span [-0.5, -0.5]"),
    (np.zeros((0, 1, 8, 8), np.float32), "0 images; bench score needs at least 10 per set"),
    (np.zeros((1, 1, 8, 8), np.float32), "1 image; bench score needs at least 10"),
])
def test_score_refuses_arrays_that_are_not_images_in_0_1(images, bench_cli, tmp_path, array, words):
    np.savez(tmp_path / "bad.npz", samples=array)
    for args in ((tmp_path / "bad.npz", images / "set.npz"), (images / "set.npz", tmp_path / "bad.npz")):
        code, _, err = bench_cli("score", *map(str, args))
        one_line_error(code, err, "bad.npz", words)


# 7. corrupt, truncated and oversized images; 8. one image
def test_score_refuses_unreadable_images_naming_the_file(images, bench_cli, tmp_path, monkeypatch):
    folder = tmp_path / "f"
    shutil.copytree(images / "png8", folder)
    data = (folder / "17.png").read_bytes()
    (folder / "17.png").write_bytes(data[: len(data) // 2])  # truncated: one of 40
    code, _, err = bench_cli("score", str(folder), str(images / "set.npz"))
    one_line_error(code, err, "17.png: unreadable image", "delete or replace it")
    (folder / "17.png").write_bytes(b"not a png at all")
    code, _, err = bench_cli("score", str(folder), str(images / "set.npz"))
    one_line_error(code, err, "17.png: unreadable image (UnidentifiedImageError")
    shutil.copy(images / "png8" / "00.png", folder / "17.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # an 8x8 image now counts as a decompression bomb
    code, _, err = bench_cli("score", str(folder), str(images / "set.npz"))
    one_line_error(code, err, "00.png: unreadable image (DecompressionBomb")


def test_score_refuses_a_folder_of_one_image(images, bench_cli, tmp_path):
    (tmp_path / "one").mkdir()
    shutil.copy(images / "png8" / "00.png", tmp_path / "one")
    code, _, err = bench_cli("score", str(tmp_path / "one"), str(images / "set.npz"))
    one_line_error(code, err, "1 image; bench score needs at least 10 per set")


# 9. --out where it cannot be written
def test_score_out_must_be_writable_and_its_folder_must_exist(images, bench_cli, tmp_path):
    missing = tmp_path / "no" / "such" / "x.json"
    code, _, err = bench_cli("score", str(images / "set.npz"), str(images / "set.npz"), "--out", str(missing))
    one_line_error(code, err, "does not exist; create it first")
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_text("")
    code, _, err = bench_cli("score", str(images / "set.npz"), str(images / "set.npz"), "--out",
                             str(tmp_path / "file" / "x.json"))
    one_line_error(code, err, "is not a folder")
    if Path("/proc").is_dir():
        code, _, err = bench_cli("score", str(images / "set.npz"), str(images / "set.npz"), "--out", "/proc/x.json")
        one_line_error(code, err, "--out /proc/x.json: cannot write it")


# ------------------------------------------------------------------ report options and published sections


def _grid(root: Path, name: str = "g", published: str = "", values=(5.0, 6.0, 7.0)) -> Path:
    grid = root / name
    for variant, offset in (("dcgan", 0.0), ("wgan", 1.0)):
        for seed, v in enumerate(values):
            rec = curve_record(1000, "modes_covered", v + offset, "modes@10k", True, kind="final", seed=seed)
            write_run(grid, {"variant": variant, "dataset": "ring8", "seed": seed}, "done", [rec], 1000)
    (grid / "grid.yaml").write_text(f"name: {name}\ngrid:\n  variant: [dcgan, wgan]\n{published}")
    return grid


XSS_PUBLISHED = """published:
  source: {paper: "<script>alert(1)</script>", year: 2018, table: "Table 1"}
  values:
    - {row: "<img src=x onerror=alert(1)>", metric: modes_covered, config: {variant: wgan}, mean: 6e0}
"""


# 16. 6e0; 20. names escaped in report.md, a huge value printed in exponent form
def test_published_reads_exponents_and_report_md_escapes_its_names(tmp_path, bench_cli):
    from bench.config.published import number_text

    _grid(tmp_path / "results", published=XSS_PUBLISHED, values=(1e300, 1e300, 1e300))
    code, _, err = bench_cli("report", "g", "--format", "md")
    assert code == 0, err
    md = (tmp_path / "reports/g/report.md").read_text()
    assert "<script" not in md and "<img" not in md
    assert "&lt;script>alert(1)&lt;/script>" in md and "&lt;img src=x onerror=alert(1)>" in md
    assert "| 6 |" in md and "1e+300" in md and "0" * 30 not in md
    assert number_text(1e300) == "1e+300" and number_text(12345.0) == "12,345" and number_text(0.5) == "0.5"


# 5. two grids with one name
def test_two_grids_with_one_name_are_refused(tmp_path, bench_cli):
    _grid(tmp_path / "results")
    _grid(tmp_path / "other")
    code, _, err = bench_cli("report", "results/g", "other/g")
    one_line_error(code, err, "results/g and other/g are both grids named 'g'", "each with its own --out")
    assert not (tmp_path / "reports").exists()
    code, _, err = bench_cli("report", "results/g", str(tmp_path / "results" / "g"), "--format", "md")
    assert code == 0, err  # one folder named twice is one grid


# 6. the cache is keyed on content
def test_report_cache_sees_an_edit_that_keeps_size_and_mtime(tmp_path, bench_cli):
    grid = _grid(tmp_path / "results", values=(5.0, 6.0, 7.0))
    assert bench_cli("report", "g", "--format", "csv")[0] == 0
    metrics = next(p / "metrics.jsonl" for p in grid.iterdir() if '"value": 5.0' in (p / "metrics.jsonl").read_text())
    st = metrics.stat()
    text = metrics.read_text()
    metrics.write_text(text.replace('"value": 5.0', '"value": 8.0'))
    os.utime(metrics, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert metrics.stat().st_size == st.st_size and metrics.stat().st_mtime_ns == st.st_mtime_ns
    assert bench_cli("report", "g", "--format", "csv")[0] == 0
    values = sorted(json.loads(line)["value"] for p in grid.iterdir() if p.is_dir()
                    for line in (p / "metrics.jsonl").read_text().splitlines())
    import pandas as pd

    assert sorted(pd.read_csv(tmp_path / "reports/g/tidy.csv")["value"]) == values and 8.0 in values


# 13. every rule parameter has a range
@pytest.mark.parametrize("item, words", [
    ("loss.d_max=nan", "loss.d_max must be a finite number in (0, inf)"),
    ("loss.d_max=0", "loss.d_max must be a finite number in (0, inf)"),
    ("loss.g_rise=-1", "loss.g_rise must be a finite number in [0, inf)"),
    ("loss.windows=-3", "loss.windows must be a finite number in [1, 1,000,000]"),
    ("loss.windows=2.5", "loss.windows takes a whole number"),
    ("grad.g_share=inf", "grad.g_share must be a finite number in (0, 1]"),
    ("grad.g_share=1.5", "grad.g_share must be a finite number in (0, 1]"),
    ("reach.modes_covered=500%", "a share of 500% is past 100%"),
    ("reach.modes_covered=0%", "the amount must be a finite number above 0"),
    ("collapse.modes_covered=-150%", "a share of 150% is past 100%"),
    ("collapse.msssim_gap=+0", "the amount must be a finite number above 0"),
    ("divergence.fd=>1e999", "the amount must be a finite number"),
])
def test_threshold_values_out_of_range_are_refused(item, words, tmp_path, bench_cli):
    _grid(tmp_path / "results")
    code, _, err = bench_cli("report", "g", "--threshold", item)
    one_line_error(code, err, f"--threshold {item!r}", words)
    assert not (tmp_path / "reports").exists()


def test_threshold_values_in_range_are_kept():
    from bench.report.stability import parse_thresholds

    t = parse_thresholds(["loss.d_max=0.1", "loss.g_rise=0", "loss.windows=1", "grad.g_share=1",
                          "reach.recall=100%", "collapse.fd=+3", "divergence.fd=<-5", "divergence.kid=start+400%"])
    assert (t.loss_d_max, t.loss_g_rise, t.loss_windows, t.grad_g_share) == (0.1, 0.0, 1, 1.0)
    assert t.reach["recall"] == "100%" and t.collapse["fd"] == "+3" and t.divergence["fd"] == "<-5"


# 14. an unknown value of a named axis
def test_baseline_with_an_unknown_axis_value_names_it_and_lists_the_names(tmp_path, bench_cli):
    grid = tmp_path / "results" / "ls"
    for real, fake in ((1.0, 0.0), (0.9, 0.0), (0.9, 0.1)):
        for seed in range(2):
            rec = curve_record(600, "fd", 10.0 + seed, "FD@10k", False, kind="final", seed=seed)
            write_run(grid, {"variant": "dcgan", "real_label": real, "fake_label": fake, "seed": seed}, "done", [rec], 600)
    (grid / "grid.yaml").write_text("name: ls\ngrid:\n  labels:\n    plain: {real_label: 1.0, fake_label: 0.0}\n"
                                    "    one_sided: {real_label: 0.9, fake_label: 0.0}\n"
                                    "    both: {real_label: 0.9, fake_label: 0.1}\n")
    code, _, err = bench_cli("report", "ls", "--baseline", "labels=nothing")
    one_line_error(code, err, "axis labels has no value named 'nothing'; its values: plain, one_sided, both")
    assert bench_cli("report", "ls", "--baseline", "labels=one_sided", "--format", "md")[0] == 0


def test_baseline_reads_numbers_as_the_grid_writes_them(tmp_path):
    from bench.report.build import Options, compute
    from bench.report.load import load_grid

    grid = tmp_path / "lr"
    for lr in (1e-4, 2e-4, 1.0):
        for seed in range(2):
            rec = curve_record(600, "fd", 10.0 + seed + lr, "FD@10k", False, kind="final", seed=seed)
            write_run(grid, {"variant": "dcgan", "lr": lr, "seed": seed}, "done", [rec], 600)
    data = load_grid(grid)
    for asked, picked in (("lr=1e-4", "lr=0.0001"), ("lr=2E-4", "lr=0.0002"), ("lr=1", "lr=1.0")):
        table = compute(data, Options(baseline=(asked,))).table.set_index("config")
        assert table.loc[picked, "note"] == "baseline"


# 12. --gpus checked at planning
@pytest.mark.parametrize("gpus, words", [("foo", "expected device indices like 0,1"), ("-1", "start at 0"),
                                         ("0", "no CUDA device is visible"), ("all", "no CUDA device is visible")])
def test_gpus_refused_before_anything_is_written(write_grid, bench_cli, tmp_path, gpus, words):
    import torch

    if torch.cuda.is_available() and "CUDA" in words:
        pytest.skip("this machine has CUDA")
    grid = write_grid(tiny_grid())
    for dry in ([], ["--dry-run"]):
        code, _, err = bench_cli("run", str(grid), "--gpus", gpus, *dry)
        one_line_error(code, err, f"--gpus {gpus}", words)
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------ bench data


# 15. stacked_mnist is built from mnist
def test_stacked_mnist_names_the_fetch_it_needs(bench_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    code, _, err = bench_cli("data", "fetch", "stacked_mnist")
    assert code == 0 and "stacked_mnist: built from the mnist files" in err and "bench data fetch mnist" in err
    code, out, _ = bench_cli("data", "list")
    line = next(x for x in out.splitlines() if x.startswith("stacked_mnist "))
    assert "missing" in line and "built from mnist: bench data fetch mnist" in line and "built in" not in line


# 19. a failed fetch leaves no folder it made, in a root the user had too
def test_failed_fetch_into_an_existing_root_leaves_no_new_folder(bench_cli, tmp_path, monkeypatch):
    from torchvision import datasets as tv

    root = tmp_path / "root"
    (root / "mine" / "empty").mkdir(parents=True)

    def fail(path, train, download):
        (Path(path) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does, offline
        raise RuntimeError("offline")

    monkeypatch.setattr(tv, "MNIST", fail)
    code, _, err = bench_cli("data", "fetch", "mnist", "--root", str(root))
    one_line_error(code, err, "torchvision could not download mnist")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == ["mine", "mine/empty"]


# ------------------------------------------------------------------ 17, 11: one reader, one verdict

DAMAGED_METRICS = {
    "a list line": "[1,2,3]",
    "a text value": json.dumps({"step": 3, "name": "loss_d", "value": "abc", "kind": "train"}),
    "a 400-digit value": '{"step": 3, "name": "loss_d", "value": 1' + "0" * 400 + ', "kind": "train"}',
    "a text std": json.dumps({"step": 3, "name": "fd", "value": 1.0, "std": [1], "kind": "final"}),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_METRICS))
def test_every_command_reading_a_run_gives_one_verdict_on_a_damaged_metrics_file(run_copy, bench_cli, tmp_path, case):
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write(DAMAGED_METRICS[case] + "\n")
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(tiny_grid(steps=4, log_every=2, ckpt_every=2)))
    said = "metrics.jsonl: 1 of"
    code, out, err = bench_cli("status", "tiny")
    assert code == 0 and f"{run_copy.name}  damaged" in out and said in out, out
    code, out, err = bench_cli("run", str(grid), "--dry-run")
    assert code == 0 and f"{run_copy.name}  damaged" in out, out
    code, _, err = bench_cli("run", str(grid))
    assert code == 1 and f"damaged {run_copy.name}: " in err and said in err, err
    code, _, err = bench_cli("report", "tiny", "--format", "md")
    assert code == 2 and "every run folder under" in err and said in err and "Traceback" not in err, err
    for command in (["eval", str(run_copy), "--metrics", "modes"], ["explore", str(run_copy), "--pairs", "10"],
                    ["sample", str(run_copy), "--n", "4", "--out", str(tmp_path / "s.npz")]):
        code, _, err = bench_cli(*command)
        one_line_error(code, err, said, "delete the run folder")
    assert not (tmp_path / "s.npz").exists() and not (run_copy / "explore").exists()


def test_a_record_holding_a_number_a_float_cannot_is_damage_not_a_crash(tmp_path):
    from bench.store.runs import Damaged

    run = RunDir(tmp_path, "g", "abc")
    run.append_metrics([{"step": 1, "name": "fd", "value": 10**300}, {"step": 2, "name": "fd", "value": float("inf")},
                        {"step": 3, "name": "fd", "value": None, "std": 0.5}])
    assert [r["value"] for r in run.read_metrics()] == [10**300, "inf", None]
    with open(run.metrics_file, "a") as f:
        f.write('{"step": 4, "name": "fd", "value": 1' + "0" * 400 + "}\n")
    with pytest.raises(Damaged, match="1 of 4 lines are not metric records"):
        run.read_metrics()


def test_published_numbers_read_as_grid_keys_do():
    from bench.config.published import parse

    section = {"source": {"paper": "P", "year": 2020, "table": "T1"},
               "values": [{"row": "GAN", "metric": "fid", "config": {"variant": "dcgan"}, "mean": "6e0",
                           "kind": "range", "spread": ["5E0", 7]}]}
    (value,) = parse(section, "g.yaml")
    assert value.mean == 6.0 and value.spread == (5.0, 7.0)
    for bad in ("nan", "1e999", "six", True):
        with pytest.raises(BenchError, match="must be a finite number"):
            parse({**section, "values": [{**section["values"][0], "mean": bad, "kind": "none", "spread": None}]}, "g")
