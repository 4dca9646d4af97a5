"""Every registered dataset says which feature family its metrics use, and every one that loads here
without a download (the built-in ones) keeps the Dataset contract: the spec matches the tensors,
batches are in the training range with labels in range, evaluation draws repeat, the fingerprint is
stable, the metrics read the family it declares, and a variant of its kind trains on it. The case
list comes from the registry, so a new dataset is covered the day it is registered."""

from __future__ import annotations

import math

import pytest
import torch

from bench.train import loop

from bench import registry
from bench.config.schema import resolve
from bench.metrics.context import FEATURE_FAMILIES, EvalContext
from bench.store.runs import RunDir
from test_metrics_registry import OFFLINE, SMALL, VARIANT

CPU = torch.device("cpu")
SIZE = 8
BUILT_IN = {"ring8", "grid25", "digits", "stacked_digits", "shapes"}


def test_the_built_in_datasets_are_among_the_cases():
    assert BUILT_IN <= set(OFFLINE), OFFLINE  # the availability check must not drop what ships offline


@pytest.mark.parametrize("name", registry.datasets.names())
def test_every_dataset_declares_a_feature_family_of_its_kind(name):
    cls = registry.datasets.get(name)
    assert cls.feature_family in FEATURE_FAMILIES, (name, getattr(cls, "feature_family", None))
    assert (FEATURE_FAMILIES[cls.feature_family] == "points") == (cls.kind == "points"), name


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_dataset_keeps_the_contract_and_trains(name, tmp_path, bench_cache):
    cls = registry.datasets.get(name)
    config = resolve({"variant": VARIANT[cls.kind], "dataset": name, "image_size": SIZE, "steps": 2, "batch_size": 8,
                      "log_every": 1, "ckpt_every": 2, "eval_every": -1, "sample_every": 0, "device": "cpu",
                      "seed": 3, **SMALL.get(name, {})})
    data = cls.load(config.data, SIZE, CPU)
    spec = data.spec
    assert spec.kind == cls.kind and data.info["name"] == name and data.info["fingerprint"]
    x, y = data.sample(16)
    assert x.shape == (16, *spec.shape) and x.dtype == torch.float32 and torch.isfinite(x).all()
    if spec.kind == "images":
        assert data.images.dtype == torch.uint8 and tuple(data.images.shape[1:]) == spec.shape
        assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    if spec.num_classes:
        assert y is not None and 0 <= int(y.min()) and int(y.max()) < spec.num_classes
        assert len(spec.class_names) == spec.num_classes
    first, second = (data.reference(32, torch.Generator().manual_seed(1)) for _ in range(2))
    assert torch.equal(first[0], second[0])  # evaluation draws come from their own generator, repeatably
    assert cls.load(config.data, SIZE, CPU).info["fingerprint"] == data.info["fingerprint"]

    variant = registry.variants.get(config.variant)(config.options, spec)
    family = FEATURE_FAMILIES[cls.feature_family]
    if family == "domain" and getattr(data, "labels", None) is None:
        family = "natural"
    assert EvalContext(config, data, variant, CPU).family == family

    run = RunDir(tmp_path, "d", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    losses = [r["value"] for r in run.read_metrics() if r["name"] in ("loss_d", "loss_g")]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
