"""Offline stand-ins: stacked digits carry the right mode labels; shapes are deterministic with K classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench import registry
from bench.datasets.builtin import load_digit_pool
from bench.datasets.synthetic import MAX_CLASSES, class_design

CPU = torch.device("cpu")


def load(name: str, size: int, **options):
    cls = registry.datasets.get(name)
    return cls.load(cls.Options(**options), size, CPU)


def test_stacked_digits_channels_are_pool_digits_and_labels_are_their_triple():
    pool, digits = load_digit_pool()
    data = load("stacked_digits", 8, count=3000, seed=1)
    assert data.images.shape == (3000, 3, 8, 8) and data.spec.num_classes == 1000
    # Recover each channel's pool image by exact match, then rebuild the label from its digit.
    flat_pool = pool.reshape(len(pool), -1)
    for i in range(0, 3000, 97):
        triple = []
        for c in range(3):
            matches = np.flatnonzero((flat_pool == data.images[i, c].numpy().ravel()).all(axis=1))
            assert len(matches) >= 1
            assert len(set(digits[matches])) == 1  # identical images never carry two digit labels
            triple.append(int(digits[matches[0]]))
        assert data.labels[i].item() == 100 * triple[0] + 10 * triple[1] + triple[2]
    # 3,000 uniform draws of 1,000 roughly equiprobable modes cover most of them.
    assert 900 < data.info["modes_present"] <= 1000


def test_stacked_digits_is_deterministic_from_its_seed_at_any_size():
    a, b = load("stacked_digits", 32, count=500, seed=7), load("stacked_digits", 32, count=500, seed=7)
    c = load("stacked_digits", 32, count=500, seed=8)
    assert torch.equal(a.images, b.images) and a.info["fingerprint"] == b.info["fingerprint"]
    assert not torch.equal(a.labels, c.labels) and a.info["fingerprint"] != c.info["fingerprint"]
    small = load("stacked_digits", 8, count=500, seed=7)
    assert torch.equal(a.labels, small.labels)
    # Nearest-neighbour upsampling by 4 repeats each 8x8 pixel in a 4x4 block.
    assert torch.equal(a.images, small.images.repeat_interleave(4, 2).repeat_interleave(4, 3))
    assert load("stacked_digits", 32, count=500, seed=7, resize="bicubic").info["fingerprint"] != a.info["fingerprint"]


def test_shapes_has_the_requested_classes_and_is_deterministic():
    a = load("shapes", 16, classes=120, per_class=2, seed=3)
    b = load("shapes", 16, classes=120, per_class=2, seed=3)
    c = load("shapes", 16, classes=120, per_class=2, seed=4)
    assert a.spec.num_classes == 120 and len(set(a.spec.class_names)) == 120
    assert a.labels.bincount().tolist() == [2] * 120
    assert torch.equal(a.images, b.images) and a.info["fingerprint"] == b.info["fingerprint"]
    assert not torch.equal(a.images, c.images)
    # Images are all different (random placement and backgrounds), not copies per class.
    assert len({bytes(x.numpy()) for x in a.images}) == 240


@pytest.mark.parametrize("classes", [1, 8, 120, MAX_CLASSES])
def test_shape_classes_are_distinct_designs(classes):
    designs = [class_design(k, classes) for k in range(classes)]
    assert len(set(designs)) == classes


def test_shape_hue_carries_the_class():
    """The shape's colour is the class hue: mean colour of two classes of one shape differs."""
    data = load("shapes", 32, classes=16, per_class=6, seed=0)
    centre = data.images[:, :, 12:20, 12:20].float().mean(dim=(2, 3))  # shapes always cover the centre
    red_circle, cyan_circle = centre[data.labels == 0].mean(0), centre[data.labels == 8].mean(0)
    assert class_design(0, 16)[0] == class_design(8, 16)[0] == "circle"
    assert red_circle[0] > red_circle[2] + 80 and cyan_circle[2] > cyan_circle[0] + 80


def test_a_conditional_run_trains_on_120_shape_classes(tmp_path, bench_cli, write_grid):
    """The 120-breed path (class count from the dataset) works with no Stanford Dogs on disk."""
    import json

    grid = write_grid({"name": "breeds", "base": {
        "variant": "cgan", "dataset": "shapes", "image_size": 8, "steps": 2, "batch_size": 8, "log_every": 1,
        "ckpt_every": 2, "cgan": {"width": 8}, "data": {"classes": 120, "per_class": 1}}})
    code, _, err = bench_cli("run", str(grid))
    assert code == 0, err
    (status,) = (tmp_path / "results" / "breeds").glob("*/status.json")
    status = json.loads(status.read_text())
    assert status["state"] == "done", status
    assert status["data"]["classes"] == 120 and status["data"]["images"] == 120
