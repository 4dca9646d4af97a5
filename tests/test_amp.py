"""bf16 autocast (loop.amp): the nets really run in bf16 inside the loop, and the losses move by no
more than bf16 rounding explains. A loose tolerance alone cannot tell amp from no amp at all: on
these tiny nets bf16 moves the logged losses by about 1e-6, far inside any bound that would be safe."""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook

from bench.train import loop
from bench.config.schema import resolve
from bench.store.runs import RunDir

LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def train(tmp_path, name: str, amp: bool) -> tuple[list[float], collections.Counter, dict]:
    """Six dcgan steps on 8x8 digits: the logged losses, and the dtypes the conv and linear layers returned
    in the training steps (grad enabled; the sample grid at the end runs without grad and without autocast)."""
    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": 8, "dcgan.width": 8, "steps": 6,
                      "batch_size": 8, "log_every": 3, "ckpt_every": 6, "eval_every": -1, "sample_every": 0,
                      "device": "cpu", "seed": 7, "channels_last": False, "amp": amp})
    run = RunDir(tmp_path / name, "s", config.run_id)
    run.write_config(config.flat())
    dtypes: collections.Counter = collections.Counter()

    def hook(module, args, out):
        if isinstance(module, LAYERS) and torch.is_grad_enabled():
            dtypes[out.dtype] += 1

    handle = register_module_forward_hook(hook)
    try:
        assert loop.train(run, config) == "done"
    finally:
        handle.remove()
    losses = [r["value"] for r in run.read_metrics() if r["name"] in ("loss_d", "loss_g")]
    return losses, dtypes, run.status()["fast_paths"]


def test_amp_runs_the_layers_in_bf16_and_moves_the_losses_by_rounding_only(tmp_path):
    plain, plain_dtypes, plain_paths = train(tmp_path, "plain", amp=False)
    fast, fast_dtypes, fast_paths = train(tmp_path, "amp", amp=True)
    assert set(plain_dtypes) == {torch.float32} and plain_paths["amp"] == "off"
    # Under autocast every conv and linear layer of G and D returns bf16 (their inputs are rounded to it).
    assert set(fast_dtypes) == {torch.bfloat16} and fast_dtypes[torch.bfloat16] == plain_dtypes[torch.float32]
    assert fast_paths["amp"] == "bf16"
    # The losses differ (so bf16 was in the arithmetic) but by bf16 rounding, not by a different result.
    assert len(plain) == len(fast) == 4
    diff = max(abs(a - b) for a, b in zip(plain, fast))
    assert diff > 0, "amp left every logged loss bit-identical: autocast did not touch the arithmetic"
    assert fast == pytest.approx(plain, rel=1e-3, abs=1e-3)
