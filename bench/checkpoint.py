"""Checkpoints that make a killed run resume exactly: nets, optimizers, step and every RNG state.

Loaded with torch.load(weights_only=True), so a checkpoint can hold tensors and plain containers
only: the numpy RNG state is stored as a tensor plus ints for that reason.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.runs import save_atomic


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"].cpu())  # load() maps every tensor to the run's device
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save(path: Path, *, step: int, G, D, opt_g, opt_d, extra: dict[str, Any] | None = None,
         rng: dict[str, Any] | None = None) -> None:
    """rng: the run's RNG states when they are not the global ones (a member of a pack, bench/packed.py)."""
    payload = {"step": step, "G": G.state_dict(), "D": D.state_dict(),
               "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
               "rng": rng or rng_state(), "extra": extra or {}}
    save_atomic(path, lambda tmp: torch.save(payload, tmp))


def load(path: Path, device: torch.device) -> dict[str, Any]:
    """The checkpoint's contents, or BenchError naming the file and the way out."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated file, wrong format, foreign pickle
        raise BenchError(f"checkpoint {path} is unreadable ({type(exc).__name__}); "
                         f"delete it to restart that run from step 0") from None


def restore(path: Path, device: torch.device, *, G, D, opt_g, opt_d) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint into the given objects and the global RNGs; (0, {}) when there is none."""
    if not path.exists():
        return 0, {}
    state = load(path, device)
    try:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise BenchError(f"checkpoint {path} does not match this run's networks ({str(exc).splitlines()[0]}); "
                         f"delete it to restart that run") from None
    set_rng_state(state["rng"])
    return int(state["step"]), state.get("extra", {})
