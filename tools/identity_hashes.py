"""Fingerprints of a fixed set of short trainings, to show a refactor changed no number.

Trains the identity grids below through the CLI (so it runs on any version of the package), then
prints one line per run: run id, a hash of every (step, name, value) record and a hash of every
tensor in the final checkpoint (weights, optimizer states, RNG states). Two versions of the code
that print the same lines computed the same runs bit for bit.

    python tools/identity_hashes.py OUT_DIR > before.txt   # on the old commit
    python tools/identity_hashes.py OUT_DIR > after.txt    # on the new one; diff the two
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import torch

BASE = {"steps": 40, "batch_size": 16, "image_size": 16, "log_every": 10, "ckpt_every": 20,
        "eval_n": 200, "eval_every": 20, "device": "cpu", "dataset": "digits",
        "dcgan": {"width": 16}, "wgan": {"width": 16}, "wgan_gp": {"width": 16}, "cgan": {"width": 16}}
CONFIGS = {
    "mlp_ring": {"variant": "mlp_gan", "dataset": "ring8"},
    "mlp_digits": {"variant": "mlp_gan"},
    "dcgan": {"variant": "dcgan"},
    "dcgan_smooth": {"variant": "dcgan", "real_label": 0.9},
    "dcgan_soft_flip": {"variant": "dcgan", "real_range": [0.7, 1.2], "flip_p": 0.1},
    "dcgan_g2": {"variant": "dcgan", "g_steps": 2},
    "dcgan_cl": {"variant": "dcgan", "channels_last": True},
    "dcgan_amp": {"variant": "dcgan", "amp": True},
    "wgan": {"variant": "wgan"},
    "wgan_gp": {"variant": "wgan_gp"},
    "cgan": {"variant": "cgan"},
    "dcgan_uniform": {"variant": "dcgan", "z_dist": "uniform"},
}
WALL_CLOCK = {"sec_per_step"}  # records of how fast, not what: they differ between any two runs
PACKED = {"dcgan_pack": {"variant": "dcgan"}, "dcgan_pack_flip": {"variant": "dcgan", "flip_p": 0.1}}


def grid_file(folder: Path, name: str, configs: dict, seeds: int) -> Path:
    import yaml

    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "seeds": seeds, "base": BASE, "grid": {"cfg": configs}}))
    return path


def fingerprint(run: Path) -> str:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    values = sorted((r.get("step"), r.get("name"), repr(r.get("value"))) for r in records
                    if r.get("name") not in WALL_CLOCK)
    state = torch.load(run / "ckpt" / "latest.pt", weights_only=True, map_location="cpu")
    h = hashlib.sha256()

    def walk(obj, key=""):
        if isinstance(obj, torch.Tensor):
            h.update(key.encode())
            h.update(obj.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                     if obj.numel() else b"")
        elif isinstance(obj, dict):
            for k in sorted(obj, key=str):
                walk(obj[k], f"{key}/{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{key}/{i}")
        else:
            h.update(f"{key}={obj!r}".encode())

    walk(state)
    return f"{hashlib.sha256(repr(values).encode()).hexdigest()[:16]} {h.hexdigest()[:16]}"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results"
    runs = [(grid_file(out, "identity", CONFIGS, 1), []),
            (grid_file(out, "identity_pack", PACKED, 2), ["--pack", "2"])]
    for path, extra in runs:
        subprocess.run([sys.executable, "-m", "bench.cli", "run", str(path), "--results", str(results), *extra], check=True,
                       stdout=subprocess.DEVNULL)
    for run in sorted(p for p in results.glob("*/*") if (p / "config.yaml").exists()):
        print(run.parent.name, run.name, fingerprint(run))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
