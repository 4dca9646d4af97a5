"""Sample diversity: MS-SSIM over random pairs, density/coverage, and NDB with its JSD (docs/protocols.md §5).

Written here rather than imported: no maintained package in the environment implements MS-SSIM at
the small-image settings of 5.1 (window 7, 2-4 scales with renormalised weights), `prdc` is not a
dependency and its definitions fit in a dozen lines, and NDB has no maintained package at all.
Each function is pure (tensors in, numbers out) so the tests pin it on known cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.metrics.modes import jsd

# The five standard MS-SSIM scale weights (Wang et al. 2003); small images use the first few, renormalised.
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
C1, C2 = 0.01 ** 2, 0.03 ** 2  # stabilisers for data_range = 1


@dataclass(frozen=True)
class MSSSIMSettings:
    window: int
    scales: int

    @property
    def weights(self) -> torch.Tensor:
        w = torch.tensor(MSSSIM_WEIGHTS[: self.scales])
        return w / w.sum()

    def record(self) -> dict:
        return {"msssim_win": self.window, "msssim_scales": self.scales, "msssim_sigma": 1.5, "data_range": 1.0}


def msssim_settings(size: int) -> MSSSIMSettings:
    """Window 11 and five scales only above 160 px; below, window 7 and as many scales as keep the
    coarsest image at least as large as the window (64 px: 4, 32 px: 3, 16 px: 2, 8 px: 1)."""
    if size > 160:
        return MSSSIMSettings(11, 5)
    scales = 1
    while scales < 5 and size // 2 ** scales >= 7:
        scales += 1
    return MSSSIMSettings(7, scales)


def _window(size: int, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _band(n: int, g: torch.Tensor) -> torch.Tensor:
    """n x (n - k + 1) matrix whose columns hold the window: a 'valid' 1-D filter as a matmul."""
    k = len(g)
    band = torch.zeros(n, n - k + 1)
    for j in range(n - k + 1):
        band[j:j + k, j] = g
    return band


def msssim_pairs(a: torch.Tensor, b: torch.Tensor, settings: MSSSIMSettings | None = None) -> torch.Tensor:
    """MS-SSIM of each pair (a[i], b[i]) of uint8 N x C x H x W images, mean over channels.

    The separable Gaussian filter is applied as two matrix products ('valid' borders), several
    times faster on CPU than a grouped convolution at these sizes. Contrast-structure terms below
    zero are clamped to zero before the fractional powers, the usual guard against NaN on unrelated
    images; identical pairs give exactly 1.
    """
    settings = settings or msssim_settings(a.shape[-1])
    x, y = a.float() / 255.0, b.float() / 255.0  # float32 throughout: float64 is far slower on CPU
    g = _window(settings.window)
    weights = settings.weights.to(x.device)
    out = torch.ones(x.shape[:2], device=x.device)
    for s in range(settings.scales):
        rows, cols = _band(x.shape[-2], g).to(x.device), _band(x.shape[-1], g).to(x.device)
        mu_x, mu_y, xx, yy, xy = (rows.T @ t @ cols for t in (x, y, x * x, y * y, x * y))
        var_x, var_y, cov = xx - mu_x ** 2, yy - mu_y ** 2, xy - mu_x * mu_y
        cs = (2 * cov + C2) / (var_x + var_y + C2)
        if s == settings.scales - 1:  # the coarsest scale averages the l * cs map, as the paper's code does
            lum = (2 * mu_x * mu_y + C1) / (mu_x ** 2 + mu_y ** 2 + C1)
            out = out * (lum * cs).mean(dim=(2, 3)).clamp(min=0) ** weights[s]
        else:
            out = out * cs.mean(dim=(2, 3)).clamp(min=0) ** weights[s]
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return out.mean(dim=1)


def random_pairs(n: int, pairs: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`pairs` index pairs (i, j) with i != j, drawn uniformly from n items."""
    i = torch.randint(n, (pairs,), generator=generator)
    j = (i + torch.randint(1, n, (pairs,), generator=generator)) % n  # never equal to i
    return i, j


