"""The one training loop: the only place that calls backward(), zero_grad() and optimizer.step().

Every variant is trained here, so a comparison between variants never confounds the variant with
its loop. The hot path has no host sync: per-step losses go by slice assignment into a device
buffer that is copied to the host once every `log_every` steps (the flush), where non-finite
values are detected, records appended, and checkpoints written.

Runs that differ only in seed can be trained together as one batched model (`train_runs`, with
bench/packed.py): the step is the same code, the flush writes each run's own folder. Fast paths
(bf16 autocast, torch.compile, fused Adam, channels_last) are LoopConfig switches, and which one
actually ran is written to status.json as `fast_paths`.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Optional

import torch

from bench import checkpoint, packed, registry
from bench.config import RunConfig
from bench.data import DeviceData
from bench.device import pick_device, seed_everything
from bench.errors import BenchError
from bench.evaluation import Evaluator
from bench.runs import RunDir
from bench.samples import SampleWriter
from bench.variant import Batch

Progress = Callable[[int, int], None]  # (steps done, steps total), called at flushes
COMPILE_BACKEND = "inductor"  # tests on CPU use "aot_eager": the same graph capture, no C++ build


def train(run: RunDir, config: RunConfig, progress: Optional[Progress] = None, *,
          data: Optional[DeviceData] = None) -> str:
    """Train (or resume) one run to its last step; returns the final state: done or diverged.

    `data` stands in for the config's dataset (bench speed trains on synthetic images)."""
    return train_runs([run], [config], progress, data=data)[0]


