"""Mode scores with a known truth: 2-D Gaussian mixtures (docs/protocols.md §3) and stacked digits (docs/protocols.md §4).

Pure functions of samples (and, for stacked digits, a judge's per-channel digit predictions), so
they are tested on true and collapsed samples without a generator.
"""

from __future__ import annotations

import math

import numpy as np
import torch

HQ_SIGMAS = 3.0  # a sample is high quality within three standard deviations of its centre
STACKED_MODES = 1000


def mixture_scores(points: torch.Tensor, centres: torch.Tensor, std: float) -> dict[str, float]:
    """modes_covered, hq_fraction, kl_modes and jsd_modes of N x 2 samples against the mixture.

    Each sample goes to the centre with the smallest sigma-normalised distance; a mode is covered
    by one high-quality sample (no larger threshold). KL and JSD are taken over the high-quality
    histogram and are NaN when no sample is high quality.
    """
    points = points.double().cpu()
    centres = centres.double().cpu()
    d = torch.cdist(points, centres) / std
    dmin, nearest = d.min(dim=1)
    hq = dmin < HQ_SIGMAS
    counts = torch.bincount(nearest[hq], minlength=len(centres)).numpy()
    n_hq = int(counts.sum())
    out = {"modes_covered": float((counts > 0).sum()), "hq_fraction": n_hq / max(len(points), 1)}
    if n_hq == 0:
        out["kl_modes"] = out["jsd_modes"] = math.nan
    else:
        p = counts / n_hq
        out["kl_modes"] = kl_to_uniform(p)
        out["jsd_modes"] = jsd(p, np.full(len(p), 1.0 / len(p)))
    return out


def stacked_scores(digits: torch.Tensor) -> dict[str, float]:
    """modes_covered (distinct predicted triples, no confidence threshold) and kl_modes over 1,000 bins.

    `digits` is N x 3: the judge's digit for the R, G and B channel of each generated image.
    """
    digits = digits.long().cpu()
    modes = 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
    counts = torch.bincount(modes, minlength=STACKED_MODES).double().numpy()
    return {"modes_covered": float((counts > 0).sum()), "kl_modes": kl_to_uniform(counts / counts.sum())}


def kl_to_uniform(p: np.ndarray) -> float:
    """KL(p || U) in nats, with 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] * len(p))))


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats between two histograms (each summing to 1)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return (kl(p) + kl(q)) / 2
