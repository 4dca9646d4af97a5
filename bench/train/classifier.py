"""The stacked-MNIST judge's fit: training code, so it lives in bench/train/ with the loop (the only
home of backward()). It imports nothing from bench, so the metrics that need a fitted judge import it
directly (tests/test_imports.py places it below bench/metrics/)."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn


def fit_classifier(build: Callable[[], nn.Module], x: Tensor, y: Tensor, steps: int, batch: int, lr: float, seed: int,
                   augment: Optional[Callable[[Tensor, torch.Generator], Tensor]] = None) -> nn.Module:
    """Fit a classifier by cross-entropy with Adam and a one-cycle rate schedule, on the CPU, from a
    fixed seed: the stacked-MNIST judge (bench/metrics/cnn_judge.py). `augment(batch, generator)`
    perturbs each batch (the judge's small random affine maps, which let it generalise from 3,500
    digits). The net is built after the seed is set, so its initial weights are the seed's too."""
    torch.manual_seed(seed)
    net = build()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)  # the schedule sets the rate of every step
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        xb = x[idx] if augment is None else augment(x[idx], g)
        loss = nn.functional.cross_entropy(net(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    return net.eval()
