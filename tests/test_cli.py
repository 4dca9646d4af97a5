"""End to end through the CLI: the smoke grid, re-running it, listing it, sampling a run."""

from __future__ import annotations

import json

import numpy as np

from conftest import REPO, tiny_grid


def test_smoke_grid_end_to_end_then_nothing_to_train(bench_cli, tmp_path):
    grid = str(REPO / "ablations" / "smoke.yaml")
    code, out, _ = bench_cli("run", grid, "--dry-run")
    assert code == 0 and out.count(" queued ") == 6 and "6 queued;" in out
    assert not (tmp_path / "results").exists()  # a dry run creates nothing

    code, _, err = bench_cli("run", grid)
    assert code == 0, err
    assert "6 to train" in err and "6 done" in err
    runs = [p for p in (tmp_path / "results" / "smoke").iterdir() if p.is_dir()]
    assert len(runs) == 6
    for run in runs:
        assert json.loads((run / "status.json").read_text())["state"] == "done"
        assert (run / "ckpt" / "latest.pt").is_file()
        assert list((run / "samples").glob("step-*.png"))
        names = {json.loads(line)["name"] for line in (run / "metrics.jsonl").read_text().splitlines()}
        assert {"loss_d", "loss_g", "d_real", "d_fake"} <= names

    code, _, err = bench_cli("run", grid)
    assert code == 0 and "6 finished, failed or damaged, 0 to train" in err

    code, out, _ = bench_cli("list", grid)
    assert code == 0 and out.count(" done ") == 6
    code, out, _ = bench_cli("status", "smoke")
    assert code == 0 and out.count(" done ") == 6


def test_sample_writes_npz(bench_cli, write_grid, tmp_path):
    code, _, err = bench_cli("run", str(write_grid({**tiny_grid(), "grid": {"dataset": ["ring8", "digits"]},
                                                     "base": {**tiny_grid()["base"], "image_size": 8}})))
    assert code == 0, err
    for run in (tmp_path / "results" / "tiny").iterdir():
        if not run.is_dir():
            continue
        out = tmp_path / f"{run.name}.npz"
        code, _, err = bench_cli("sample", str(run), "--n", "12", "--out", str(out))
        assert code == 0, err
        arrays = np.load(out)
        samples = arrays["samples"]
        assert samples.shape[0] == 12 and samples.dtype == np.float32
        if samples.ndim == 4:  # images in the data's own [0, 1] range
            assert samples.shape[1:] == (3, 8, 8) and 0.0 <= samples.min() and samples.max() <= 1.0
        else:
            assert samples.shape == (12, 2)
        code, _, err = bench_cli("sample", str(run), "--n", "4", "--out", str(out), "--class", "3")
        assert code == 2 and "unconditional" in err


def test_sample_bad_inputs(bench_cli, tmp_path):
    code, _, err = bench_cli("sample", str(tmp_path), "--out", "x.npz")
    assert code == 2 and "is not a run folder" in err


def test_corrupt_checkpoint_is_one_line_and_kept(bench_cli, write_grid, tmp_path):
    grid = write_grid(tiny_grid())
    assert bench_cli("run", str(grid))[0] == 0
    (run,) = [p for p in (tmp_path / "results" / "tiny").iterdir() if p.is_dir()]
    ckpt = run / "ckpt" / "latest.pt"
    ckpt.write_bytes(b"not a checkpoint")
    code, _, err = bench_cli("sample", str(run), "--out", "x.npz")
    assert code == 2 and "is unreadable" in err and "delete the run folder to retrain that run" in err
    assert ckpt.read_bytes() == b"not a checkpoint"  # nothing on disk is touched


def test_failed_run_is_recorded_the_grid_goes_on_and_the_exit_code_says_so(bench_cli, write_grid, tmp_path,
                                                                            monkeypatch):
    from variants.mlp_gan import MLPGAN

    grid = write_grid({**tiny_grid(), "grid": {"lr_d": [2e-4, 1e-3]}})

    def broken(self, G, D, batch, z):
        if self.config.lr_d == 1e-3:
            raise RuntimeError("out of memory (simulated)")
        return original(self, G, D, batch, z)

    original = MLPGAN.d_loss
    monkeypatch.setattr(MLPGAN, "d_loss", broken)
    code, _, err = bench_cli("run", str(grid))
    assert code == 1
    assert "1 done, 1 failed" in err and "RuntimeError: out of memory (simulated)" in err
    assert "--retry-failed" in err.splitlines()[-1]
    states = sorted(json.loads(p.read_text())["state"] for p in (tmp_path / "results" / "tiny").glob("*/status.json"))
    assert states == ["done", "failed"]

    code, _, err = bench_cli("run", str(grid))  # nothing to train, the failure still stands
    assert code == 1 and "0 to train" in err
    monkeypatch.setattr(MLPGAN, "d_loss", original)
    code, _, err = bench_cli("run", str(grid), "--retry-failed")
    assert code == 0 and "1 to train" in err and "1 done" in err
