"""Timing the shared loop: synthetic images, a throwaway results folder, the loop's own timings.

The shared loop is timed by what it records itself: every flush writes `sec_per_step` for its window
(from the end of the previous flush to the host copy of the loss buffer, which waits for the device).
The first window is warm-up (cuDNN autotuning, allocator growth) and is dropped; the flush work
(records, status) is outside the windows, as a checkpoint write is. Timed runs are ordinary runs of
`train_runs` with evaluation off, so every fast path is measured in the loop that trains the grids.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from bench import registry
from bench.config.schema import LoopConfig, RunConfig, resolve
from bench.datasets.core import DataSpec, ImageData
from bench.errors import BenchError
from bench.train.device import pick_device
from bench.train.loop import train_runs
from bench.store.runs import RunDir

FAST_PATHS = ("channels_last", "amp", "compile", "fused_optim")  # LoopConfig switches, in table order
CLASSES = 10  # synthetic labels, so conditional variants can be timed too


def synthetic_images(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n uniform-noise uint8 RGB images and labels on the host: speed does not depend on content."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
            torch.randint(0, CLASSES, (n,), generator=g))


def device_data(images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> ImageData:
    size = images.shape[-1]
    spec = DataSpec((3, size, size), CLASSES, tuple(f"class{i}" for i in range(CLASSES)))
    info = {"name": "synthetic", "images": len(images), "classes": CLASSES, "split": "none",
            "fingerprint": "synthetic-uniform-uint8", "ref_fingerprint": "synthetic-uniform-uint8"}
    return ImageData(images, labels, spec, info, device)


@dataclass
class LoopResult:
    variant: str
    seeds: int  # runs trained together (1: a single run)
    images_per_s: float  # real images per second, summed over the packed runs
    sec_per_step: float  # one loop step of all packed runs together
    peak_bytes: int  # CUDA peak allocation; 0 on CPU
    paths: dict[str, Any] = field(default_factory=dict)  # status.json fast_paths: what actually ran
    syncs: Optional[int] = None  # host syncs seen by the CUDA sync debug mode (whole run, flushes included)
    steps: int = 0  # timed steps
    flushes: int = 0  # flushes of the whole run


def loop_config(variant: str, size: int, batch: int, device: str, steps: int, warmup: int, seed: int,
                paths: dict[str, bool], dataset: Optional[str] = None) -> RunConfig:
    """A run of warmup + steps loop steps, flushing every `warmup` steps, evaluation off."""
    images = [n for n in registry.datasets.names() if registry.datasets.get(n).kind == "images"]
    total = warmup + steps
    raw = {"variant": variant, "dataset": dataset or images[0],  # placeholder: the loop gets synthetic images
           "image_size": size, "batch_size": batch, "steps": total, "log_every": warmup,
           "ckpt_every": warmup * math.ceil(total / warmup), "eval_every": -1, "sample_every": 0,
           "seed": seed, "device": device, **paths}
    return resolve(raw, where="bench speed")


@contextlib.contextmanager
def count_syncs(enabled: bool):
    """Counts the host syncs the CUDA sync debug mode reports inside the block (box[0] after exit)."""
    box = [None]
    if not enabled:
        yield box
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield box
        finally:
            torch.cuda.set_sync_debug_mode("default")
            box[0] = sum("synchroniz" in str(w.message).lower() for w in caught)


def measure_loop(variant: str, images: torch.Tensor, labels: torch.Tensor, batch: int, device: str,
                 steps: int, warmup: int, paths: dict[str, bool], seeds: int = 1, sync_check: bool = False,
                 pack_mode: str = "auto") -> LoopResult:
    """Train `seeds` runs (packed when more than one) and read back their own timings."""
    dev = pick_device(device)
    data = device_data(images, labels, dev)
    configs = [loop_config(variant, images.shape[-1], batch, device, steps, warmup, s, paths) for s in range(seeds)]
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        runs = [RunDir(tmp, "speed", c.run_id) for c in configs]
        for run, config in zip(runs, configs):
            run.write_config(config.flat())
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        with count_syncs(sync_check and dev.type == "cuda") as syncs:
            states = train_runs(runs, configs, data=data, pack_mode=pack_mode)
        status = runs[0].status()
        if states[0] != "done":
            raise BenchError(f"bench speed: the {variant} run ended {states[0]} "
                             f"({status.get('reason', 'no reason recorded')}); try fewer --steps")
        windows = [r for r in runs[0].read_metrics() if r["name"] == "sec_per_step"]
    timed = windows[1:] or windows
    n = sum(w["window"] for w in timed)
    seconds = sum(w["value"] * w["window"] for w in timed)
    per_step = configs[0].options.d_steps * batch
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
    return LoopResult(variant, seeds, seeds * per_step * n / seconds, seconds / n, peak,
                      status.get("fast_paths", {}), syncs[0], n, len(windows))


@dataclass
class EvalCost:
    dataset: str
    family: str  # which feature space the curve uses: domain (built-in judge), natural (Inception), points
    n: int  # generated samples per curve evaluation
    seconds: float  # one curve evaluation, reference statistics already cached
    first_seconds: float  # the first one, which also extracts and caches the reference statistics
    metrics: list[str]  # values it wrote
    skipped: list[str]  # curve metrics that could not run here (no Inception weights offline, say)
    evals_per_run: int  # curve evaluations of a run of `run_steps` with the auto schedule
    run_steps: int


def measure_eval(variant: str, dataset: str, size: int, batch: int, device: str) -> EvalCost:
    """Time of one in-training (curve) evaluation of a fresh G on `dataset`, as a run's Evaluator does it."""
    from bench.metrics.evaluator import eval_steps
    from bench.metrics.context import EvalContext
    from bench.metrics.suite import CURVE, run_protocol, selected

    config = loop_config(variant, size, batch, device, 1, 1, 0, {}, dataset=dataset)
    dev = pick_device(device)
    data = registry.datasets.get(dataset).load(config.data, size, dev)
    model = registry.variants.get(variant)(config.options, data.spec)
    G, _ = model.build()
    ctx = EvalContext(config, data, model, dev)
    n = config.loop.eval_n or None
    times, ran = [], {}
    for _ in range(2):  # the first pass fits and caches the reference side; training pays it once per run
        t0 = time.perf_counter()
        values = run_protocol(ctx, G.to(dev), CURVE, n=n, timings=ran)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    defaults = LoopConfig()  # a grid run's schedule: the default steps, auto evaluation
    counts = [v.params["n_gen"] for v in values if "n_gen" in v.params]
    return EvalCost(dataset, ctx.family, int(max(counts, default=n or 0)), times[1], times[0],
                    sorted({v.name for v in values}), [m.name for m in selected(ctx, CURVE) if m.name not in ran],
                    len(eval_steps(defaults)), defaults.steps)
