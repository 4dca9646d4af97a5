"""Synthetic result folders in the run-store layout, for report tests and the speed check.

No training: each run gets a config.yaml, a status.json, a metrics.jsonl with loss windows, curve
evaluations (FD@2k, modes covered) and a final FD@10k, and a small sample PNG. Some runs collapse
(modes drop for good), some diverge (non-finite loss in status.json), the rest are stable, so every
detector has something to find. `python -m bench.report.synthetic OUT --runs 1000 --evals 50`.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import yaml

from bench.report.load import config_id

PROTO = {"ref_dataset": "ring8", "ref_split": "train", "ref_fingerprint": "ab12cd34", "eval_seed": 0,
         "library": "gan-bench==0.1.0", "image_size": 16, "checkpoint": "final"}


def png_bytes(pixels: np.ndarray) -> bytes:
    """A grayscale 8-bit PNG from a uint8 array, written by hand so this module needs no imaging library."""
    h, w = pixels.shape
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def write_run(grid_dir: Path, config: dict, state: str, records: list[dict], step: int, reason: str = "") -> Path:
    """One run folder; its id is the config hash with the seed, as the real store does it."""
    rid = config_id(config)[:6] + f"{config.get('seed', 0):06d}"
    path = grid_dir / rid
    (path / "samples").mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
    status = {"state": state, "step": step, **({"reason": reason} if reason else {})}
    (path / "status.json").write_text(json.dumps(status))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def curve_record(step: int, name: str, value, label: str, higher: bool, kind: str = "curve", **proto) -> dict:
    return {"step": step, "name": name, "value": value, "kind": kind, "label": label,
            "protocol": {**PROTO, "seed": proto.pop("seed", 0), "n_gen": 2000, **proto}, "higher_is_better": higher}


def train_records(step: int, loss_d: float, loss_g: float) -> list[dict]:
    how = {"step": step, "kind": "train", "agg": "window_mean", "window": 50}
    return [{**how, "name": "loss_d", "value": loss_d}, {**how, "name": "loss_g", "value": loss_g},
            {**how, "name": "sec_per_step", "value": 0.01}]


def make_grid(root: Path, name: str = "synth", configs: int = 200, seeds: int = 5, evals: int = 50,
              collapse_every: int = 7, diverge_every: int = 11, rng_seed: int = 0) -> Path:
    """configs x seeds runs over (variant, lr, real_label); every 7th run collapses, every 11th diverges."""
    rng = np.random.default_rng(rng_seed)
    grid_dir = Path(root) / name
    grid_dir.mkdir(parents=True, exist_ok=True)
    variants = ["dcgan", "wgan", "lsgan", "hinge"]
    lrs = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3]
    labels = [round(1.0 - 0.01 * i, 2) for i in range(max(1, -(-configs // (len(variants) * len(lrs)))))]
    axes = {"variant": variants, "lr": lrs, "real_label": labels}
    (grid_dir / "grid.yaml").write_text(yaml.safe_dump({"name": name, "seeds": seeds, "grid": axes}, sort_keys=False))
    steps = np.arange(1, evals + 1) * 100
    image = png_bytes((rng.random((32, 32)) * 255).astype(np.uint8))
    k = 0
    for c in range(configs):
        v, lr, rl = variants[c % 4], lrs[(c // 4) % 5], labels[c // 20 % len(labels)]
        quality = 1.0 + 0.3 * (c % 4)
        for seed in range(seeds):
            k += 1
            cfg = {"variant": v, "dataset": "ring8", "lr": lr, "real_label": rl, "seed": seed, "steps": int(steps[-1]),
                   "device": "auto"}
            collapse = k % collapse_every == 0
            diverge = not collapse and k % diverge_every == 0
            last = len(steps) if not diverge else len(steps) * 2 // 3
            recs: list[dict] = []
            for i, s in enumerate(steps[:last]):
                late = collapse and i >= len(steps) // 2
                fd = 250 / (1 + 0.5 * i) * quality + rng.normal(0, 2) + (60 if late else 0)
                modes = 8.0 if i > 3 and not late else (2.0 if late else 4.0 + i)
                recs += train_records(int(s), 0.01 if late else 1.2 + rng.normal(0, 0.05), 1.0 + (0.2 * i if late else 0))
                recs.append(curve_record(int(s), "fd", float(fd), "FD@2k/train/ring8-mlp", False, seed=seed))
                recs.append(curve_record(int(s), "modes_covered", modes, "modes@2500", True, seed=seed))
            if diverge:
                write_run(grid_dir, cfg, "diverged", recs, int(steps[last - 1]) + 1, "non-finite loss")
                continue
            recs.append(curve_record(int(steps[-1]), "fd", float(recs[-2]["value"]) * 0.9, "FD@10k/train/ring8-mlp",
                                     False, kind="final", seed=seed, n_gen=10000))
            path = write_run(grid_dir, cfg, "done", recs, int(steps[-1]))
            (path / "samples" / f"step-{int(steps[-1]):07d}.png").write_bytes(image)
    return grid_dir


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--evals", type=int, default=50)
    ap.add_argument("--name", default="synth")
    a = ap.parse_args()
    print(make_grid(Path(a.out), a.name, configs=a.runs // a.seeds, seeds=a.seeds, evals=a.evals), file=sys.stderr)


LABELS_AXIS = {"off": {"real_label": 1.0, "fake_label": 0.0}, "one_sided": {"real_label": 0.9, "fake_label": 0.0},
               "two_sided": {"real_label": 0.9, "fake_label": 0.1}}
MODES = {"ring8": 8, "grid25": 25}


def make_planted(root: Path, name: str = "planted", axis: str = "labels", values: dict | list | None = None,
                 datasets: tuple[str, ...] = ("ring8",), better: tuple = ("one_sided",), seeds: int = 5, evals: int = 6,
                 no_hq: tuple = (), stuck: tuple = (), steps_per_eval: int = 100) -> Path:
    """A 2-D mixture grid whose answer is known: configurations named in `better` cover every mode
    with a high HQ fraction and low KL, the others sit clearly lower; every seed of a configuration
    is close to the others, so 5 seeds separate the two groups completely.

    values: the axis as the grid file writes it (a mapping of named bundles, or a list); datasets
    becomes a first `dataset` axis when there are several. no_hq: (value name, seed) pairs whose
    final evaluation has no high-quality sample (KL NaN); stuck: value names whose runs cover one
    mode from the first evaluation to the last.
    """
    rng = np.random.default_rng(1)
    values = LABELS_AXIS if values is None else values
    named = isinstance(values, dict)
    items = list(values.items()) if named else [(str(v), v) for v in values]
    grid_dir = Path(root) / name
    grid_dir.mkdir(parents=True, exist_ok=True)
    axes: dict = {"dataset": list(datasets)} if len(datasets) > 1 else {}
    axes[axis] = values
    base = {"variant": "mlp_gan", "steps": steps_per_eval * evals}
    if len(datasets) == 1:
        base["dataset"] = datasets[0]
    (grid_dir / "grid.yaml").write_text(yaml.safe_dump({"name": name, "description": "planted answer",
                                                        "seeds": seeds, "base": base, "grid": axes}, sort_keys=False))
    image = png_bytes((rng.random((16, 16)) * 255).astype(np.uint8))
    steps = [steps_per_eval * (i + 1) for i in range(evals)]
    for dataset in datasets:
        k = MODES.get(dataset, 8)
        proto = {"ref_dataset": dataset, "modes": k, "mode_std": 0.01, "hq_sigmas": 3, "n_gen": 2500}
        for vname, value in items:
            setting = value if isinstance(value, dict) else {axis: value}
            good = vname in better
            for seed in range(seeds):
                cfg = {"variant": "mlp_gan", "dataset": dataset, "steps": steps[-1], "seed": seed, "device": "cpu",
                       **setting}
                recs: list[dict] = []
                for i, s in enumerate(steps):
                    frac = (i + 1) / evals
                    if vname in stuck:
                        modes, hq, kl = 1.0, 0.2, float(np.log(k))
                    else:
                        modes = float(round((k if good else 0.75 * k) * min(1.0, 0.5 + frac)))
                        hq = (0.9 if good else 0.6) * frac + rng.normal(0, 0.005)
                        kl = (0.05 if good else 0.3) + 0.4 * (1 - frac) + rng.normal(0, 0.005)
                    last = i == evals - 1
                    if last and (vname, seed) in no_hq:
                        hq, kl = 0.0, None
                    recs += train_records(s, 1.2 + rng.normal(0, 0.02), 1.0 + rng.normal(0, 0.02))
                    kinds = ("curve", "final") if last else ("curve",)
                    for kind in kinds:
                        recs.append(curve_record(s, "modes_covered", modes, "modes@2500", True, kind=kind, seed=seed, **proto))
                        recs.append(curve_record(s, "hq_fraction", hq, "HQ@2500", True, kind=kind, seed=seed, **proto))
                        recs.append(curve_record(s, "kl_modes", kl, "KL-modes@2500", False, kind=kind, seed=seed, **proto))
                path = write_run(grid_dir, cfg, "done", recs, steps[-1])
                (path / "samples" / f"step-{steps[-1]:07d}.png").write_bytes(image)
    return grid_dir
