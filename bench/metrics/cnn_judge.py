"""The stacked-MNIST judge: a small CNN fitted on the pool's distinct digits (docs/protocols.md §4).

On MNIST digits an RBF SVC stays below the held-out accuracy the mode count needs (0.98), so
MNIST-based stacks are judged by a small CNN instead (the README's Metrics section has the measured
accuracies), fitted on 70% of the distinct digits (the same split as the SVC) under small random
affine maps. The fit is training code (bench/train/classifier.py) and runs once per data digest:
its weights are cached as tensors under <cache>/metrics/ and loaded with weights_only, so the judge
is the same in every process. Channels are resized to 32 x 32 first (`SIZE`, the stacked-MNIST
preset's size, so there they are read as trained), and every run resolution maps to the same net.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FORMAT = 1  # bump when the net or its fit changes: cached judges then miss
SIZE = 32
STEPS, BATCH, LR = 810, 128, 3e-3  # 30 epochs of 3,500 digits
ROTATE, SCALE, SHIFT = 0.5, 0.2, 0.1  # affine augmentation ranges: radians, relative scale, half-widths


def net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * (SIZE // 4) ** 2, 128), nn.ReLU(), nn.Linear(128, 10))


def affine(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each digit turned by up to ±ROTATE/2 radians, scaled by up to ±SCALE/2 and moved by up to ±SHIFT
    of the image's half-width (±1.6 px at 32 px)."""
    n = len(x)
    angle = (torch.rand(n, generator=g) - 0.5) * ROTATE
    scale = 1 + (torch.rand(n, generator=g) - 0.5) * SCALE
    move = (torch.rand(n, 2, generator=g) - 0.5) * 2 * SHIFT
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1), torch.stack([sin, cos, move[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def prepare(channels: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W -> float (N*C) x 1 x SIZE x SIZE in [0, 1], each channel a digit."""
    x = channels.float().div(255).reshape(-1, 1, *channels.shape[2:])
    if x.shape[-1] != SIZE:
        x = F.interpolate(x, size=(SIZE, SIZE), mode="area" if x.shape[-1] > SIZE else "bilinear")
    return x


class CNNJudge:
    """Same interface as extractors.DigitJudge: heldout_accuracy, check(), predict(), record()."""

    def __init__(self, weights: dict, digest: str):
        self.net = net()
        self.net.load_state_dict(weights["state"])
        self.net.eval()
        self.heldout_accuracy = float(weights["heldout_accuracy"])
        self.digest = digest

    @classmethod
    def load_or_fit(cls, path: Path, channels: torch.Tensor, digits: torch.Tensor, seed: int) -> "CNNJudge":
        """The cached judge, or one fitted now and cached."""
        from bench.metrics.extractors import holdout_split
        from bench.store.runs import write_atomic
        from bench.train.classifier import fit_classifier

        if path.is_file():
            try:
                weights = torch.load(path, map_location="cpu", weights_only=True)
                if weights.get("format") == FORMAT:
                    return cls(weights, hashlib.sha256(path.read_bytes()).hexdigest())
            except Exception:  # noqa: BLE001 - a damaged cache file is refitted, not trusted
                pass
        x, y = prepare(channels), digits.reshape(-1).long()
        train, test = (torch.from_numpy(i) for i in holdout_split(y.numpy(), seed))
        model = fit_classifier(net, x[train], y[train], STEPS, BATCH, LR, seed, augment=affine)
        with torch.no_grad():
            accuracy = float((model(x[test]).argmax(1) == y[test]).double().mean())
        weights = {"format": FORMAT, "state": model.state_dict(), "heldout_accuracy": accuracy,
                   "n_fit": len(train), "n_heldout": len(test), "seed": seed}
        buffer = io.BytesIO()
        torch.save(weights, buffer)
        write_atomic(path, buffer.getvalue())
        return cls(weights, hashlib.sha256(buffer.getvalue()).hexdigest())

    def check(self) -> None:
        from bench.metrics.extractors import check_judge_accuracy

        check_judge_accuracy(self.heldout_accuracy)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        """N x 3 digits of uint8 N x 3 x H x W stacks, each channel judged on its own."""
        parts = [self.net(prepare(images[s:s + batch])).argmax(1) for s in range(0, len(images), batch)]
        return torch.cat(parts).reshape(len(images), -1)

    def record(self) -> dict:
        return {"judge": f"cnn@{self.digest[:12]}", "judge_heldout_acc": round(self.heldout_accuracy, 4)}


def cache_name(channels: torch.Tensor, digits: torch.Tensor, seed: int) -> str:
    """A file name from the training data and settings: new digits or a new fit make a new judge."""
    h = hashlib.sha256(np.ascontiguousarray(channels.numpy()).tobytes() + digits.numpy().tobytes())
    h.update(f"{FORMAT}-{SIZE}-{STEPS}-{BATCH}-{LR}-{ROTATE}-{SCALE}-{SHIFT}-{seed}".encode())
    return f"stacked-judge-cnn-{h.hexdigest()[:16]}.pt"
