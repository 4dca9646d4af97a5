"""Domain feature extractors and the stacked-digits judge, trained once on a dataset's own real images.

Inception features say little about 8x8 digits or procedural shapes and need weights an offline
machine lacks. A small classifier fitted on the dataset's labelled images gives a feature space (its
hidden layer) where FD, KID and precision/recall are meaningful without any download. It is fitted
with scikit-learn, so the only optimizer loop in bench/ stays in loop.py; its weights are then copied
into a torch module registered with torch-fidelity (`bench-domain`), so the library's own pipeline
and ours read the same features. Scores in this space are "FD", never "FID" (docs/protocols.md §1.5).

Stacked digits are judged per channel (docs/protocols.md §4): the digit model is fitted on the distinct
single-channel digits found in the stacks themselves, so it sees exactly the resize the dataset used.
"""

from __future__ import annotations

import io
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import BenchError
from bench.store.runs import write_atomic

TF_NAME = "bench-domain"  # the name torch-fidelity knows the domain extractor by
FORMAT = 2  # bump when fitting changes; old cached extractors then miss
HIDDEN = 128  # width of the feature layer
MAX_FIT = 12_000  # labelled images used for fitting at most (MNIST has 60,000)
POOL = 16  # inputs are area-averaged to at most POOL x POOL: a domain feature, not a texture one
DIGIT_POOL = 8  # stacked channels go back to the digits' native 8 x 8
SCALE_FLOOR = 0.1  # in [0, 1] pixel units; see fit_extractor
JUDGE_MIN_ACCURACY = 0.98  # docs/protocols.md §4: the stacked-digits judge must reach this held-out accuracy


def _prepare(images: torch.Tensor, pool: int, per_channel: bool) -> torch.Tensor:
    """uint8 N x C x H x W -> float rows in [0, 1] (N*C rows when per_channel)."""
    x = images.float() / 255.0
    if per_channel:
        x = x.reshape(-1, 1, *x.shape[2:])
    if x.shape[-1] > pool:
        x = F.adaptive_avg_pool2d(x, pool)
    return x.flatten(1)


def holdout_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed 70/30 split, stratified when every class has at least two members."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    stratify = y if np.bincount(y).min(initial=len(y)) >= 2 and len(np.unique(y)) > 1 else None
    try:
        return train_test_split(index, test_size=0.3, random_state=seed, stratify=stratify)
    except ValueError:  # a class too small for a stratified test share
        return train_test_split(index, test_size=0.3, random_state=seed)


