"""The shared loop: exact resume after a kill, divergence recorded, learning measured, fast paths and
record names as they ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from bench.store import checkpoint

from bench import registry
from bench.config.schema import resolve
from bench.errors import BenchError
from bench.train.loop import record_names, train
from bench.store.runs import RunDir
from bench.study.sampling import load_generator
from bench.variant import Batch
from conftest import tiny_grid
from variants.mlp_gan import MLPGAN


def _weights(run_path: Path) -> dict:
    return torch.load(run_path / "ckpt" / "latest.pt", weights_only=True)


def _only_run(results: Path) -> Path:
    (run,) = [p for p in (results).glob("*/*") if p.is_dir()]
    return run


def test_killed_run_resumes_bit_identical(tmp_path):
    grid = tiny_grid(steps=1200, log_every=50, ckpt_every=100)
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump(grid))
    bench = [sys.executable, "-m", "bench.cli", "run", str(grid_file)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    # Uninterrupted reference.
    subprocess.run(bench + ["--results", "straight"], cwd=tmp_path, env=env, check=True, capture_output=True)

    # Start, wait for a checkpoint, kill -9 mid-run, then run the grid again.
    proc = subprocess.Popen(bench + ["--results", "killed"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    ckpt = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "killed").glob("*/*/ckpt/latest.pt"))
        if found:
            ckpt = found[0]
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt is not None, "the run never wrote a checkpoint"
    run = _only_run(tmp_path / "killed")
    killed_at = json.loads((run / "status.json").read_text())
    assert killed_at["state"] == "running" and killed_at["step"] < 1200, "kill came too late to test resume"

    subprocess.run(bench + ["--results", "killed"], cwd=tmp_path, env=env, check=True, capture_output=True)
    resumed, straight = _weights(run), _weights(_only_run(tmp_path / "straight"))
    assert resumed["step"] == straight["step"] == 1200
    for net in ("G", "D"):
        for key, value in straight[net].items():
            assert torch.equal(value, resumed[net][key]), f"{net}.{key} differs after resume"
    # The loss records are the same too: nothing logged twice, nothing lost.
    def losses(path):
        rows = RunDir.open(path).read_metrics()
        return [(r["step"], r["name"], r["value"]) for r in rows if r["name"] in ("loss_d", "loss_g")]
    assert losses(run) == losses(_only_run(tmp_path / "straight"))


class NaNAfter(MLPGAN):
    """A test variant whose D loss turns NaN from its 25th call on."""

    calls = 0
    name = "nan_after"

    def d_loss(self, G, D, batch, z):
        loss, stats = super().d_loss(G, D, batch, z)
        NaNAfter.calls += 1
        return (loss * float("nan") if NaNAfter.calls >= 25 else loss), stats


def test_nan_loss_marks_run_diverged_and_grid_goes_on(bench_cli, write_grid, tmp_path, monkeypatch):
    registry.variants.names()  # load the plugins first, so the test variant is the only addition
    monkeypatch.setitem(registry.variants._entries, "nan_after", NaNAfter)  # removed after the test
    NaNAfter.calls = 0
    grid = {**tiny_grid(steps=40), "grid": {"variant": ["nan_after", "mlp_gan"]}}
    code, _, err = bench_cli("run", str(write_grid(grid)))
    assert code == 0, err
    states = {}
    for path in (tmp_path / "results" / "tiny").iterdir():
        if path.is_dir():
            status = json.loads((path / "status.json").read_text())
            states[yaml.safe_load((path / "config.yaml").read_text())["variant"]] = status
    assert states["nan_after"]["state"] == "diverged"
    assert states["nan_after"]["step"] == 25 and "non-finite loss at step 25" in states["nan_after"]["reason"]
    assert states["mlp_gan"]["state"] == "done" and states["mlp_gan"]["step"] == 40
    # A diverged run is finished: running the grid again trains nothing.
    code, _, err = bench_cli("run", str(write_grid(grid)))
    assert "0 to train" in err


def _near_mode_fraction(variant, G, n=2000, radius=0.3) -> float:
    """Share of samples within `radius` of a centre: 0.3 is well inside the 0.77 spacing of ring8."""
    from bench.datasets.builtin import ring_centres

    z = variant.sample_z(n, torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = G.eval()(z)
    distance = torch.cdist(x, ring_centres(8, 1.0)).min(dim=1).values
    return (distance < radius).float().mean().item()


@pytest.mark.slow
def test_gan_learns_ring8(tmp_path):
    """After a few hundred steps clearly more samples lie near the 8 true modes than at init."""
    config = resolve({"variant": "mlp_gan", "dataset": "ring8", "steps": 600, "batch_size": 128,
                      "lr_g": 1e-3, "lr_d": 1e-3, "z_dim": 2, "log_every": 100, "ckpt_every": 600,
                      "seed": 0})
    run = RunDir(tmp_path / "results", "learn", config.run_id)
    run.write_config(config.flat())
    torch.manual_seed(0)
    variant = registry.variants.get("mlp_gan")(config.options, None)
    from bench.datasets.core import DataSpec
    variant.spec = DataSpec((2,))
    G0, _ = variant.build()
    before = _near_mode_fraction(variant, G0)
    assert train(run, config) == "done"
    variant, G, _, step = load_generator(run, torch.device("cpu"))
    after = _near_mode_fraction(variant, G)
    assert step == 600
    assert before < 0.05 and after > 0.4, (before, after)  # measured: 0.0 -> 0.65


def _image_variants() -> list[str]:
    return [n for n in registry.variants.names() if "images" in registry.variants.get(n).data_kinds]


@pytest.mark.parametrize("name", _image_variants())
def test_loop_step_is_plain_autograd_on_the_variants_losses(tmp_path, name):
    """Two loop steps from a checkpoint equal two textbook steps (every net's gradients computed, no
    freezing, no fast path) from the same checkpoint: the loop's shortcuts change no number."""
    def trained(steps: int) -> tuple[RunDir, object]:
        config = resolve({"variant": name, "dataset": "digits", "image_size": 8, "batch_size": 4, "steps": steps,
                          "log_every": 2, "ckpt_every": 2, "eval_every": -1, "device": "cpu", "seed": 3})
        run = RunDir(tmp_path / str(steps), "g", config.run_id)
        run.write_config(config.flat())
        assert train(run, config) == "done"
        return run, config

    start, config = trained(2)
    end, _ = trained(4)
    data = registry.datasets.get(config.dataset).load(config.data, 8, torch.device("cpu"))
    variant = registry.variants.get(name)(config.options, data.spec)
    G, D = variant.build()
    opt_g, opt_d = variant.optimizers(G, D)
    checkpoint.restore(start.checkpoint_file, torch.device("cpu"), G=G, D=D, opt_g=opt_g, opt_d=opt_d)
    B, c = 4, config.options
    for _ in range(2):
        for _ in range(c.d_steps):
            x, y = data.sample(B)
            loss, _ = variant.d_loss(G, D, Batch(x, y), variant.sample_z(B, torch.device("cpu")))
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            variant.after_d_step(D)
        for _ in range(c.g_steps):
            x, y = data.sample(B)
            loss, _ = variant.g_loss(G, D, Batch(x, y), variant.sample_z(B, torch.device("cpu")))
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
    looped = torch.load(end.checkpoint_file, weights_only=True)
    for net, key in ((G, "G"), (D, "D")):
        for tensor_name, value in net.state_dict().items():
            torch.testing.assert_close(looped[key][tensor_name], value, rtol=1e-5, atol=1e-6,
                                       msg=lambda m: f"{name} {key}.{tensor_name}: {m}")


