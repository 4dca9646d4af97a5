"""torch-fidelity, called the way docs/protocols.md §1 says: typed arguments in, no free-form kwargs through.

Two entry points. `feature_scores` takes features the bench extracted itself (the domain extractor)
and hands them to torch-fidelity's own features-to-statistics and statistics-to-distance functions,
so FD, KID and precision/recall are the library's code even off Inception. `inception_scores` and
`vgg_prc` run the library's full pipeline: the generator is fed directly through a wrapper that
returns uint8 and looks unconditional (the library's conditional path breaks on current NumPy),
the reference is the bench's uint8 tensor, and its cache name is fingerprinted because the
library's is not (docs/protocols.md §1.3). Inception and VGG16 are two calls because the weights path is
one keyword (docs/protocols.md §1.2).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from bench.errors import BenchError

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILE}"
INCEPTION_ENV, VGG16_ENV, DOWNLOAD_ENV = "BENCH_INCEPTION_WEIGHTS", "BENCH_VGG16_WEIGHTS", "BENCH_DOWNLOAD_WEIGHTS"
KID_SUBSETS = 100
PRC_NEIGHBOURHOOD = 3
ISC_SPLITS = 10


class MissingWeights(BenchError):
    """A backbone's weights file is absent and downloads are off."""


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 with 3 channels, the input every extractor asserts (docs/protocols.md §1.1)."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def kid_subset_size(n1: int, n2: int, cap: int = 1000) -> int:
    """min(cap, smaller side) rounded down to a multiple of 10 (docs/protocols.md §1.5)."""
    n = min(cap, n1, n2)
    return n // 10 * 10 if n >= 10 else n


# ------------------------------------------------------------------ scores from features