def train_runs(runs: list[RunDir], configs: list[RunConfig], progress: Optional[Progress] = None, *,
               data: Optional[DeviceData] = None, pack_mode: str = "auto") -> list[str]:
    """Train runs whose configs differ only in seed; several are packed into one batched model
    (bench/packed.py) and each still gets its own folder and records. Returns each run's final state."""
    config = configs[0]
    _same_but_seed(configs)
    loop, options = config.loop, config.options
    device = pick_device(loop.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(loop.seed)
    data = data or registry.datasets.get(config.dataset).load(config.data, loop.image_size, device)
    variant = registry.variants.get(config.variant)(options, data.spec)
    variant.fused_optim = loop.fused_optim and device.type == "cuda"
    nhwc = loop.channels_last and data.spec.kind == "images" and len(runs) == 1
    group = packed.members(variant, data, [c.loop.seed for c in configs], device,
                           torch.channels_last if nhwc else None, pack_mode)
    G, D = group.G, group.D
    model, source = group.model, group.source  # the variant and data, or a pack's stand-ins for them
    opt_g, opt_d = model.optimizers(G, D)
    start = group.restore([r.checkpoint_file for r in runs], device, opt_g, opt_d)
    amp = torch.autocast(device.type, torch.bfloat16, enabled=loop.amp)  # losses are cast to float32
    B, n_d, n_g = loop.batch_size, options.d_steps, options.g_steps
    G_fast, D_fast, compiled = G, D, "off"
    if loop.compile:
        G_fast, D_fast, compiled = _compiled(G, D, model, source, B, device, amp) if group.size == 1 \
            else (G, D, "off (a pack runs eager)")
    paths = {"amp": "bf16" if loop.amp else "off", "compile": compiled, "fused_optim": variant.fused_optim,
             "channels_last": nhwc, **({"pack": group.record()} if group.size > 1 else {})}
    samples, evaluators = [], []
    for run, c in zip(runs, configs):
        run.truncate_metrics(start)  # records written after the checkpoint by a killed process
        samples.append(SampleWriter(run, variant, data, device))
        evaluators.append(Evaluator(run, c, variant, data, device))
        run.set_status("running", step=start, start_step=start, steps=loop.steps, started=time.time(),
                       data=data.info, fast_paths=paths)

    ended: list[Optional[str]] = [None] * len(runs)
    names: list[str] = []
    buf = torch.empty(0)
    window_start, t0 = start, time.perf_counter()
    for step in range(start, loop.steps):
        for _ in range(n_d):
            x, y = source.sample(B)
            with frozen(G):
                with amp:
                    loss_d, stats_d = model.d_loss(G_fast, D_fast, Batch(x, y), model.sample_z(B, device))
                opt_d.zero_grad(set_to_none=True)
                loss_d.sum().backward()  # a pack gives one loss per member; members share no parameter
            opt_d.step()
            model.after_d_step(D)
        for _ in range(n_g):
            x, y = source.sample(B)  # G needs labels (conditional variants); fresh z every G update
            with frozen(D):
                with amp:
                    loss_g, stats_g = model.g_loss(G_fast, D_fast, Batch(x, y), model.sample_z(B, device))
                opt_g.zero_grad(set_to_none=True)
                loss_g.sum().backward()
            opt_g.step()
        values = {"loss_d": loss_d.detach(), **stats_d, "loss_g": loss_g.detach(), **stats_g}
        row = torch.stack([value.float() for value in values.values()])  # [values] or [values, members]
        if not names:
            names = list(values)
            buf = torch.empty(loop.log_every, *row.shape, device=device)
        buf[step - window_start] = row

        done = step + 1
        if done % loop.log_every and done != loop.steps:
            continue
        # ---- flush: the one host sync of the loop
        n = done - window_start
        rows = buf[:n].cpu().reshape(n, len(names), -1)  # sync point; steps x values x members
        seconds = time.perf_counter() - t0
        for k, run in enumerate(runs):
            if ended[k]:
                continue
            mine = rows[:, :, k]
            finite = torch.isfinite(mine).all(dim=1)
            if not finite.all():
                bad_step = window_start + int((~finite).nonzero()[0, 0]) + 1
                run.append_metrics(_records(names, mine[finite], bad_step, seconds, n, B * n_d))
                run.set_status("diverged", step=bad_step, finished=time.time(),
                               reason=f"non-finite loss at step {bad_step}")
                ended[k] = "diverged"  # a pack trains on; this member's slice is no longer recorded
                continue
            run.append_metrics(_records(names, mine, done, seconds, n, B * n_d))
            G_k, D_k = group.nets(k)
            if loop.sample_every and done % loop.sample_every == 0 and done != loop.steps:
                samples[k].write(G_k, done)
            evaluators[k].at_flush(G_k, done)
            if done % loop.ckpt_every == 0 or done == loop.steps:
                group.save(k, run.checkpoint_file, step=done, G=G_k, D=D_k, opt_g=opt_g, opt_d=opt_d,
                           extra={"spec": spec_record(data.spec)})
            run.set_status("running", step=done)
        if all(ended):
            return list(ended)
        if progress:
            progress(done, loop.steps)
        window_start, t0 = done, time.perf_counter()

    for k, run in enumerate(runs):
        if not ended[k]:
            G_k, _ = group.nets(k)
            samples[k].write(G_k, loop.steps)
            evaluators[k].final(G_k, loop.steps)
            run.set_status("done", step=loop.steps, finished=time.time())
            ended[k] = "done"
    return list(ended)


@contextlib.contextmanager
def frozen(net: torch.nn.Module):
    """The net not being updated, without gradients: backward skips its weight gradients, which its next
    zero_grad would throw away. Freezing D in G's step saves about half of D's backward there; freezing
    G in D's step saves nothing where a variant draws its fakes under no_grad, and guards one that doesn't."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def _same_but_seed(configs: list[RunConfig]) -> None:
    def rest(c: RunConfig) -> dict:
        return {k: v for k, v in c.flat().items() if k != "seed"}
    if any(rest(c) != rest(configs[0]) for c in configs[1:]):
        raise BenchError("runs trained as one pack must differ only in seed")


def _compiled(G, D, model, source, B: int, device: torch.device, amp):
    """torch.compile'd G and D for the hot path, or the eager ones and why compiling failed.

    One D and one G update (forward and backward, no optimizer step) run on the compiled nets before
    training, then gradients, BN buffers and every RNG are put back: a graph that cannot be trained
    (WGAN-GP's penalty needs a double backward, which compiled graphs do not support) falls back to
    eager here, never mid-run. The graphs compiled here are the ones training uses.
    """
    G_c, D_c = torch.compile(G, backend=COMPILE_BACKEND), torch.compile(D, backend=COMPILE_BACKEND)
    rng = checkpoint.rng_state()
    buffers = [{name: b.clone() for name, b in net.named_buffers()} for net in (G, D)]
    try:
        for loss_fn, other in ((model.d_loss, G), (model.g_loss, D)):
            x, y = source.sample(B)
            with frozen(other):  # as in training, so both graphs compile here
                with amp:
                    loss, _ = loss_fn(G_c, D_c, Batch(x, y), model.sample_z(B, device))
                loss.sum().backward()
        return G_c, D_c, "on"
    except Exception as exc:  # noqa: BLE001 - recorded in status.json; the run trains eager
        first = str(exc).splitlines()[0] if str(exc) else ""
        return G, D, f"eager ({type(exc).__name__}: {first})"[:200]
    finally:
        with torch.no_grad():
            for net, saved in zip((G, D), buffers):
                net.zero_grad(set_to_none=True)
                for name, b in net.named_buffers():
                    b.copy_(saved[name])
        checkpoint.set_rng_state(rng)


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
