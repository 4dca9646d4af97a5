"""Checkpoints that make a killed run resume exactly: nets, optimizers, step and every RNG state.

Loaded with torch.load(weights_only=True), so a checkpoint can hold tensors and plain containers
only: the numpy RNG state is stored as a tensor plus ints for that reason.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.store.runs import save_atomic


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
    """rng: the run's RNG states when they are not the global ones (a member of a pack, bench/train/packed.py)."""
    payload = {"step": step, "G": G.state_dict(), "D": D.state_dict(),
               "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
               "rng": rng or rng_state(), "extra": extra or {}}
    save_file(path, payload)


def save_file(path: Path, payload: Any) -> None:
    """torch.save to `path` atomically. Through a file object: given a path, torch.save reports a
    full disk as a bare RuntimeError, while a file object's OSError (errno ENOSPC) stays in its chain."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
    save_atomic(path, write)


# The way out of a bad checkpoint: while training, on a finished run (bench eval, bench sample), for best.pt.
RESTART = "delete it to restart that run from step 0"
RETRAIN = "delete the run folder to retrain that run"
DROP_BEST = "delete it to evaluate the final checkpoint only"


def load(path: Path, device: torch.device, fix: str = RESTART) -> dict[str, Any]:
    """The checkpoint's contents, or BenchError naming the file and `fix`, the way out."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise BenchError(f"checkpoint {path} is missing; {fix}") from None
    except Exception as exc:  # truncated file, wrong format, foreign pickle
        raise BenchError(f"checkpoint {path} is unreadable ({type(exc).__name__}); {fix}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise BenchError(f"checkpoint {path} is unreadable (not a GAN Bench checkpoint); {fix}")
    return state


def load_into(path: Path, state: dict[str, Any], fix: str = RESTART, **targets) -> None:
    """state[name] into each target (nets, optimizers) given by name; BenchError when one is missing
    or its shapes are another config's."""
    try:
        for name, target in targets.items():
            target.load_state_dict(state[name])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise BenchError(f"checkpoint {path} does not match this run's networks ({_mismatch(exc)}); {fix}") from None


def _mismatch(exc: Exception) -> str:
    """The first concrete problem: load_state_dict heads its list with 'Error(s) in loading ...'."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} in it"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Error(s) in loading")] or lines or [type(exc).__name__]
    return lines[0] if len(lines[0]) <= 200 else lines[0][:197] + "..."


def restore(path: Path, device: torch.device, *, G, D, opt_g, opt_d) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint into the given objects and the global RNGs; (0, {}) when there is none."""
    if not path.exists():
        return 0, {}
    state = load(path, device)
    load_into(path, state, G=G, D=D, opt_g=opt_g, opt_d=opt_d)
    set_rng_state(state["rng"])
    return int(state["step"]), state.get("extra", {})


# Temporary names of bench.store.runs.write_atomic (.NAME.XXXXXXXX.tmp) and save_atomic (.NAME.XXXXXXXX.SUFFIX).
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)?$")


def remove_partial_writes(run_path: Path) -> list[Path]:
    """Delete what writes interrupted by a kill left in a run folder, ckpt/ and samples/: the
    temporary files of a checkpoint, a sample grid or a status that were never renamed into place.
    Called by the run's claimant as it starts, so none of them belongs to a write under way."""
    removed = []
    for folder in (run_path, run_path / "ckpt", run_path / "samples"):
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = _PARTIAL.match(path.name)
            if match and match["suffix"] in (".tmp", Path(match["name"]).suffix or None) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# ---- packs (bench/train/packed.py): K runs stepped by one optimizer over stacked [K, ...] tensors, each member
# saved as, and restored from, an ordinary single-run checkpoint in its own run folder.


class PackMismatch(BenchError):
    """The runs of a pack cannot resume together (checkpoints at different steps, or some missing)."""


class _Taken:
    """An optimizer state already taken (a member's slice), where save() asks an optimizer for it."""

    def __init__(self, state: dict[str, Any]):
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


def save_member(path: Path, k: int, *, step: int, G, D, opt_g, opt_d, rng: dict[str, Any],
                extra: dict[str, Any]) -> None:
    """Member k of a pack in the single-run format: G and D are its own nets, opt_g and opt_d the pack's
    optimizers (sliced here), rng the member's RNG states; the folder resumes alone or in a pack."""
    save(path, step=step, G=G, D=D, opt_g=_Taken(member_optimizer_state(opt_g, k)),
         opt_d=_Taken(member_optimizer_state(opt_d, k)), rng=rng, extra=extra)


def load_members(files: list[Path], device: torch.device) -> tuple[int, list[dict[str, Any]]]:
    """(step, every member's checkpoint), or (0, []) when none has one. The members of a pack step
    together, so all must have one, at one step; else PackMismatch (the scheduler trains them alone)."""
    present = [f.exists() for f in files]
    if not any(present):
        return 0, []
    if not all(present):
        missing = [str(f.parent.parent) for f, p in zip(files, present) if not p]
        raise PackMismatch(f"runs {', '.join(missing)} have no checkpoint while the rest of the pack has; "
                           f"train them one at a time with bench run")
    states = [load(f, device) for f in files]
    steps = sorted({int(s["step"]) for s in states})
    if len(steps) > 1:
        raise PackMismatch(f"the runs of this pack are at different steps ({', '.join(map(str, steps))}); "
                           f"train them one at a time with bench run")
    return steps[0], states


def member_optimizer_state(opt: torch.optim.Optimizer, k: int) -> dict[str, Any]:
    """Member k's slice of an optimizer over stacked tensors, in the single-run state_dict format:
    per-parameter tensors shaped like the stacked parameter are sliced, the rest (step counts) kept."""
    full = opt.state_dict()
    params = [p for group in opt.param_groups for p in group["params"]]
    state = {i: {key: v[k].clone() if torch.is_tensor(v) and v.shape == params[i].shape else v
                 for key, v in s.items()}
             for i, s in full["state"].items()}
    return {"state": state, "param_groups": full["param_groups"]}


def stack_optimizer_states(opt: torch.optim.Optimizer, states: list[dict[str, Any]]) -> None:
    """The members' single-run optimizer states (in member order) into one optimizer over stacked tensors."""
    params = [p for group in opt.param_groups for p in group["params"]]
    first = states[0]
    stacked = {i: {key: torch.stack([s["state"][i][key] for s in states])
                   if torch.is_tensor(v) and tuple(v.shape) == tuple(params[i].shape[1:]) else v
                   for key, v in st.items()}
               for i, st in first["state"].items()}
    opt.load_state_dict({"state": stacked, "param_groups": first["param_groups"]})


def stream_state(device: torch.device) -> dict[str, Any]:
    """The CPU generator and `device`'s CUDA one: a pack's own stream, saved with every member."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_stream_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
