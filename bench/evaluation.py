"""In-training and final evaluation of a run, called by the loop at flushes and at the end.

The loop knows nothing about metrics: it hands G to an Evaluator at each flush and once at the
end. Evaluation draws from its own generators (samples.EVAL_SEED), never the training RNG, so a run
trains identically with and without it.
"""

from __future__ import annotations

import torch

from bench.runs import RunDir


class Evaluator:
    """Runs the cheap curve protocol every `eval_every` steps and the full protocol at the end."""

    def __init__(self, run: RunDir, config, variant, data, device: torch.device):
        self.run, self.config, self.variant, self.data, self.device = run, config, variant, data, device

    def at_flush(self, G, step: int) -> None:
        """Called after every flush with G in train mode; evaluates when `eval_every` divides step."""

    def final(self, G, step: int) -> None:
        """Called once when training ends normally."""