def mean_msssim(images: torch.Tensor, pairs: int, generator: torch.Generator, batch: int = 2000,
                device: torch.device | None = None) -> float:
    """Mean MS-SSIM over random pairs of distinct images of one uint8 set (computed on `device`)."""
    i, j = random_pairs(len(images), pairs, generator)
    settings = msssim_settings(images.shape[-1])
    parts = [msssim_pairs(images[i[k:k + batch]].to(device), images[j[k:k + batch]].to(device), settings).cpu()
             for k in range(0, pairs, batch)]
    return float(torch.cat(parts).double().mean())


# ------------------------------------------------------------------ density and coverage

def _kth_neighbour_radius(real: torch.Tensor, k: int, batch: int = 4096) -> torch.Tensor:
    """Distance from each real feature to its k-th nearest other real feature (self excluded)."""
    radii = [torch.cdist(real[s:s + batch], real).kthvalue(k + 1, dim=1).values for s in range(0, len(real), batch)]
    return torch.cat(radii)


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5, batch: int = 4096) -> dict[str, float]:
    """Density and coverage of Naeem et al. 2020 with strict ball tests, as docs/protocols.md §5.2 writes them."""
    real, fake = real.float(), fake.float()
    radius = _kth_neighbour_radius(real, k, batch)
    inside_count = torch.zeros(len(fake), dtype=torch.float64)
    nearest_fake = torch.full((len(real),), math.inf, dtype=torch.float64)
    for s in range(0, len(fake), batch):
        d = torch.cdist(fake[s:s + batch], real)  # fake x real
        inside_count[s:s + batch] = (d < radius).sum(dim=1).double()
        nearest_fake = torch.minimum(nearest_fake, d.min(dim=0).values)
    density = float(inside_count.sum() / (k * len(fake)))
    coverage = float((nearest_fake < radius).double().mean())
    return {"density": density, "coverage": coverage}


# ------------------------------------------------------------------ NDB

@dataclass
class NDBBins:
    """K-means bins fitted on training images (pixel space, flattened, whitened), docs/protocols.md §5.3."""

    centres: torch.Tensor  # K x d' in whitened (and possibly subsampled) coordinates
    mean: torch.Tensor
    std: torch.Tensor
    dims: torch.Tensor  # indices of the coordinates used (all, or d // 6 of them when d > 1000)
    train_counts: torch.Tensor  # samples of the fitting set in each bin
    n_init: int

    @classmethod
    def fit(cls, images: torch.Tensor, k: int = 100, seed: int = 2020, n_init: int = 1) -> "NDBBins":
        from sklearn.cluster import KMeans

        x = images.reshape(len(images), -1).double() / 255.0
        mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-6)
        d = x.shape[1]
        dims = torch.arange(d)
        if d > 1000:  # as the reference code does: a fixed random subset of d // 6 coordinates
            dims = torch.randperm(d, generator=torch.Generator().manual_seed(seed))[: d // 6].sort().values
        z = ((x - mean) / std)[:, dims]
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z.numpy())
        centres = torch.from_numpy(km.cluster_centers_)
        counts = torch.bincount(torch.from_numpy(km.labels_).long(), minlength=k)
        return cls(centres, mean, std, dims, counts, n_init)

    def assign(self, images: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        x = images.reshape(len(images), -1).double() / 255.0
        out = []
        for s in range(0, len(x), batch):
            z = ((x[s:s + batch] - self.mean) / self.std)[:, self.dims]
            out.append(torch.cdist(z, self.centres).argmin(dim=1))
        return torch.bincount(torch.cat(out), minlength=len(self.centres))

    def score(self, images: torch.Tensor, alpha: float = 0.05) -> dict[str, float]:
        """ndb_over_k and ndb_jsd of a sample against the training bin proportions."""
        return ndb_test(self.train_counts, self.assign(images), alpha)


def ndb_test(train_counts: torch.Tensor, sample_counts: torch.Tensor, alpha: float = 0.05) -> dict[str, float]:
    """Per-bin two-sided two-proportion z-tests (pooled), no multiple-comparison correction."""
    from scipy.stats import norm

    n1, n2 = float(train_counts.sum()), float(sample_counts.sum())
    p1 = train_counts.double().numpy() / n1
    p2 = sample_counts.double().numpy() / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p1 - p2) / se, 0.0)
    p_values = 2 * norm.sf(np.abs(z))
    return {"ndb_over_k": float((p_values < alpha).sum() / len(p1)), "ndb_jsd": jsd(p1, p2)}
