"""Class-conditional scores on natural images (docs/protocols.md §6) in the Inception protocol's space.

The judge is a linear classifier (standardised features, sklearn's LogisticRegression) on Inception
pool features of the real train split, fitted on a stratified part of it; its accuracy on the rest is
the real-data ceiling `class_acc_real`. Generated samples are balanced blocks (label i % K) and are
scored per requested class: accuracy overall and per class, and per-class KID in the same features.
Reference features and the judge are cached by the data's fingerprint and the weights digest.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from bench.metrics import fidelity

HELDOUT_FRACTION = 0.25  # of each class, at least one image, for the judge's ceiling
CLASS_KID_SUBSET = 50
MIN_PER_CLASS = 2 * CLASS_KID_SUBSET  # generated per class by default (at least N_FINAL in all)
WORST = 5  # classes listed by name in the protocol, worst first
FORMAT = 1


def heldout_split(labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (fit, held-out): a stratified split chosen with the evaluation seed."""
    g = torch.Generator().manual_seed(seed)
    fit, held = [], []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, int(round(HELDOUT_FRACTION * len(idx)))) if len(idx) > 1 else 0
        held.append(idx[:k])
        fit.append(idx[k:])
    return torch.cat(fit).sort().values, torch.cat(held).sort().values


class LinearJudge:
    """Standardise, then a linear map to class logits; the fitted arrays are all it keeps."""

    def __init__(self, state: dict):
        self.state = state

    @classmethod
    def fit(cls, feats: torch.Tensor, labels: torch.Tensor, seed: int) -> "LinearJudge":
        from sklearn.linear_model import LogisticRegression

        fit, held = heldout_split(labels, seed)
        x = feats.double().numpy()
        mean, scale = x[fit].mean(0), x[fit].std(0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        model = LogisticRegression(max_iter=1000, random_state=seed).fit(z[fit], labels[fit].numpy())
        classes = torch.as_tensor(model.classes_)
        coef, intercept = torch.as_tensor(model.coef_), torch.as_tensor(model.intercept_)
        if len(classes) == 2:  # sklearn's binary form: one row; make it two logits
            coef, intercept = torch.cat([-coef, coef]) / 2, torch.cat([-intercept, intercept]) / 2
        judge = cls({"mean": torch.as_tensor(mean), "scale": torch.as_tensor(scale), "coef": coef,
                     "intercept": intercept, "classes": classes, "n_fit": len(fit), "n_heldout": len(held)})
        acc = float((judge.predict(feats[held]) == labels[held]).double().mean()) if len(held) else math.nan
        judge.state["heldout_accuracy"] = acc
        return judge

    def predict(self, feats: torch.Tensor) -> torch.Tensor:
        s = self.state
        z = (feats.double() - s["mean"]) / s["scale"]
        return s["classes"][(z @ s["coef"].T + s["intercept"]).argmax(dim=-1)]

    @property
    def heldout_accuracy(self) -> float:
        return float(self.state["heldout_accuracy"])


def cached(path: Path, compute):
    """A dict of tensors and numbers cached with torch.save; a damaged file is recomputed."""
    from bench.store.runs import save_atomic

    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache file is recomputed
            pass
    value = compute()
    save_atomic(path, lambda tmp: torch.save(value, tmp))
    return value


def class_scores(fake_feats: torch.Tensor, fake_labels: torch.Tensor, real_feats: torch.Tensor,
                 real_labels: torch.Tensor, judge: LinearJudge, k: int, names, seed: int) -> tuple[dict, dict]:
    """Accuracy overall and per class against the requested label, per-class KID; the worst classes named."""
    pred = judge.predict(fake_feats)
    correct = (pred == fake_labels).double()
    counts = torch.bincount(fake_labels, minlength=k)
    acc = torch.zeros(k, dtype=torch.float64).index_add_(0, fake_labels, correct) / counts.clamp(min=1)
    present = counts > 0
    kids = {}
    for c in range(k):
        fake_c, real_c = fake_feats[fake_labels == c], real_feats[real_labels == c]
        if len(fake_c) >= 2 and len(real_c) >= 2:
            size = fidelity.kid_subset_size(len(fake_c), len(real_c), cap=CLASS_KID_SUBSET)
            kids[c] = fidelity.kid(fake_c, real_c, seed, subset_size=size)[0]
    worst_kid = sorted(kids, key=lambda c: -kids[c])
    worst_acc = sorted(range(k), key=lambda c: (acc[c].item(), c))
    worst_acc = [c for c in worst_acc if present[c]]
    name = (lambda c: names[c]) if len(names) == k else str
    kid_values = [kids[c] for c in worst_kid]
    scores = {"class_acc": float(acc[present].mean()), "class_acc_real": judge.heldout_accuracy,
              "class_acc_worst": float(acc[worst_acc[0]]) if worst_acc else math.nan,
              "classes_low_acc": float((acc[present] < min(1.0, 10.0 / k)).sum()),
              "kid_class_mean": float(np.mean(kid_values)) if kids else math.nan,
              "kid_class_worst10": float(np.mean(kid_values[:10])) if kids else math.nan}
    params = {"classes": k, "acc_worst_classes": ", ".join(f"{name(c)}={acc[c].item():.3f}" for c in worst_acc[:WORST]),
              "kid_worst_classes": ", ".join(f"{name(c)}={kids[c]:.4g}" for c in worst_kid[:WORST]),
              "kid_subset_size": CLASS_KID_SUBSET, "kid_subsets": fidelity.KID_SUBSETS,
              "low_acc_threshold": min(1.0, 10.0 / k), "labels": "balanced blocks (i % K)"}
    return scores, params
