"""The representation probe of the DCGAN paper (docs/protocols.md §8): a linear classifier on a frozen D.

Every conv block's output (after its activation) is max-pooled to 4x4, flattened and concatenated;
features are standardised with train statistics and a linear L2-SVM (squared hinge) is fitted,
its C chosen by 5-fold cross-validation on train. The same probe on a randomly initialised D of
the same architecture and on raw pixels is reported beside it: random conv features are already
far above chance, so the trained number means nothing alone. Blocks are found generically, as the
activation modules whose output is a 4-D map, so no variant is named here.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.PReLU)
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@torch.no_grad()
def conv_features(D: nn.Module, images: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    """Concatenated 4x4 max-pooled activation maps of every conv block for uint8 images."""
    maps: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: maps.append(out) if out.dim() == 4 else None)
             for m in D.modules() if isinstance(m, ACTIVATIONS)]
    was = D.training
    D.eval()
    rows = []
    try:
        for s in range(0, len(images), batch):
            maps.clear()
            x = images[s:s + batch].to(device).float() / 127.5 - 1
            D(x)
            if not maps:
                raise BenchError(f"the probe needs a convolutional D; {type(D).__name__} has no 4-D activation "
                                 "maps (use a conv variant such as the DCGAN family)")
            rows.append(torch.cat([F.adaptive_max_pool2d(m, 4).flatten(1) for m in maps], dim=1).cpu())
    finally:
        for h in hooks:
            h.remove()
        D.train(was)
    return torch.cat(rows)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 classifier: str = "linear_svc", seed: int = 2020) -> tuple[float, float]:
    """(test top-1, chosen C) of a standardised linear classifier with C picked by 5-fold CV."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if classifier == "linear_svc":
        # dual=True: liblinear's primal solver (what "auto" picks when samples outnumber features) is far
        # slower here than the dual one for the same optimum (README, Speed: measured costs).
        model = LinearSVC(loss="squared_hinge", penalty="l2", dual=True, max_iter=1000, random_state=seed)  # sklearn default
    elif classifier == "logistic":
        model = LogisticRegression(max_iter=1000, random_state=seed)
    else:
        raise BenchError(f"probe classifier {classifier!r} unknown; use linear_svc or logistic")
    pipe = make_pipeline(StandardScaler(), model)
    key = f"{type(model).__name__.lower()}__C"
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, {key: list(C_GRID)}, cv=folds).fit(train_x, train_y)
    return float(search.score(test_x, test_y)), float(search.best_params_[key])


def probe_scores(D: nn.Module, random_D: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 device: torch.device, seed: int, classifier: str = "linear_svc") -> tuple[dict, dict]:
    """Probe accuracy of the trained D, a random D and raw pixels on a fixed stratified 70/30 split."""
    from sklearn.model_selection import train_test_split

    y = labels.numpy()
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=y)
    out, params = {}, {}
    for name, feats in (("probe_acc", conv_features(D, images, device)),
                        ("probe_acc_random_d", conv_features(random_D, images, device)),
                        ("probe_acc_pixels", images.flatten(1).float())):
        x = feats.numpy().astype(np.float64)
        out[name], params[f"{name}_C"] = linear_probe(x[train], y[train], x[test], y[test], classifier, seed)
        params[f"{name}_dim"] = int(x.shape[1])
    params.update(probe_classifier=classifier, probe_split="stratified 70/30 of the reference, eval_seed",
                  probe_n_train=int(len(train)), probe_n_test=int(len(test)), probe_pool="adaptive_max_pool2d 4x4",
                  probe_c_grid=list(C_GRID), probe_cv=5, chance=float(1.0 / len(np.unique(y))))
    return out, params
