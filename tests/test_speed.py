"""Fast paths keep the numbers; `bench speed` runs end to end (a smoke: timings belong to the benchmark)."""

from __future__ import annotations

import pytest
import torch

from bench.train import loop
from bench.config.schema import resolve
from bench.store.runs import RunDir


def train_losses(tmp_path, name: str, **paths) -> tuple[list[tuple[int, str, float]], dict]:
    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": 8, "dcgan.width": 8, "steps": 6,
                      "batch_size": 8, "log_every": 3, "ckpt_every": 6, "eval_every": -1, "device": "cpu",
                      "seed": 7, **paths})
    run = RunDir(tmp_path / name, "s", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    records = [(r["step"], r["name"], r["value"]) for r in run.read_metrics() if r["name"] in ("loss_d", "loss_g")]
    return records, run.status()["fast_paths"]


# amp has its own test (tests/test_amp.py): a tolerance alone cannot tell bf16 from no autocast at all.
@pytest.mark.parametrize("path,tolerance", [("channels_last", 1e-5), ("compile", 1e-4)])
def test_a_fast_path_changes_no_result_beyond_tolerance(tmp_path, monkeypatch, path, tolerance):
    monkeypatch.setattr(loop, "COMPILE_BACKEND", "aot_eager")  # the same graph capture, no C++ build on CPU
    plain, plain_paths = train_losses(tmp_path, "plain", channels_last=False)
    fast, fast_paths = train_losses(tmp_path, "fast", **{"channels_last": False, path: True})
    assert [r[:2] for r in fast] == [r[:2] for r in plain] and len(plain) == 4
    assert [r[2] for r in fast] == pytest.approx([r[2] for r in plain], rel=tolerance, abs=tolerance)
    expected = {"channels_last": True, "compile": "on"}[path]
    assert fast_paths[path] == expected and plain_paths[path] in (False, "off")


def test_wgan_gp_compiles_or_falls_back_and_says_which(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "COMPILE_BACKEND", "aot_eager")
    config = resolve({"variant": "wgan_gp", "dataset": "digits", "image_size": 8, "steps": 3, "batch_size": 8,
                      "log_every": 3, "ckpt_every": 3, "eval_every": -1, "device": "cpu", "compile": True})
    run = RunDir(tmp_path, "s", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    # The oracle: whether this torch's aot_eager backend runs a double backward (WGAN-GP's penalty) at all.
    f = torch.compile(lambda x: (x ** 3).sum(), backend="aot_eager")
    x = torch.ones(2, requires_grad=True)
    try:
        torch.autograd.grad(f(x), x, create_graph=True)[0].sum().backward()
        expected = "on"
    except RuntimeError as exc:
        expected = f"eager (RuntimeError: {str(exc).splitlines()[0]})"
    assert run.status()["fast_paths"]["compile"] == expected


def test_bench_speed_prints_both_loops_their_ratio_and_the_path_table(bench_cli, monkeypatch):
    monkeypatch.setattr(loop, "COMPILE_BACKEND", "aot_eager")  # --paths turns compile on once
    code, out, err = bench_cli("speed", "--device", "cpu", "--size", "16", "--batch", "8", "--steps", "2",
                               "--warmup", "1", "--paths", "--pack", "2", "--ref-workers", "0", "--no-compile")
    assert code == 0, err
    assert "shared loop" in out and "reference (DCGAN example)" in out and "2 seeds packed" in out
    assert "shared / reference:" in out and "packed / single run:" in out
    for path in ("channels_last", "amp", "compile", "fused_optim"):
        assert f"\n{path}" in out
    evaluation = next(line for line in out.splitlines() if line.startswith("in-training evaluation"))
    assert "(digits, domain features, curve protocol, 2,000 samples: fd," in evaluation
    assert "a run of 2,000 steps at this size and batch with the auto schedule (17 evaluations)" in evaluation
    # The share follows from the printed figures: 16 evaluations at the steady cost plus the first one,
    # against 2,000 steps at the shared loop's ms/step.
    ms_per_step = float(next(line for line in out.splitlines() if line.startswith("shared loop")).split()[3])
    each = float(evaluation.split("): ")[1].split(" s each")[0])
    first = float(evaluation.split("(the first ")[1].split(" s,")[0])
    spent = first + 16 * each
    share = float(evaluation.split("spends ")[1].split("%")[0])
    assert share == pytest.approx(100 * spent / (spent + 2000 * ms_per_step / 1e3), abs=0.06 + 0.02 * share)
    code, _, err = bench_cli("speed", "--variant", "nope", "--device", "cpu")
    assert code == 2 and "unknown variant 'nope'" in err
    code, _, err = bench_cli("speed", "--device", "cpu", "--eval-data", "ring8")
    assert code == 2 and err == "error: --eval-data ring8 holds points; dcgan trains on images: pick such a " \
                                "dataset or --eval-data none\n"


def test_bench_speed_says_when_the_curve_cannot_run_here(bench_cli, tmp_path, monkeypatch):
    from PIL import Image

    folder = tmp_path / "data" / "anime"
    folder.mkdir(parents=True)
    for i in range(8):
        Image.new("RGB", (20, 20), (30 * i, 90, 200)).save(folder / f"{i}.png")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    for name in ("BENCH_INCEPTION_WEIGHTS", "BENCH_VGG16_WEIGHTS", "BENCH_DOWNLOAD_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = bench_cli("speed", "--device", "cpu", "--size", "8", "--batch", "4", "--steps", "1",
                               "--warmup", "1", "--no-reference", "--eval-data", "anime")
    assert code == 0, err
    assert "in-training evaluation (anime, natural features, curve protocol" in out
    assert "msssim_gap" in out and "skipped here, so not timed: inception (bench eval RUN --metrics inception says why)" in out
