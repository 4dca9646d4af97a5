"""Where a run computes and how its randomness starts: a leaf that the loop, packs, evaluation and the
commands all use, so none of them has to import another for it."""

from __future__ import annotations

import random

import numpy as np
import torch

from bench.errors import BenchError


def pick_device(name: str) -> torch.device:
    """auto | cpu | cuda | cuda:N; asking for CUDA where there is none is the user's to fix."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"device {name!r} asked for but CUDA is not available; use --set device=cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
