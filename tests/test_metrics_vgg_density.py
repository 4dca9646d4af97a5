"""Density and coverage on natural images in VGG16 fc2_relu space, through the library's own VGG16
extractor with a locally made stand-in: a tiny net shaped like torchvision's VGG (features, then a
seven-module classifier the extractor cuts after fc2), saved as a state dict and loaded from that path
the way a real vgg16-397923af.pth would be. The numbers mean nothing; every step a real file takes runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from bench.metrics import fidelity
from bench.metrics.context import metrics_cache
from bench.metrics.suite import FINAL, run_protocol
from test_metrics_fidelity import make_folder, natural_ctx


class TinyVGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 16), nn.ReLU(),
                                        nn.Dropout(), nn.Linear(16, 10))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@pytest.fixture
def stand_in_vgg(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.models, "vgg16", lambda *a, **k: TinyVGG())
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TinyVGG()
    path = tmp_path / "stand-in-vgg16.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("folder"), 12)


def test_density_coverage_on_vgg16_features_records_its_protocol(folder, stand_in_vgg):
    ctx = natural_ctx(folder, "dcgan", fidelity.Weights(vgg16=str(stand_in_vgg)))
    G, _ = ctx.variant.build()
    values = {v.name: v for v in run_protocol(ctx, G, FINAL, names=["density_coverage"], n=16)}
    assert set(values) == {"density", "coverage"}  # the alias picks the VGG16 metric on natural images
    assert values["density"].value >= 0 and 0 <= values["coverage"].value <= 1
    assert values["coverage"].label == "coverage@16/all/vgg16" and values["density"].higher_is_better
    params = values["density"].params
    st = stand_in_vgg.stat()
    assert params["extractor"] == f"vgg16@{fidelity.file_sha256(str(stand_in_vgg), st.st_size, st.st_mtime_ns)[:12]}"
    assert params["extractor_layer"] == "fc2_relu" and params["k"] == 5
    assert params["n_gen"] == params["n_ref"] == 16  # equal sides: 16 generated against 16 of the 24 reals
    cached = list((metrics_cache() / "fidelity").glob("*-fc2_relu-m16-*.pt"))
    assert len(cached) == 1 and ctx.ref_fingerprint[:16] in cached[0].name  # the real side is computed once
    again = {v.name: v.value for v in run_protocol(ctx, G, FINAL, names=["vgg_density_coverage"], n=16)}
    assert again == {k: v.value for k, v in values.items()}


def test_vgg_features_are_the_stand_in_fc2_relu(folder, stand_in_vgg):
    ctx = natural_ctx(folder, "dcgan", fidelity.Weights())
    images = ctx.reference[0][:5]
    feats = fidelity.vgg_features(images, stand_in_vgg, torch.device("cpu"))
    assert feats.shape == (5, 16) and (feats >= 0).all()
    assert torch.allclose(fidelity.vgg_features(images[:2], stand_in_vgg, torch.device("cpu")), feats[:2], atol=1e-5)


def test_without_vgg16_weights_density_coverage_is_skipped_with_the_one_line_reason(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for name in (fidelity.INCEPTION_ENV, fidelity.VGG16_ENV, fidelity.DOWNLOAD_ENV):
        monkeypatch.delenv(name, raising=False)
    ctx = natural_ctx(folder, "dcgan", fidelity.Weights.from_env())
    G, _ = ctx.variant.build()
    values = {v.name: v for v in run_protocol(ctx, G, FINAL, n=16) if v.label.endswith("/vgg16")}
    assert np.isnan(values["coverage"].value)
    assert values["coverage"].params["skipped"].startswith("VGG16 weights not found: ")
