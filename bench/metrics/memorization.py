"""Memorization: how close generated samples sit to the training set, in a feature space.

Pure functions, features in and numbers out, so the tests pin them on planted copies:
- `nearest`: per generated sample the minimum cosine distance to the training features, and which
  training sample it is. Distance is 1 - |cos|, the convention of the Kaggle "Generative Dog Images"
  MiFID and of torchmetrics' implementation.
- `mifid`: MiFID (Bai et al. 2021) = FID / penalty, the penalty being the mean minimum distance when
  it is below eps (0.1, torchmetrics' default) and 1 otherwise, so only a set that sits closer to the
  training set than eps on average is penalised.
- `copy_share`: in the spirit of Meehan et al. 2020's data-copying test C_T, the probability that a
  generated sample lies closer to the training set than a held-out real sample does (the
  Mann-Whitney statistic of the two distance samples, ties counted half). Samples from the data
  distribution score 0.5, the real-vs-real ceiling; copies push it to 1, samples far from every
  training image push it below 0.5.

torchmetrics ships MiFID, but its class extracts features itself and returns only the thresholded
mean; the per-sample distances, nearest indices and the copy test need the steps it keeps private.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIFID_EPS = 0.1


def nearest(fake: torch.Tensor, train: torch.Tensor, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(minimum cosine distance 1 - |cos| to any training feature, its index), per generated sample."""
    t = F.normalize(train.double(), dim=1)
    dists, index = [], []
    for part in F.normalize(fake.double(), dim=1).split(chunk):
        d = 1 - (part @ t.T).abs()
        best = d.min(dim=1)
        dists.append(best.values)
        index.append(best.indices)
    return torch.cat(dists).clamp_min(0), torch.cat(index)


def mifid_penalty(mean_distance: float, eps: float = MIFID_EPS) -> float:
    return mean_distance if mean_distance < eps else 1.0


def mifid(fid: float, mean_distance: float, eps: float = MIFID_EPS) -> float:
    """FID divided by the memorization penalty; a set farther than eps on average keeps its FID."""
    return fid / max(mifid_penalty(mean_distance, eps), 1e-14)


def copy_share(fake_distances: torch.Tensor, held_out_distances: torch.Tensor) -> float:
    """P(a generated sample is closer to the training set than a held-out real one), ties half."""
    held = held_out_distances.double().sort().values
    d = fake_distances.double()
    below = torch.searchsorted(held, d, right=False)  # held-out distances smaller than d
    upto = torch.searchsorted(held, d, right=True)
    farther = len(held) - upto
    return float(((farther + 0.5 * (upto - below)) / len(held)).mean())


def pairs_picture(fake: torch.Tensor, train: torch.Tensor, distances: torch.Tensor, index: torch.Tensor,
                  k: int = 16) -> torch.Tensor:
    """uint8 3 x H' x W' grid: the k generated samples closest to the training set (top row, closest
    first) above their nearest training images, one pixel of grey between them."""
    from torchvision.utils import make_grid

    order = distances.argsort()[:k]
    top, bottom = fake[order], train[index[order]]
    return make_grid(torch.cat([top, bottom]), nrow=len(order), padding=1, pad_value=128)
