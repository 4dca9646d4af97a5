"""The memorization metric on planted copies: a generator that returns training images scores as
memorizing, a fresh draw from the same distribution does not (features of the offline domain
extractor; no download)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench import registry
from bench.config.schema import resolve
from bench.datasets.builtin import digit_images, load_digit_pool
from bench.datasets.core import ImageData
from bench.metrics import memorization
from bench.metrics.context import EvalContext
from bench.metrics.families import memorization as family
from bench.metrics.suite import FINAL, run_protocol

SIZE, TRAIN = 16, 1200  # of the 1,797 scikit-learn digits: 1,200 train, 300 held out, the rest a fresh draw


# ------------------------------------------------------------------ the math on vectors

def clusters(n: int, seed: int) -> torch.Tensor:
    """Non-negative features around 10 centres, like post-ReLU features of 10 classes."""
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(10, 32, generator=g) * 3
    g.manual_seed(seed)
    return (centres[torch.randint(10, (n,), generator=g)] + torch.randn(n, 32, generator=g)).clamp_min(0)


def test_nearest_finds_the_copied_index_at_distance_zero():
    train = clusters(500, 1)
    d, index = memorization.nearest(train[[7, 3, 400]] * 2.5, train, chunk=2)  # cosine ignores scale
    assert index.tolist() == [7, 3, 400] and d.max().item() < 1e-12
    d, _ = memorization.nearest(-train[:4], train)  # 1 - |cos|: a flipped sign is the same direction
    assert d.max().item() < 1e-12


def test_copies_are_penalised_and_fresh_draws_are_not():
    train, held, fresh = clusters(1000, 1), clusters(400, 2), clusters(400, 3)
    copies = train[torch.randperm(1000, generator=torch.Generator().manual_seed(4))[:400]]
    d_held, d_fresh, d_copy = (memorization.nearest(x, train)[0] for x in (held, fresh, copies))
    assert d_copy.mean() < 1e-9 < memorization.MIFID_EPS <= d_fresh.mean()
    assert memorization.mifid_penalty(float(d_fresh.mean())) == 1.0
    assert memorization.mifid(5.0, float(d_fresh.mean())) == 5.0  # far enough: MiFID is FID
    assert memorization.mifid(5.0, 0.05) == pytest.approx(100.0)  # FID / d below eps
    assert memorization.copy_share(d_copy, d_held) == pytest.approx(1.0, abs=1e-6)
    assert memorization.copy_share(d_fresh, d_held) == pytest.approx(0.5, abs=0.06)


def test_copy_share_is_the_mann_whitney_probability_with_ties_half():
    fake, held = torch.tensor([0.1, 0.3, 0.5]), torch.tensor([0.2, 0.3, 0.4, 0.6])
    pairs = [(1.0 if f < h else 0.5 if f == h else 0.0) for f in fake.tolist() for h in held.tolist()]
    assert memorization.copy_share(fake, held) == pytest.approx(sum(pairs) / len(pairs))
    assert memorization.copy_share(held + 1, held) == 0.0  # everything farther than held-out: no copying


def test_the_pairs_picture_puts_the_closest_sample_first_above_its_neighbour():
    fake = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 3, 2, 2) * 50
    train = torch.full((5, 3, 2, 2), 200, dtype=torch.uint8)
    train[4] = 99
    grid = memorization.pairs_picture(fake, train, torch.tensor([0.3, 0.0, 0.2]), torch.tensor([0, 4, 1]), k=2)
    assert grid.dtype == torch.uint8 and grid.shape == (3, 1 + 2 * 3, 1 + 2 * 3)
    assert grid[0, 1, 1] == 50 and grid[0, 4, 1] == 99  # sample 1 (distance 0) over training image 4
    assert grid[0, 1, 4] == 100 and grid[0, 4, 4] == 200


# ------------------------------------------------------------------ the registered metric, end to end

class Replay(nn.Module):
    """A 'generator' that ignores z and replays a fixed image pool in [-1, 1], the i-th latent of a
    batch picking an image from the latent's own value (so batches differ)."""

    def __init__(self, pool: torch.Tensor):
        super().__init__()
        self.register_buffer("pool", pool.float() / 127.5 - 1)

    def forward(self, z):
        return self.pool[(z[:, 0].abs() * 1e4).long() % len(self.pool)]


