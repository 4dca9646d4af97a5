"""Scores for class-conditional generators (docs/protocols.md §6), in the domain extractor's space.

Generated labels are balanced blocks (`latents.eval_latents`: label i % K), so every class gets
the same number of samples. Per-class FID is never computed: with ~100-200 real images a class,
its covariance is rank-deficient; per-class KID with small subsets is used instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.metrics import diversity, fidelity

PER_CLASS = 500  # generated per class for per-class KID (docs/protocols.md §2)
ACC_PER_CLASS = 50  # generated per class for the judge's accuracy (docs/protocols.md §6)
PAIRS_PER_CLASS = 100  # MS-SSIM pairs per class (AC-GAN's per-class protocol)
CLASS_KID_SUBSET = 50


def class_scores(ctx, gen, n: int) -> tuple[dict[str, float], dict]:
    """Accuracy, low-accuracy classes, label entropy, per-class KID summary, intra-class diversity."""
    k = ctx.spec.num_classes
    labels = gen.labels[:n]
    feats, logits = gen.features(n), gen.logits(n)
    real_images, real_labels = ctx.reference
    real_feats = ctx.real_features

    # Accuracy on the first ACC_PER_CLASS samples of each class, against the requested label.
    rank = torch.arange(n) // k  # position of each sample within its class block
    pick = rank < ACC_PER_CLASS
    pred = logits.argmax(dim=-1)
    correct = (pred == labels).double()
    per_class_acc = torch.zeros(k, dtype=torch.float64).index_add_(0, labels[pick], correct[pick])
    per_class_acc /= torch.bincount(labels[pick], minlength=k).clamp(min=1)
    threshold = min(1.0, 10.0 / k)
    hist = torch.bincount(pred[pick], minlength=k).double()
    p = (hist / hist.sum()).numpy()
    entropy = float(-np.sum(p[p > 0] * np.log(p[p > 0])))

    kids, msssims, coverages = [], [], []
    g = torch.Generator().manual_seed(ctx.eval_seed)
    for c in range(k):
        fake_c = feats[labels == c][:PER_CLASS]
        real_c = real_feats[real_labels == c]
        if len(fake_c) >= 2 and len(real_c) >= 2:
            size = fidelity.kid_subset_size(len(fake_c), len(real_c), cap=CLASS_KID_SUBSET)
            kids.append(fidelity.kid(fake_c, real_c, ctx.eval_seed, subset_size=size)[0])
            m = min(len(fake_c), len(real_c))
            if m > 5:
                coverages.append(diversity.density_coverage(real_c[:m], fake_c[:m], k=5)["coverage"])
        images_c = gen.images[:n][labels == c]
        if len(images_c) >= 2:
            msssims.append(diversity.mean_msssim(images_c, PAIRS_PER_CLASS, g))
    kids_sorted = sorted(kids, reverse=True)
    scores = {"class_acc": float(per_class_acc.mean()), "class_acc_real": ctx.extractor.heldout_accuracy,
              "classes_low_acc": float((per_class_acc < threshold).sum()), "label_entropy": entropy,
              "kid_class_mean": _mean(kids), "kid_class_std": float(np.std(kids)) if kids else math.nan,
              "kid_class_worst10": _mean(kids_sorted[:10]), "msssim_class_mean": _mean(msssims),
              "coverage_class_mean": _mean(coverages)}
    params = {"n_gen": n, "n_ref": len(real_images), "classes": k, "acc_per_class": ACC_PER_CLASS,
              "kid_per_class": PER_CLASS, "kid_subset_size": CLASS_KID_SUBSET, "kid_subsets": fidelity.KID_SUBSETS,
              "low_acc_threshold": threshold, "pairs_per_class": PAIRS_PER_CLASS, "coverage_k": 5,
              "labels": "balanced blocks (i % K)"}
    return scores, params


def intra_class_msssim(fake: torch.Tensor, fake_labels: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor,
                       k: int, seed: int, device=None) -> tuple[float, float, int]:
    """Mean over classes of MS-SSIM on PAIRS_PER_CLASS random pairs within the class, for the generated
    and the real images, over the classes with at least two images on both sides (their count is returned)."""
    g_fake, g_real = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    gen, ref = [], []
    for c in range(k):
        fake_c, real_c = fake[fake_labels == c], real[real_labels == c]
        if len(fake_c) >= 2 and len(real_c) >= 2:
            gen.append(diversity.mean_msssim(fake_c, PAIRS_PER_CLASS, g_fake, device=device))
            ref.append(diversity.mean_msssim(real_c, PAIRS_PER_CLASS, g_real, device=device))
    return _mean(gen), _mean(ref), len(gen)


def _mean(xs) -> float:
    return float(np.mean(xs)) if len(xs) else math.nan
