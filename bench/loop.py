"""The one training loop: the only place that calls backward(), zero_grad() and optimizer.step().

Every variant is trained here, so a comparison between variants never confounds the variant with
its loop. The hot path has no host sync: per-step losses go by slice assignment into a device
buffer that is copied to the host once every `log_every` steps (the flush), where non-finite
values are detected, records appended, and checkpoints written.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Optional

import numpy as np
import torch

from bench import checkpoint, registry
from bench.config import RunConfig
from bench.evaluation import Evaluator
from bench.runs import RunDir
from bench.samples import SampleWriter
from bench.variant import Batch

Progress = Callable[[int, int], None]  # (steps done, steps total), called at flushes


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        from bench.errors import BenchError
        raise BenchError(f"device {name!r} asked for but CUDA is not available; use --set device=cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def train(run: RunDir, config: RunConfig, progress: Optional[Progress] = None) -> str:
    """Train (or resume) one run to its last step; returns the final state: done or diverged."""
    loop, options = config.loop, config.options
    device = pick_device(loop.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(loop.seed)
    data = registry.datasets.get(config.dataset).load(config.data, loop.image_size, device)
    variant = registry.variants.get(config.variant)(options, data.spec)
    G, D = variant.build()
    memory_format = torch.channels_last if loop.channels_last and data.spec.kind == "images" else torch.preserve_format
    G, D = G.to(device, memory_format=memory_format), D.to(device, memory_format=memory_format)
    opt_g, opt_d = variant.optimizers(G, D)
    start, _ = checkpoint.restore(run.checkpoint_file, device, G=G, D=D, opt_g=opt_g, opt_d=opt_d)
    run.truncate_metrics(start)  # records written after the checkpoint by a killed process
    samples = SampleWriter(run, variant, data, device)
    evaluator = Evaluator(run, config, variant, data, device)
    run.set_status("running", step=start, start_step=start, steps=loop.steps, started=time.time(), data=data.info)

    B, n_d, n_g = loop.batch_size, options.d_steps, options.g_steps
    names: list[str] = []
    buf = torch.empty(0)
    window_start, t0 = start, time.perf_counter()
    for step in range(start, loop.steps):
        for _ in range(n_d):
            x, y = data.sample(B)
            loss_d, stats_d = variant.d_loss(G, D, Batch(x, y), variant.sample_z(B, device))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            variant.after_d_step(D)
        for _ in range(n_g):
            x, y = data.sample(B)  # G needs labels (conditional variants); fresh z every G update
            loss_g, stats_g = variant.g_loss(G, D, Batch(x, y), variant.sample_z(B, device))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        values = {"loss_d": loss_d.detach(), **stats_d, "loss_g": loss_g.detach(), **stats_g}
        if not names:
            names = list(values)
            buf = torch.empty(loop.log_every, len(names), device=device)
        buf[step - window_start] = torch.stack([v.float() for v in values.values()])

        done = step + 1
        if done % loop.log_every and done != loop.steps:
            continue
        # ---- flush: the one host sync of the loop
        rows = buf[: done - window_start].cpu()  # sync point
        seconds = time.perf_counter() - t0
        finite = torch.isfinite(rows).all(dim=1)
        if not finite.all():
            bad_step = window_start + int((~finite).nonzero()[0, 0]) + 1
            run.append_metrics(_records(names, rows[finite], bad_step, seconds, done - window_start, B * n_d))
            run.set_status("diverged", step=bad_step, finished=time.time(),
                           reason=f"non-finite loss at step {bad_step}")
            return "diverged"
        run.append_metrics(_records(names, rows, done, seconds, done - window_start, B * n_d))
        if loop.sample_every and done % loop.sample_every == 0 and done != loop.steps:
            samples.write(G, done)
        evaluator.at_flush(G, done)
        if done % loop.ckpt_every == 0 or done == loop.steps:
            checkpoint.save(run.checkpoint_file, step=done, G=G, D=D, opt_g=opt_g, opt_d=opt_d,
                            extra={"spec": spec_record(data.spec)})
        run.set_status("running", step=done)
        if progress:
            progress(done, loop.steps)
        window_start, t0 = done, time.perf_counter()

    samples.write(G, loop.steps)
    evaluator.final(G, loop.steps)
    run.set_status("done", step=loop.steps, finished=time.time())
    return "done"


def spec_record(spec) -> dict:
    """The data spec as plain containers, so `bench sample` can rebuild G without the dataset."""
    return {"shape": list(spec.shape), "num_classes": spec.num_classes, "class_names": list(spec.class_names)}


def _records(names, rows, step, seconds, n_steps, images_per_step):
    """Window means of the per-step values, each saying how it was measured."""
    means = rows.double().mean(dim=0).tolist() if len(rows) else [float("nan")] * len(names)
    how = {"step": step, "kind": "train", "agg": "window_mean", "window": len(rows)}
    records = [{**how, "name": name, "value": value} for name, value in zip(names, means)]
    records.append({**how, "name": "sec_per_step", "value": seconds / max(n_steps, 1)})
    records.append({**how, "name": "real_images_seen", "value": step * images_per_step})
    return records
