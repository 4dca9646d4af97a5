"""Every registered variant, with every trick its options allow, trains in the shared loop.

The case list is built from the registry, so registering a new variant adds its cases here with no
edit: a variant is paired with each built-in dataset whose kind it declares, and with each trick
whose keys its Config has.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from bench.train import loop

from bench import registry
from bench.config.schema import Incompatible, resolve
from bench.datasets.core import DataSpec
from bench.errors import BenchError
from bench.store.runs import RunDir

DATASETS = ("ring8", "digits")
STEPS, BATCH = 20, 8
TRICKS = {
    "plain": {},
    "one_sided": {"real_label": 0.9},
    "soft_noisy": {"real_range": [0.7, 1.2], "fake_range": [0.0, 0.3], "flip_p": 0.05},
    "g_twice": {"g_steps": 2},
    "minimax": {"g_objective": "minimax"},
    "orthogonal": {"orthogonal_gain": 1.4},
}


def train_tiny(tmp_path, **keys) -> tuple[RunDir, str]:
    """Train one run of STEPS steps at 8 px on the CPU; returns its folder and final state."""
    config = resolve({"steps": STEPS, "batch_size": BATCH, "image_size": 8, "log_every": 10,
                      "ckpt_every": STEPS, "device": "cpu", "eval_every": -1, **keys})
    run = RunDir(tmp_path, "t", config.run_id)
    run.write_config(config.flat())
    return run, loop.train(run, config)


def cases():
    for name in registry.variants.names():
        variant = registry.variants.get(name)
        fields = {f.name for f in dataclasses.fields(variant.Config)}
        for dataset in DATASETS:
            if registry.datasets.get(dataset).kind not in variant.data_kinds:
                continue
            for trick, keys in TRICKS.items():
                if set(keys) <= fields:
                    yield pytest.param(name, dataset, keys, id=f"{name}-{dataset}-{trick}")


CASES = list(cases())


def test_every_variant_has_cases():
    covered = {c.values[0] for c in CASES}
    assert covered == set(registry.variants.names())
    assert {"mlp_gan", "dcgan", "wgan", "wgan_gp", "cgan"} <= covered


@pytest.mark.parametrize("variant,dataset,keys", CASES)
def test_trains_without_non_finite_loss(tmp_path, variant, dataset, keys):
    run, state = train_tiny(tmp_path, variant=variant, dataset=dataset, seed=1, **keys)
    assert state == "done"
    assert run.status()["state"] == "done"
    records = run.read_metrics()
    losses = [r for r in records if r["name"] in ("loss_d", "loss_g")]
    assert [r["step"] for r in losses if r["name"] == "loss_d"] == [10, 20]
    assert all(isinstance(r["value"], (int, float)) and math.isfinite(r["value"]) for r in records)
    config = run.read_config()
    seen = [r["value"] for r in records if r["name"] == "real_images_seen" and r["step"] == STEPS]
    assert seen == [STEPS * BATCH * config["d_steps"]]
    if variant == "wgan_gp":
        assert any(r["name"] == "gp" for r in records)
    assert (run.samples_dir / f"step-{STEPS:07d}.png").is_file()


def test_image_variant_on_points_is_incompatible():
    with pytest.raises(Incompatible, match="'cgan' needs images"):
        resolve({"variant": "cgan", "dataset": "ring8"})


def test_cgan_on_unlabelled_images_names_the_fix():
    variant_cls = registry.variants.get("cgan")
    variant = variant_cls(variant_cls.Config(), DataSpec(shape=(3, 8, 8), num_classes=0))
    with pytest.raises(BenchError, match="needs a labelled dataset"):
        variant.build()


@pytest.mark.parametrize("keys, fix", [({"dataset": "anime"}, "with classes"),
                                       ({"dataset": "cartoonset"}, "set data.attribute")])
def test_conditional_variant_on_data_without_labels_is_skipped_before_training(keys, fix):
    """Known from the options alone, so a grid (and --dry-run) skips it instead of a run failing at build."""
    with pytest.raises(Incompatible, match=f"'cgan' needs class labels.*{fix}"):
        resolve({"variant": "cgan", **keys})
    resolve({"variant": "dcgan", **keys})  # the unconditional variant is fine on the same data
    resolve({"variant": "cgan", "dataset": "cartoonset", "data.attribute": "hair_color"})


def test_shared_option_names():
    """Same meaning, same name: every variant takes the GANConfig keys; nets share width/hidden."""
    for name in registry.variants.names():
        fields = {f.name for f in dataclasses.fields(registry.variants.get(name).Config)}
        assert {"z_dim", "lr_g", "lr_d", "betas", "d_steps", "g_steps"} <= fields, name
    wgan = {f.name: f.default for f in dataclasses.fields(registry.variants.get("wgan").Config)}
    dcgan = {f.name: f.default for f in dataclasses.fields(registry.variants.get("dcgan").Config)}
    mlp = {f.name: f.default for f in dataclasses.fields(registry.variants.get("mlp_gan").Config)}
    assert wgan["width"] == dcgan["width"]
    assert (wgan["hidden_g"], wgan["hidden_d"]) == (mlp["hidden_g"], mlp["hidden_d"])
