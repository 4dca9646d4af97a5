"""The conditional GAN: shapes and conditioning paths, and a short run whose samples have the asked class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.train import loop

from bench import registry
from bench.config.schema import resolve
from bench.datasets.core import DataSpec
from bench.store.runs import RunDir
from variants.nets import ConcatDiscriminator, ProjectionDiscriminator


def make(spec: DataSpec, **options):
    cls = registry.variants.get("cgan")
    return cls(cls.Config(**options), spec)


@pytest.mark.parametrize("classes,size", [(10, 16), (120, 32)])
def test_shapes_and_class_count_from_the_spec(classes, size):
    torch.manual_seed(0)
    v = make(DataSpec(shape=(3, size, size), num_classes=classes), width=8, embed_dim=12)
    G, D = v.build()
    assert G.embed.num_embeddings == classes and G.embed.embedding_dim == 12
    assert D.embed.num_embeddings == classes
    z, y = v.sample_z(5, torch.device("cpu")), torch.tensor([0, 1, 2, 3, classes - 1])
    G.eval(), D.eval()
    x = v.generate(G, z, y)
    assert x.shape == (5, 3, size, size) and x.abs().max() <= 1
    assert v.discriminate(D, x, y).shape == (5,)
    # The same z with another class gives another image: the embedding reaches G's output.
    other = v.generate(G, z, (y + 1) % classes)
    assert (other - x).abs().amax(dim=(1, 2, 3)).min() > 1e-4


def test_projection_term_is_the_class_embedding_dotted_with_the_features():
    torch.manual_seed(0)
    v = make(DataSpec(shape=(3, 16, 16), num_classes=10), width=8)
    _, D = v.build()
    assert isinstance(D, ProjectionDiscriminator) and v.config.d_cond == "projection"
    D.eval()
    x = torch.randn(4, 3, 16, 16)
    y0, y1 = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 5, 9, 0])
    phi = D.base.features(x).flatten(1)
    diff = D(x, y0) - D(x, y1)
    expected = ((D.embed.weight[y0] - D.embed.weight[y1]) * phi).sum(1)
    assert torch.allclose(diff, expected, atol=1e-5)
    with torch.no_grad():
        D.embed.weight.zero_()  # no class term left: the unconditional DCGAN critic
    assert torch.allclose(D(x, y0), D.base(x), atol=1e-6)


def test_concat_path_feeds_class_maps_as_input_channels():
    torch.manual_seed(0)
    v = make(DataSpec(shape=(3, 16, 16), num_classes=10), width=8, embed_dim=6, d_cond="concat")
    _, D = v.build()
    assert isinstance(D, ConcatDiscriminator)
    first_conv = next(m for m in D.base.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 3 + 6
    D.eval()
    x = torch.randn(3, 3, 16, 16)
    assert not torch.allclose(D(x, torch.tensor([0, 1, 2])), D(x, torch.tensor([7, 8, 9])))


def test_conditioning_choices_are_recorded_in_the_run_config():
    flat = resolve({"variant": "cgan", "dataset": "digits", "d_cond": "concat"}).flat()
    assert (flat["g_cond"], flat["d_cond"]) == ("embed-concat", "concat")
    assert {"real_label", "real_range", "flip_p"} <= set(flat)  # BCE label tricks apply


def test_samples_have_the_requested_class(tmp_path, bench_cli):
    """300 steps on 8 px digits, then a logistic-regression judge trained on the real digits reads
    100 samples per requested class. Chance is 0.1; seed 0 measured 0.99 when this was written."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from bench.datasets.builtin import load_digit_pool

    config = resolve({"variant": "cgan", "dataset": "digits", "image_size": 8, "width": 16, "steps": 300,
                      "batch_size": 64, "log_every": 100, "ckpt_every": 300, "device": "cpu", "seed": 0,
                      "eval_every": -1})
    run = RunDir(tmp_path / "results", "cgan", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"

    pixels, labels = load_digit_pool()
    features = pixels.reshape(len(pixels), -1) / 255.0  # the run's own 8 px images, in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(features, labels, test_size=0.3, random_state=0)
    judge = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    assert judge.score(x_test, y_test) > 0.9  # the judge itself reads real digits

    per_class = []
    for k in range(10):
        out = tmp_path / f"class{k}.npz"
        code, _, err = bench_cli("sample", str(run.path), "--class", str(k), "--n", "100", "--out", str(out))
        assert code == 0, err
        saved = np.load(out)
        assert saved["samples"].shape == (100, 3, 8, 8)
        assert (saved["labels"] == k).all()
        per_class.append((judge.predict(saved["samples"][:, 0].reshape(100, -1)) == k).mean())
    accuracy = float(np.mean(per_class))
    assert accuracy > 0.5, per_class
    assert sum(a > 0.3 for a in per_class) >= 7, per_class

    code, _, err = bench_cli("sample", str(run.path), "--class", "10", "--out", str(tmp_path / "bad.npz"))
    assert code == 2 and "classes 0..9" in err and "Traceback" not in err