def distinct_channels(images: torch.Tensor, digits: torch.Tensor, limit: int = 20_000) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct single-channel images among the first `limit` stacks and their digit labels.

    digits is N x 3 (the R, G, B digit of each stack). 20,000 stacks draw 60,000 channels from a
    pool of 1,797 digits, so every pool image is present with near certainty.
    """
    ch = images[:limit].reshape(-1, 1, *images.shape[2:])
    lab = digits[:limit].reshape(-1)
    flat = np.ascontiguousarray(ch.flatten(1).numpy())
    rows = flat.view(np.dtype((np.void, flat.shape[1] * flat.itemsize))).ravel()  # one bytes key per image
    _, first = np.unique(rows, return_index=True)
    first = torch.from_numpy(np.sort(first))
    return ch[first], lab[first]


def digits_of_modes(labels: torch.Tensor) -> torch.Tensor:
    """Mode labels 100*d_R + 10*d_G + d_B -> N x 3 digits."""
    return torch.stack([labels // 100, labels // 10 % 10, labels % 10], dim=1)


# ------------------------------------------------------------------ the feature model

@dataclass
class DomainExtractor:
    """A fitted MLP as torch tensors: standardise, hidden ReLU layer (the features), logits."""

    weights: dict  # plain tensors and numbers, saved with torch.save and read with weights_only
    path: Path
    sha256: str

    @property
    def id(self) -> str:
        return f"{TF_NAME}:{self.weights['source']}@{self.sha256[:12]}"

    @property
    def heldout_accuracy(self) -> float:
        return float(self.weights["heldout_accuracy"])

    @property
    def per_channel(self) -> bool:
        return bool(self.weights["per_channel"])

    def record(self) -> dict:
        w = self.weights
        return {"extractor": self.id, "extractor_layer": f"hidden{HIDDEN}",
                "extractor_input": f"uint8, area-averaged to <= {w['pool']} px" +
                                   (", per channel" if w["per_channel"] else ""),
                "extractor_heldout_acc": round(self.heldout_accuracy, 4)}

    @torch.no_grad()
    def run(self, images: torch.Tensor, batch: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """(features N x F, logits N x K or N x C x K) of uint8 images, on the host."""
        feats, logits = [], []
        for s in range(0, len(images), batch):
            f, lo = forward(self.weights, images[s:s + batch].cpu())
            feats.append(f)
            logits.append(lo)
        return torch.cat(feats), torch.cat(logits)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)[0]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)[1].argmax(dim=-1)


def forward(w: dict, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(images)
    x = _prepare(images, w["pool"], w["per_channel"])
    h = ((x - w["mean"]) / w["scale"]) @ w["w1"].T + w["b1"]
    h = h.clamp(min=0)
    logits = h @ w["w2"].T + w["b2"]
    if w["per_channel"]:
        return h.reshape(n, -1), logits.reshape(n, -1, logits.shape[-1])
    return h, logits


def fit_extractor(images: torch.Tensor, labels: torch.Tensor, source: str, per_channel: bool,
                  seed: int) -> dict:
    """Fit the scaler and MLP on 70% of the labelled images; held-out accuracy on the other 30%."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    pool = DIGIT_POOL if per_channel else POOL
    x = _prepare(images, pool, per_channel).numpy().astype(np.float64)
    y = labels.numpy().astype(np.int64)
    if len(y) > MAX_FIT:
        keep = np.random.default_rng(seed).permutation(len(y))[:MAX_FIT]
        x, y = x[keep], y[keep]
    if len(np.unique(y)) < 2:
        raise BenchError(f"{source}: a domain extractor needs at least two classes in the labels")
    train, test = holdout_split(y, seed)
    scaler = StandardScaler().fit(x[train])
    # A floor on the per-pixel scale: pixels that are almost constant in the real data (digit borders)
    # would otherwise turn any generated ink there into features thousands of units away.
    scaler.scale_ = np.maximum(scaler.scale_, SCALE_FLOOR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((HIDDEN,), max_iter=200, random_state=seed).fit(scaler.transform(x[train]), y[train])
    accuracy = float(mlp.score(scaler.transform(x[test]), y[test]))
    (w1, w2), (b1, b2) = mlp.coefs_, mlp.intercepts_
    k = len(mlp.classes_)
    if k == 2:  # sklearn keeps one logit for two classes; expand so argmax works the same
        w2, b2 = np.concatenate([-w2, w2], axis=1) / 2, np.concatenate([-b2, b2]) / 2
    order = np.argsort(mlp.classes_)  # logits in class-id order
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
    classes = mlp.classes_[order]
    return {"format": FORMAT, "source": source, "per_channel": per_channel, "pool": pool,
            "mean": t(scaler.mean_), "scale": t(scaler.scale_),
            "w1": t(w1.T), "b1": t(b1), "w2": t(w2.T[order]), "b2": t(b2[order]),
            "classes": [int(c) for c in classes], "heldout_accuracy": accuracy,
            "n_fit": int(len(train)), "n_heldout": int(len(test)), "seed": seed}


def load_or_fit(path: Path, images: torch.Tensor, labels: torch.Tensor, source: str, per_channel: bool,
                seed: int) -> DomainExtractor:
    """The cached extractor at `path`, fitting and saving it (atomically) on a miss."""
    from bench.datasets.files import sha256_file

    if path.is_file():
        try:
            weights = torch.load(path, map_location="cpu", weights_only=True)
            if weights.get("format") == FORMAT:
                return DomainExtractor(weights, path, sha256_file(path))
        except Exception:  # noqa: BLE001 - a damaged cache file is refitted, not trusted
            pass
    weights = fit_extractor(images, labels, source, per_channel, seed)
    # Serialised in memory first: torch.save names its zip records after the file it is given, so a
    # temporary path would give the same weights a different digest, and their values other columns.
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    write_atomic(path, buffer.getvalue())
    return DomainExtractor(weights, path, sha256_file(path))


# ------------------------------------------------------------------ stacked-digits judge

def check_judge_accuracy(accuracy: float) -> None:
    """Every stacked-digits judge (this SVC, bench/metrics/cnn_judge.py's CNN) is held to one floor."""
    if accuracy < JUDGE_MIN_ACCURACY:
        raise BenchError(f"stacked-digits judge reaches {accuracy:.3f} held-out accuracy, below "
                         f"{JUDGE_MIN_ACCURACY}; the mode count would be unreliable, so it is not computed")


@dataclass
class DigitJudge:
    """An RBF SVC on single 8x8 channels (docs/protocols.md §4). Refitted per process: it takes a tenth of a
    second, and keeping it out of the cache avoids pickles, which this project never loads."""

    model: object
    heldout_accuracy: float
    digest: str

    @classmethod
    def fit(cls, channels: torch.Tensor, digits: torch.Tensor, seed: int) -> "DigitJudge":
        from sklearn.svm import SVC

        x = _prepare(channels, DIGIT_POOL, per_channel=True).numpy().astype(np.float64)
        y = digits.numpy().astype(np.int64)
        train, test = holdout_split(y, seed)
        model = SVC(C=10.0, gamma="scale").fit(x[train], y[train])
        accuracy = float(model.score(x[test], y[test]))
        digest = hashlib.sha256(x.tobytes() + y.tobytes() + b"svc-rbf-C10-scale").hexdigest()
        return cls(model, accuracy, digest)

    def check(self) -> None:
        check_judge_accuracy(self.heldout_accuracy)

    def predict(self, images: torch.Tensor, batch: int = 20_000) -> torch.Tensor:
        """N x 3 digits of uint8 N x 3 x H x W stacks, each channel judged on its own."""
        x = _prepare(images, DIGIT_POOL, per_channel=True).numpy().astype(np.float64)
        pred = np.concatenate([self.model.predict(x[s:s + batch]) for s in range(0, len(x), batch)])
        return torch.from_numpy(pred.astype(np.int64)).reshape(len(images), -1)

    def record(self) -> dict:
        return {"judge": f"svc-rbf@{self.digest[:12]}", "judge_heldout_acc": round(self.heldout_accuracy, 4)}


# ------------------------------------------------------------------ torch-fidelity registration

def _feature_extractor_class():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.helpers import vassert

    class DomainFeatureExtractor(FeatureExtractorBase):
        """The fitted domain MLP as a torch-fidelity extractor: uint8 N x 3 x H x W in, float32 out.

        The weights file is the one `load_or_fit` wrote, given as feature_extractor_weights_path.
        """

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            vassert(feature_extractor_weights_path is not None,
                    f"{TF_NAME} needs feature_extractor_weights_path (a fitted domain extractor file)")
            self.weights = torch.load(feature_extractor_weights_path, map_location="cpu", weights_only=True)
            self.requires_grad_(False)
            self.eval()

        def forward(self, x):
            vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting uint8 images")
            vassert(x.dim() == 4, f"Input is not BxCxHxW: {tuple(x.shape)}")
            hidden, logits = forward(self.weights, x.cpu())
            out = {"hidden": hidden.to(x.device), "logits": logits.flatten(1).to(x.device)}
            return tuple(out[f] for f in self.features_list)

        @staticmethod
        def get_provided_features_list():
            return "hidden", "logits"

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits", "fid": "hidden", "kid": "hidden", "prc": "hidden"}[metric]

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

    return DomainFeatureExtractor


def register_with_fidelity() -> None:
    """Make `feature_extractor="bench-domain"` work in torch_fidelity.calculate_metrics (once per process)."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if TF_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(TF_NAME, _feature_extractor_class())
