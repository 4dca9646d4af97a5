"""A fitted domain extractor's id is the digest of its weights' file, so the same fit must give the same
file wherever it is cached: otherwise two caches split one protocol into two report columns."""

from __future__ import annotations

import torch

from bench.datasets.builtin import load_digit_pool
from bench.metrics.extractors import load_or_fit


def test_the_same_fit_cached_in_two_places_has_one_id(tmp_path):
    pixels, labels = load_digit_pool()
    images = torch.from_numpy(pixels[:600]).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(labels[:600])
    a = load_or_fit(tmp_path / "a" / "x.pt", images, labels, "digits", False, seed=0)
    b = load_or_fit(tmp_path / "elsewhere" / "y.pt", images, labels, "digits", False, seed=0)
    assert a.sha256 == b.sha256 and a.id == b.id
    assert load_or_fit(tmp_path / "a" / "x.pt", images, labels, "digits", False, seed=0).sha256 == a.sha256
