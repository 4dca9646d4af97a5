"""Packing (PacGAN, Lin et al. 2018): `pac: m` makes D judge m samples at once, all real or all fake.

D's first layer is widened by m, packs are consecutive samples of one call (so never real and fake
together), a pack of runs packs each seed's batch on its own, every unconditional variant trains
with it, and `pac: 1` leaves the run id of every earlier run as it was.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from bench import registry
from bench.config.identity import run_id
from bench.config.schema import resolve, shrink_for_smoke
from bench.datasets.core import DataSpec
from bench.errors import BenchError
from bench.store.runs import RunDir
from bench.train import loop, packed
from bench.variant import Batch

POINTS, IMAGES = DataSpec(shape=(2,)), DataSpec(shape=(3, 8, 8))


def make(name: str, spec: DataSpec, **keys):
    cls = registry.variants.get(name)
    return cls(cls.Config(**keys), spec)


def first_layer(D: nn.Module) -> nn.Module:
    return next(m for m in D.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("name,spec", [("mlp_gan", POINTS), ("mlp_gan", IMAGES), ("wgan", POINTS),
                                       ("dcgan", IMAGES), ("wgan", IMAGES), ("wgan_gp", IMAGES)])
def test_d_input_is_widened_by_m_and_scores_one_value_per_pack(name, spec, m):
    torch.manual_seed(0)
    variant = make(name, spec, pac=m)
    _, D = variant.build()
    layer = first_layer(D)
    if isinstance(layer, nn.Linear):
        assert layer.in_features == m * (2 if spec is POINTS else 3 * 8 * 8)
    else:
        assert layer.in_channels == 3 * m
    x = torch.randn(6 * m, *spec.shape)
    assert variant.discriminate(D, x).shape == (6,)


class Recorder(nn.Module):
    """A D that keeps every input it is shown and scores each one 0."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.w * x.flatten(1).sum(dim=1)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("spec", [POINTS, IMAGES], ids=["features", "channels"])
def test_packs_are_consecutive_samples_of_one_call_never_real_and_fake(spec, m):
    variant = make("mlp_gan", spec, pac=m)
    n = 4 * m
    real = torch.arange(1, n + 1, dtype=torch.float32).view(n, *[1] * len(spec.shape)).expand(n, *spec.shape)
    G = lambda z: -torch.ones(z.shape[0], *spec.shape)  # noqa: E731 - every fake is -1, every real > 0
    D = Recorder()
    variant.d_loss(G, D, Batch(real.contiguous(), None), torch.zeros(n, 2))
    shown_real, shown_fake = D.seen
    channels = spec.shape[0]
    assert shown_real.shape == (n // m, m * channels, *spec.shape[1:])
    for i, pack in enumerate(shown_real):
        # pack i holds real samples i*m .. i*m+m-1, each as one block of `channels` features/channels
        blocks = pack.reshape(m, -1)
        assert [int(b.unique().item()) for b in blocks] == list(range(i * m + 1, i * m + m + 1))
    assert torch.all(shown_fake == -1)


def test_a_pack_of_runs_never_packs_two_seeds_together():
    """Each member's loss under vmap equals the single-run loss on that member's own batch, even when
    the other member's batch is far away: a pack that took a sample of another seed would differ."""
    config = resolve({"variant": "mlp_gan", "dataset": "ring8", "pac": 2, "batch_size": 8, "device": "cpu"})
    variant = registry.variants.get("mlp_gan")(config.options, DataSpec(shape=(2,)))
    data = registry.datasets.get("ring8").load(config.data, 8, torch.device("cpu"))
    pack = packed.Pack(variant, [3, 4], data, torch.device("cpu"), mode="vmap")
    x, _ = pack.source.sample(8)
    x[1] += 1000.0  # member 1's points, nowhere near member 0's
    z = pack.model.sample_z(8, torch.device("cpu"))
    losses, _ = pack.model.d_loss(pack.G, pack.D, Batch(x, None), z)
    for k in range(2):
        G, D = pack.nets(k)
        alone, _ = variant.d_loss(G, D, Batch(x[k], None), z[k])
        torch.testing.assert_close(losses[k], alone, rtol=1e-5, atol=1e-6)


def train(tmp_path, **keys) -> str:
    config = resolve({"steps": 6, "batch_size": 12, "image_size": 8, "log_every": 3, "ckpt_every": 6,
                      "device": "cpu", "eval_every": -1, "seed": 1, **keys})
    run = RunDir(tmp_path, "t", config.run_id)
    run.write_config(config.flat())
    return loop.train(run, config)


def pac_cases():
    for name in registry.variants.names():
        variant = registry.variants.get(name)
        dataset = "ring8" if "points" in variant.data_kinds else "digits"
        yield pytest.param(name, dataset, variant.conditional, id=name)


@pytest.mark.parametrize("name,dataset,conditional", list(pac_cases()))
def test_every_unconditional_variant_trains_with_pac_2(tmp_path, name, dataset, conditional):
    keys = {"variant": name, "dataset": dataset, "pac": 2, f"{name}.width" if name != "mlp_gan" else "z_dim": 8}
    if conditional:  # one label per D input, m labels per pack: refused before anything trains
        with pytest.raises(BenchError, match=r"cannot use pac: 2 .*use pac: 1"):
            resolve(keys)
        return
    assert train(tmp_path, **keys) == "done"


def test_batch_size_must_hold_whole_packs():
    with pytest.raises(BenchError, match=r"'batch_size' \(10\) must be a multiple of 'pac' \(3\)"):
        resolve({"variant": "mlp_gan", "dataset": "ring8", "pac": 3, "batch_size": 10})
    smoke = shrink_for_smoke(resolve({"variant": "mlp_gan", "dataset": "ring8", "pac": 3, "batch_size": 99}))
    assert smoke.loop.batch_size == 15


def test_pac_1_keeps_every_earlier_run_id_and_other_values_make_new_ones():
    keys = {"variant": "dcgan", "dataset": "digits", "seed": 2}
    plain, one, two = (resolve({**keys, **extra}) for extra in ({}, {"pac": 1}, {"pac": 2}))
    assert plain.flat()["pac"] == 1
    before = {k: v for k, v in plain.flat().items() if k != "pac"}  # a config written before pac existed
    assert plain.run_id == one.run_id == run_id(before)
    assert two.run_id != one.run_id
    assert dataclasses.replace(two.options, pac=1) == one.options