class _Float32D(nn.Module):
    """A D whose layers run outside autocast: what a variant doing its own precision would do."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            return self.inner(x.float())


class Defiant(MLPGAN):
    """A test variant that ignores two fast-path switches: fused Adam always, D in float32 under amp."""

    name = "defiant"

    def build(self):
        G, D = super().build()
        return G, _Float32D(D)

    def optimizers(self, G, D, fused=False):
        return (torch.optim.Adam(G.parameters(), lr=1e-3, fused=True),
                torch.optim.Adam(D.parameters(), lr=1e-3, fused=True))


def _trained_status(tmp_path, variant: str, **keys) -> dict:
    config = resolve({"variant": variant, "dataset": "ring8", "steps": 2, "batch_size": 8, "log_every": 2,
                      "ckpt_every": 2, "eval_every": -1, "device": "cpu", **keys})
    run = RunDir(tmp_path / variant, "g", config.run_id)
    run.write_config(config.flat())
    assert train(run, config) == "done"
    return run.status()


def _fast_paths(tmp_path, variant: str, **keys) -> dict:
    return _trained_status(tmp_path, variant, **keys)["fast_paths"]


def test_status_records_the_thread_count_the_run_trained_with(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # what set_num_threads in a worker leaves
    assert _trained_status(tmp_path, "mlp_gan")["threads"] == 3


def test_fast_paths_record_what_ran_not_what_was_asked(tmp_path, monkeypatch):
    registry.variants.names()
    monkeypatch.setitem(registry.variants._entries, "defiant", Defiant)
    asked = {"amp": True, "fused_optim": False, "channels_last": True}
    assert _fast_paths(tmp_path, "mlp_gan", **asked) == {"amp": "bf16", "compile": "off", "fused_optim": False,
                                                          "channels_last": False}  # points: no conv weight
    assert _fast_paths(tmp_path, "defiant", **asked) == {"amp": "off", "compile": "off", "fused_optim": True,
                                                          "channels_last": False}


class SameStatName(MLPGAN):
    """A test variant whose D and G losses report a stat of the same name."""

    name = "same_stat"

    def d_loss(self, G, D, batch, z):
        loss, stats = super().d_loss(G, D, batch, z)
        return loss, {**stats, "score": loss.detach() * 0 + 1}

    def g_loss(self, G, D, batch, z):
        loss, stats = super().g_loss(G, D, batch, z)
        return loss, {**stats, "score": loss.detach() * 0 + 2}


def test_a_stat_both_phases_report_is_kept_apart(tmp_path, monkeypatch):
    registry.variants.names()
    monkeypatch.setitem(registry.variants._entries, "same_stat", SameStatName)
    config = resolve({"variant": "same_stat", "dataset": "ring8", "steps": 2, "batch_size": 8, "log_every": 2,
                      "ckpt_every": 2, "eval_every": -1, "device": "cpu"})
    run = RunDir(tmp_path, "g", config.run_id)
    run.write_config(config.flat())
    assert train(run, config) == "done"
    values = {r["name"]: r["value"] for r in run.read_metrics() if r["kind"] == "train"}
    assert values["d.score"] == 1 and values["g.score"] == 2 and "score" not in values
    assert {"loss_d", "loss_g", "d_real", "d_fake", "d_fake_g"} <= set(values)  # the other names as always


@pytest.mark.parametrize("keys,names", [
    ([("d", "loss_d"), ("d", "d_real"), ("g", "loss_g"), ("g", "d_fake_g")], ["loss_d", "d_real", "loss_g", "d_fake_g"]),
    ([("d", "loss_d"), ("d", "x"), ("g", "loss_g"), ("g", "x")], ["loss_d", "d.x", "loss_g", "g.x"]),
    ([("d", "loss_d"), ("g", "loss_g"), ("g", "loss_d")], ["d.loss_d", "loss_g", "g.loss_d"]),
])
def test_record_names(keys, names):
    assert record_names(keys) == names


def test_a_stat_named_like_its_own_loss_is_refused():
    with pytest.raises(BenchError, match="'d.loss_d'"):
        record_names([("d", "loss_d"), ("d", "loss_d"), ("g", "loss_g")])
