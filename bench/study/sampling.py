"""`bench sample`: a run's generator to an .npz any tool can score, without the training data."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from bench.store import checkpoint

from bench import registry
from bench.config.schema import resolve
from bench.datasets.core import DataSpec
from bench.errors import BenchError
from bench.store.runs import RunDir, save_atomic
from bench.metrics.latents import EVAL_SEED, generate

# The samples, their latents and the file are all held in memory at once; 1M is 20x the largest
# metric protocol (50k images). More comes as several files drawn with different --seed.
MAX_SAMPLES = 1_000_000
MAX_BYTES = 4 * 2**30
SEED_LIMIT = 2**63  # torch.Generator.manual_seed takes a 64-bit integer


def load_generator(run: RunDir, device: torch.device, which: str = "final"):
    """(variant, G in eval mode, spec, step) from the run's last checkpoint (`final`), the best one
    by the curve (`best`, ckpt/best.pt), or whichever of the two was saved at step `which`."""
    config = resolve(run.read_config(), where=str(run.config_file))
    if not run.checkpoint_file.exists():
        raise BenchError(f"{run.path} has no checkpoint yet; train it with bench run first")
    state = checkpoint.load(run.checkpoint_file, device, fix=checkpoint.RETRAIN)
    spec_fields = state.get("extra", {}).get("spec")
    if not spec_fields:
        raise BenchError(f"{run.checkpoint_file} has no data spec; retrain the run")
    spec = DataSpec(tuple(spec_fields["shape"]), spec_fields["num_classes"], tuple(spec_fields["class_names"]))
    variant = registry.variants.get(config.variant)(config.options, spec)
    G, _ = variant.networks()
    file, fix = run.checkpoint_file, checkpoint.RETRAIN
    if which not in ("final", str(state["step"])):
        best_file = run.path / "ckpt" / "best.pt"
        best = checkpoint.load(best_file, device, fix=checkpoint.DROP_BEST) if best_file.is_file() else None
        if which != "best" and (best is None or which != str(best["step"])):
            saved = f"final (step {state['step']})" + (f", best (step {best['step']})" if best else "")
            raise BenchError(f"--checkpoint {which}: this run keeps {saved}; pick one of those")
        if best is None:
            raise BenchError(f"{run.path} has no ckpt/best.pt (it had no curve evaluations); use --checkpoint final")
        file, fix, state = best_file, checkpoint.DROP_BEST, best
    checkpoint.load_into(file, state, fix=fix, G=G)
    return variant, G.to(device).eval(), spec, int(state["step"])


def out_file(out: str, suffix: str = ".npz") -> Path:
    """--out checked before any work: a `suffix` file in a writable folder that exists, or in one new folder
    (the last part of the path) inside an existing folder under the current directory, which the
    write creates. A typo never makes a tree of folders, and nothing is created outside this tree."""
    path = Path(out)
    if path.suffix != suffix:
        raise BenchError(f"--out {out}: the file name must end in {suffix}")
    folder = path.parent.resolve()
    if not folder.exists():
        here = Path.cwd().resolve()
        if not folder.parent.is_dir():
            raise BenchError(f"--out {out}: folder {folder.parent} does not exist; create it first "
                             f"(only the last folder of the path is made)")
        if here not in folder.parents:
            raise BenchError(f"--out {out}: folder {folder} does not exist and is outside the current "
                             f"directory; create it first")
        folder = folder.parent
    elif not folder.is_dir():
        raise BenchError(f"--out {out}: {folder} is not a folder; pick another --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BenchError(f"--out {out}: folder {folder} is not writable; pick another --out")
    return path


def sample_run(run_dir: str, n: int, out: str, class_: int | None, seed: int | None, which: str = "final") -> Path:
    run = RunDir.open(run_dir)
    run.check()  # a damaged run is damaged here as in bench status and report
    out_path = out_file(out)
    if not 1 <= n <= MAX_SAMPLES:
        raise BenchError(f"--n {n}: at most {MAX_SAMPLES:,} samples per file (they are held in memory); "
                         f"write several files with different --seed for more")
    if seed is not None and not 0 <= seed < SEED_LIMIT:
        raise BenchError(f"--seed {seed}: must be in [0, 2^63), the range of a torch generator seed")
    device = torch.device("cpu")
    if which not in ("final", "best") and not (which.isdigit() and len(which) < 12):
        raise BenchError(f"--checkpoint {which!r}: final, best or the step of a kept checkpoint")
    variant, G, spec, step = load_generator(run, device, which)
    size = n * math.prod(spec.shape) * 4
    if size > MAX_BYTES:
        per_file = MAX_BYTES // (math.prod(spec.shape) * 4)
        raise BenchError(f"--n {n:,}: samples of shape {'x'.join(map(str, spec.shape))} would take "
                         f"{size / 2**30:.1f} GiB as float32, over the {MAX_BYTES // 2**30} GiB held in memory; "
                         f"ask for at most {per_file:,} per file, with different --seed for more")
    generator = torch.Generator().manual_seed(EVAL_SEED if seed is None else seed)
    z = variant.sample_z(n, device, generator=generator)
    labels = None
    if variant.conditional:
        if class_ is not None and not 0 <= class_ < spec.num_classes:
            raise BenchError(f"--class {class_}: this run has classes 0..{spec.num_classes - 1}")
        labels = (torch.full((n,), class_) if class_ is not None
                  else torch.randint(spec.num_classes, (n,), generator=generator))
    elif class_ is not None:
        raise BenchError(f"--class given but variant '{variant.name}' is unconditional; drop --class")
    x = generate(variant, G, z, labels)
    if spec.kind == "images":  # the data's own range: [0, 1] floats, N x C x H x W
        x, value_range = (x.clamp(-1, 1) + 1) / 2, np.array([0.0, 1.0])
    else:
        value_range = np.array([np.nan, np.nan])  # unbounded coordinates
    arrays = {"samples": x.numpy().astype(np.float32), "value_range": value_range,
              "step": np.array(step), "run_id": np.array(run.id)}
    if labels is not None:
        arrays["labels"] = labels.numpy()
    try:
        save_atomic(out_path, lambda tmp: _savez(tmp, arrays))
    except OSError as exc:
        raise BenchError(f"--out {out}: cannot write it ({exc.strerror or type(exc).__name__}); "
                         f"pick a writable folder with free space") from None
    return out_path


def _savez(path: str, arrays: dict) -> None:
    with open(path, "wb") as f:  # closed here, so a failed last write is an error, not lost in __del__
        np.savez(f, **arrays)