def fd(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Frechet distance with torch-fidelity's own statistics (float64) and distance functions."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    stats_fake = fid_features_to_statistics(fake.double().cpu())
    stats_real = fid_features_to_statistics(real.double().cpu())
    return fid_statistics_to_metric(stats_fake, stats_real, verbose=False)[KEY_METRIC_FID]


def kid(fake: torch.Tensor, real: torch.Tensor, seed: int, subset_size: Optional[int] = None,
        subsets: int = KID_SUBSETS) -> tuple[float, float, int]:
    """(KID mean, std over subsets, subset size) with torch-fidelity's unbiased polynomial MMD."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    from threadpoolctl import threadpool_limits

    size = subset_size or kid_subset_size(len(fake), len(real))
    # One BLAS thread: the library's many small numpy products run faster without OpenBLAS threads
    # spinning against torch's (README, Speed: measured costs behind code choices).
    with threadpool_limits(1, "blas"):
        out = kid_features_to_metric(fake.cpu(), real.cpu(), kid_subsets=subsets, kid_subset_size=size,
                                     rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD], size


def prc(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Improved precision/recall (k = 3), generated first as the library's convention wants."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    return prc_features_to_metric(fake.float().cpu(), real.float().cpu(), prc_neighborhood=PRC_NEIGHBOURHOOD,
                                  prc_batch_size=10_000, save_cpu_ram=True, verbose=False)


# ------------------------------------------------------------------ weights

@dataclass(frozen=True)
class Weights:
    """Where the ImageNet backbones come from: files, or torch-fidelity's own download when allowed."""

    inception: str = ""  # a file; empty = $BENCH_INCEPTION_WEIGHTS, else the torch hub cache
    vgg16: str = ""  # a torchvision VGG16 state dict; empty = $BENCH_VGG16_WEIGHTS, else the hub cache
    download: bool = False  # let the libraries download (also $BENCH_DOWNLOAD_WEIGHTS=1)

    @classmethod
    def from_env(cls, inception: str = "", vgg16: str = "", download: bool = False) -> "Weights":
        return cls(inception or os.environ.get(INCEPTION_ENV, ""), vgg16 or os.environ.get(VGG16_ENV, ""),
                   download or os.environ.get(DOWNLOAD_ENV, "") == "1")


def hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_message(what: str, expected: Path, url: str, env: str, option: str) -> str:
    return (f"{what} weights not found: {expected} is missing; download {url} to that path, "
            f"or set {env} (or {option}) to the file")


def inception_weights(w: Weights) -> Optional[Path]:
    """The Inception file to load, None to let torch-fidelity download it, or MissingWeights."""
    return _resolve(w.inception, INCEPTION_FILE, INCEPTION_URL, INCEPTION_ENV, "--inception-weights",
                    "Inception", w.download)


def vgg16_weights(w: Weights) -> Optional[Path]:
    """The VGG16 file to load, None when torchvision will find (or may fetch) it, or MissingWeights."""
    return _resolve(w.vgg16, VGG16_FILE, VGG16_URL, VGG16_ENV, "--vgg16-weights", "VGG16", w.download,
                    hub_is_native=True)


def _resolve(given: str, file: str, url: str, env: str, option: str, what: str, download: bool,
             hub_is_native: bool = False) -> Optional[Path]:
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise MissingWeights(missing_message(what, path, url, env, option))
        return path
    cached = hub_checkpoints() / file
    if cached.is_file():
        # torchvision reads its own hub cache by itself; passing the path would also work
        return None if hub_is_native else cached
    if download:
        return None
    raise MissingWeights(missing_message(what, cached, url, env, option))


@functools.lru_cache(maxsize=8)
def file_sha256(path: str, size: int, mtime_ns: int) -> str:
    from bench.datasets.files import sha256_file

    return sha256_file(Path(path))


def weights_id(name: str, path: Optional[Path]) -> str:
    """'<name>@<sha256[:12]>' of the weights file ('download' when the library fetched it)."""
    if path is None:
        return f"{name}@download"
    st = path.stat()
    return f"{name}@{file_sha256(str(path), st.st_size, st.st_mtime_ns)[:12]}"


# ------------------------------------------------------------------ the library's pipeline

class UInt8Images(torch.utils.data.Dataset):
    """A uint8 N x 3 x H x W tensor as the Dataset torch-fidelity reads."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def generator_input(variant, G, latents: torch.Tensor, labels: Optional[torch.Tensor]):
    """G as torch-fidelity's GenerativeModelBase: fixed evaluation latents served in order, uint8 out.

    The library's own noise only sets the batch size: our latents come from the bench's evaluation
    generator, so these are the same samples every other metric scores, and labels (for conditional
    G) are ours too, so the library always sees num_classes = 0 (docs/protocols.md §1.4).
    """
    from torch_fidelity.generative_model_base import GenerativeModelBase

    class Wrapped(GenerativeModelBase):
        def __init__(self):
            super().__init__()
            self.G, self.offset = G, 0

        @property
        def z_size(self):
            return int(latents.shape[1])

        @property
        def z_type(self):
            return "normal"

        @property
        def num_classes(self):
            return 0

        @torch.no_grad()
        def forward(self, noise):
            n, s = len(noise), self.offset
            if s + n > len(latents):
                raise RuntimeError("torch-fidelity asked for more samples than were prepared")
            self.offset += n
            z = latents[s:s + n].to(noise.device)
            y = None if labels is None else labels[s:s + n].to(noise.device)
            return to_uint8(variant.generate(self.G, z, y).float())

    return Wrapped()


def inception_scores(gen, n_gen: int, reference: torch.Tensor, cache_name: str, weights: Optional[Path],
                     device: torch.device, seed: int, isc: bool, cache_root: Path) -> dict:
    """FID, KID (and IS when asked) from one torch-fidelity call with the Inception backbone."""
    import torch_fidelity

    size = kid_subset_size(n_gen, len(reference))
    out = torch_fidelity.calculate_metrics(
        input1=gen, input1_model_num_samples=n_gen, input1_cache_name=None,
        input2=UInt8Images(reference), input2_cache_name=cache_name, cache=True, cache_root=str(cache_root),
        fid=True, kid=True, isc=isc, prc=False, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=None if weights is None else str(weights),
        kid_subsets=KID_SUBSETS, kid_subset_size=size, isc_splits=ISC_SPLITS,
        cuda=device.type == "cuda", rng_seed=seed, verbose=False, save_cpu_ram=True, batch_size=64)
    out["kid_subset_size"] = size
    return out


def vgg_prc(gen, n_gen: int, reference: torch.Tensor, cache_name: str, weights: Optional[Path],
            device: torch.device, seed: int, cache_root: Path) -> dict:
    """Precision/recall on VGG16 fc2_relu: the second call, with its own weights path."""
    import torch_fidelity

    return torch_fidelity.calculate_metrics(
        input1=gen, input1_model_num_samples=n_gen, input1_cache_name=None,
        input2=UInt8Images(reference), input2_cache_name=cache_name, cache=True, cache_root=str(cache_root),
        prc=True, feature_extractor="vgg16", feature_layer_prc="fc2_relu",
        feature_extractor_weights_path=None if weights is None else str(weights),
        prc_neighborhood=PRC_NEIGHBOURHOOD, cuda=device.type == "cuda", rng_seed=seed, verbose=False,
        save_cpu_ram=True, batch_size=64)


def vgg_features(images: torch.Tensor, weights: Optional[Path], device: torch.device, batch: int = 64) -> torch.Tensor:
    """VGG16 fc2_relu features of uint8 images, through the library's own extractor and batching (the
    layer and weights `vgg_prc` uses), for metrics the library does not compute itself (density/coverage)."""
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    cuda = device.type == "cuda"
    extractor = create_feature_extractor("vgg16", ["fc2_relu"], cuda=cuda, verbose=False,
                                         feature_extractor_weights_path=None if weights is None else str(weights))
    out = get_featuresdict_from_dataset(UInt8Images(images.cpu()), extractor, batch, cuda, True, False)
    return out["fc2_relu"]


def inception_features(images: torch.Tensor, weights: Optional[Path], device: torch.device,
                       batch: int = 64) -> torch.Tensor:
    """Inception pool features (the 2048 layer FID uses) of uint8 images, through the library's own
    extractor and batching, for scores the library does not compute itself (the conditional judge)."""
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    cuda = device.type == "cuda"
    extractor = create_feature_extractor("inception-v3-compat", ["2048"], cuda=cuda, verbose=False,
                                         feature_extractor_weights_path=None if weights is None else str(weights))
    out = get_featuresdict_from_dataset(UInt8Images(images.cpu()), extractor, batch, cuda, True, False)
    return out["2048"].float()