@pytest.fixture(scope="module")
def planted(bench_cache):
    """A run trained on 1,200 digits, held-out digits behind `held_out`, and the unused rest."""
    pixels, labels = load_digit_pool()
    images, spec = digit_images(pixels, SIZE)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))  # the pool is sorted by writer
    images, labels = images[order], labels[order.numpy()]
    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": SIZE, "dcgan.width": 8, "device": "cpu"})
    info = {"name": "digits", "split": "train", "fingerprint": "planted-train-1200", "ref_fingerprint": "planted"}
    data = ImageData(images[:TRAIN], torch.from_numpy(labels[:TRAIN]), spec, info, torch.device("cpu"))
    variant = registry.variants.get("dcgan")(config.options, spec)
    ctx = EvalContext(config, data, variant, torch.device("cpu"))
    return ctx, images[:TRAIN], images[TRAIN:TRAIN + 300], images[TRAIN + 300:]


def scores(ctx, G, held, monkeypatch) -> dict:
    monkeypatch.setattr(family, "has_held_out", lambda ctx: True)
    monkeypatch.setattr(family, "held_out", lambda ctx: (held.expand(-1, 3, -1, -1), "planted held-out digits"))
    values = run_protocol(ctx, G, FINAL, names=["memorization"], n=400)
    assert all(v.params["n_gen"] == 400 and v.params["n_held_out"] == 300 for v in values)
    return {v.name: v.value for v in values}


def test_a_copier_scores_as_memorizing_and_a_fresh_draw_does_not(planted, monkeypatch):
    ctx, train, held, rest = planted
    copier, fresh = scores(ctx, Replay(train), held, monkeypatch), scores(ctx, Replay(rest), held, monkeypatch)
    assert copier["mem_distance"] < 1e-6 and copier["copy_share"] > 0.99
    assert fresh["mem_distance"] == pytest.approx(fresh["mem_distance_real"], rel=0.2)
    assert abs(fresh["copy_share"] - 0.5) < 0.08 and abs(fresh["copy_share_real"] - 0.5) < 0.08
    # FD ranks the copier first; MiFID ranks it last. In this 128-d space unseen digits also sit
    # closer than eps = 0.1 (tuned on Inception), so the fresh draw pays a penalty too, a smaller one.
    assert copier["mifid_fd"] < fresh["mifid_fd"] and copier["mifid"] > 1000 * fresh["mifid"]
    assert fresh["mifid"] == pytest.approx(fresh["mifid_fd"] / fresh["mifid_penalty"])


def test_without_a_held_out_split_the_copy_test_is_left_out_with_its_reason(planted):
    ctx, train, _, _ = planted
    values = {v.name: v for v in run_protocol(ctx, Replay(train), FINAL, names=["memorization"], n=200)}
    assert set(values) == {"mem_distance", "mifid_penalty", "mifid_fd", "mifid"}
    assert values["mem_distance"].value < 1e-6 and "data.split: train" in values["mifid"].params["held_out"]


def test_natural_images_without_inception_weights_fail_in_one_line(tmp_path, monkeypatch):
    from bench.metrics import fidelity

    monkeypatch.setattr(fidelity, "hub_checkpoints", lambda: tmp_path)
    ctx = type("Ctx", (), {"family": "natural", "weights": fidelity.Weights(), "ref_split": "train"})()
    with pytest.raises(fidelity.MissingWeights, match="Inception weights not found") as info:
        family.Space(ctx)
    assert "\n" not in str(info.value)


def test_bench_eval_writes_the_values_and_the_pairs_picture(tmp_path, bench_cache):
    from PIL import Image

    from bench.metrics.fidelity import Weights
    from bench.store.runs import RunDir
    from bench.study.eval_command import evaluate_run
    from bench.train import loop

    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": SIZE, "dcgan.width": 8, "steps": 4,
                      "batch_size": 8, "log_every": 2, "ckpt_every": 4, "eval_every": -1, "device": "cpu",
                      "spectral_norm_d": True})
    run = RunDir(tmp_path, "g", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    records, _ = evaluate_run(run.path, ["memorization"], 200, "final", "cpu", Weights())
    assert {r["name"] for r in records} == {"mem_distance", "mifid_penalty", "mifid_fd", "mifid"}
    assert all(r["protocol"]["distance"] == "1 - |cos|" and r["protocol"]["mifid_eps"] == 0.1 for r in records)
    picture = Image.open(run.path / "memorization" / "pairs.png")
    assert picture.size == (1 + 16 * (SIZE + 1), 1 + 2 * (SIZE + 1))
