"""Where a run computes, how its randomness starts, and what the device actually ran: a leaf that the
loop, packs, evaluation and the commands all use, so none of them has to import another for it."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from bench.errors import BenchError


def pick_device(name: str, fix: str = "use --set device=cpu") -> torch.device:
    """auto | cpu | cuda | cuda:N; asking for CUDA where there is none is the user's to fix, and `fix`
    says how in the words of the command that asked (an option of that command)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchError(f"device {name!r} is not a device name (cpu, cuda, cuda:N, auto); {fix}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device {name!r} asked for but CUDA is not available; {fix}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BenchError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible; {fix}")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


# ---- which fast paths ran (status.json's fast_paths), read off the nets and optimizers, not the config

_PRECISION = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "off"}


def precision_ran(D: nn.Module, variant, spec, device: torch.device, amp: torch.autocast) -> str:
    """What D's convolutions and linear layers compute in under the loop's autocast: "bf16", "off"
    (float32, also where autocast is on but the layers run outside it) or "mixed (...)". One forward of
    two blank inputs in eval mode under no_grad, the RNG put back: no BN statistic, spectral-norm
    vector or random stream moves, so a run trains the same with or without this probe."""
    seen: list[torch.dtype] = []
    layers = [m for m in D.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype)) for m in layers]
    n = 2 * variant.config.pac  # whole packs
    x = torch.zeros(n, *spec.shape, device=device)
    y = torch.zeros(n, dtype=torch.long, device=device) if variant.conditional else None
    was_training = D.training
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad(), amp:
            variant.discriminate(D.eval(), x, y)
    finally:
        D.train(was_training)
        for hook in hooks:
            hook.remove()
    ran = sorted({_PRECISION.get(dtype, str(dtype).removeprefix("torch.")) for dtype in seen}) or ["off"]
    return ran[0] if len(ran) == 1 else f"mixed ({', '.join(ran)})"


def channels_last_ran(*nets: nn.Module) -> bool:
    """Whether the conv weights are stored channels_last: every 4-D parameter, and there is one. A
    pack's stacked weights are 5-D, so a pack reads False: it trains in the default format."""
    weights = [p for net in nets for p in net.parameters() if p.dim() == 4]
    return bool(weights) and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def fused_ran(*opts: torch.optim.Optimizer) -> bool:
    """Whether every optimizer was built with fused kernels (a variant's own optimizer may not be)."""
    return all(bool(opt.defaults.get("fused")) for opt in opts)
