"""`bench sample`: a run's generator to an .npz any tool can score, without the training data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench import checkpoint, registry
from bench.config import resolve
from bench.data import DataSpec
from bench.errors import BenchError
from bench.runs import RunDir, save_atomic
from bench.samples import EVAL_SEED, generate


def load_generator(run: RunDir, device: torch.device):
    """(variant, G in eval mode, spec) from the run's last checkpoint."""
    config = resolve(run.read_config(), where=str(run.config_file))
    if not run.checkpoint_file.exists():
        raise BenchError(f"{run.path} has no checkpoint yet; train it with bench run first")
    state = checkpoint.load(run.checkpoint_file, device)
    spec_fields = state.get("extra", {}).get("spec")
    if not spec_fields:
        raise BenchError(f"{run.checkpoint_file} has no data spec; retrain the run")
    spec = DataSpec(tuple(spec_fields["shape"]), spec_fields["num_classes"], tuple(spec_fields["class_names"]))
    variant = registry.variants.get(config.variant)(config.options, spec)
    G, _ = variant.build()
    G.load_state_dict(state["G"])
    return variant, G.to(device).eval(), spec, int(state["step"])


def sample_run(run_dir: str, n: int, out: str, class_: int | None, seed: int | None) -> Path:
    run = RunDir.open(run_dir)
    out_path = Path(out)
    if out_path.suffix != ".npz":
        raise BenchError(f"--out {out}: the file name must end in .npz")
    device = torch.device("cpu")
    variant, G, spec, step = load_generator(run, device)
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
    save_atomic(out_path, lambda tmp: np.savez(open(tmp, "wb"), **arrays))
    return out_path
