"""The fixed evaluation latents and G's samples on them.

Evaluation draws from its own torch.Generator seeded with EVAL_SEED, never from the training RNG,
so evaluating or writing samples does not change training, and every variant is shown the same latents.
"""

from __future__ import annotations

import torch

EVAL_SEED = 2020  # fixed across variants and seeds (docs/protocols.md §0.4); torch-fidelity's default too


def eval_latents(variant, n: int, device: torch.device, num_classes: int, seed: int = EVAL_SEED):
    """z (and balanced labels for conditional variants) from a dedicated generator."""
    generator = torch.Generator().manual_seed(seed)
    z = variant.sample_z(n, torch.device("cpu"), generator=generator).to(device)
    y = None
    if variant.conditional and num_classes:
        y = (torch.arange(n) % num_classes).to(device)
    return z, y


@torch.no_grad()
def generate(variant, G, z, y, batch: int = 500) -> torch.Tensor:
    """G's samples in eval mode (BN running statistics), on the host, in the training range."""
    was_training = G.training
    G.eval()
    try:
        parts = [variant.generate(G, z[i:i + batch], None if y is None else y[i:i + batch]).float().cpu()
                 for i in range(0, len(z), batch)]
    finally:
        G.train(was_training)
    return torch.cat(parts)
