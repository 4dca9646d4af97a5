"""The one training loop: the only place that calls backward(), zero_grad() and optimizer.step().

Every variant is trained here, so a comparison between variants never confounds the variant with
its loop. A step runs the phases in order, D then G, each a plain record (which net, which optimizer,
which loss, how many repeats, what runs after each update), as StyleGAN3's training loop does. The
hot path has no host sync: per-step losses and each phase's global gradient norm (grad_norm_d,
grad_norm_g: after backward, before the step; per member in a pack) go by slice assignment into a device buffer that is
copied to the host once every `log_every` steps (the flush), where non-finite values are detected,
records appended, and checkpoints written.

Runs that differ only in seed can be trained together as one batched model (`train_runs`, with
bench/train/packed.py): the step is the same code, the flush writes each run's own folder. Fast paths
(bf16 autocast, torch.compile, fused Adam, channels_last) are LoopConfig switches, and which one
actually ran, read off the nets and optimizers rather than the config, is written to status.json
as `fast_paths`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from bench.store import checkpoint

from bench.train import packed

from bench import registry
from bench.config.schema import LoopConfig, RunConfig
from bench.datasets.core import DeviceData
from bench.train.device import channels_last_ran, fused_ran, pick_device, precision_ran, seed_everything
from bench.errors import BenchError
from bench.metrics.evaluator import Evaluator
from bench.store.runs import RunDir
from bench.train.samples import SampleWriter
from bench.variant import Batch

Progress = Callable[[int, int], None]  # (steps done, steps total), called at the start and at flushes
COMPILE_BACKEND = "inductor"  # tests on CPU use "aot_eager": the same graph capture, no C++ build
Entry = tuple[str, str, Tensor]  # (phase, name, value) of one step's loss or stat


def _no_hook(net: nn.Module) -> None:
    pass


@dataclass(frozen=True)
class Phase:
    """One kind of update in a loop step, run `repeats` times on a fresh batch and fresh z each time."""

    # "d" or "g": the phase's loss is recorded as loss_<name>; its stats keep their own names, except
    # one that both phases report, which becomes <name>.<stat> in each (record_names)
    name: str
    net: nn.Module  # the net this phase updates
    other: nn.Module  # the net held frozen meanwhile (see frozen)
    opt: torch.optim.Optimizer
    loss: Callable  # the variant's d_loss or g_loss: (G, D, batch, z) -> (loss, stats)
    repeats: int  # d_steps or g_steps
    after_step: Callable[[nn.Module], None] = _no_hook  # run on `net` after each update (WGAN clips D)


@dataclass
class Training:
    """What train_runs sets up once and every step and flush reads."""

    runs: list[RunDir]
    loop: LoopConfig
    data: DeviceData
    device: torch.device
    group: packed.Members
    phases: tuple[Phase, ...]
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    G: nn.Module  # what the losses call: the compiled nets, or the group's own
    D: nn.Module
    amp: torch.autocast
    start: int
    images_per_step: int  # real images one step draws for D (the real_images_seen record)
    samples: list[SampleWriter] = field(default_factory=list)
    evaluators: list[Evaluator] = field(default_factory=list)
    events: list = field(default_factory=list)  # bench.train.tensorboard.EventLog per run, when log_tensorboard


def train(run: RunDir, config: RunConfig, progress: Optional[Progress] = None, *,
          data: Optional[DeviceData] = None) -> str:
    """Train (or resume) one run to its last step; returns the final state: done or diverged.

    `data` stands in for the config's dataset (bench speed trains on synthetic images)."""
    return train_runs([run], [config], progress, data=data)[0]


def train_runs(runs: list[RunDir], configs: list[RunConfig], progress: Optional[Progress] = None, *,
               data: Optional[DeviceData] = None, pack_mode: str = "auto") -> list[str]:
    """Train runs whose configs differ only in seed; several are packed into one batched model
    (bench/train/packed.py) and each still gets its own folder and records. Returns each run's final state."""
    _same_but_seed(configs)
    t = _setup(runs, configs, data, pack_mode)
    loop = t.loop
    ended: list[Optional[str]] = [None] * len(runs)
    window = Window(loop.log_every, t.device)
    window_start, t0 = t.start, time.perf_counter()
    if progress:
        progress(t.start, loop.steps)  # where and when training starts: host ints, no sync
    for step in range(t.start, loop.steps):
        window.put(step - window_start, _step(t))
        done = step + 1
        if done % loop.log_every and done != loop.steps:
            continue
        rows = window.rows(done - window_start)  # sync point: the one host copy of the loop
        _flush(t, rows, window.names, done, time.perf_counter() - t0, ended)
        if all(ended):
            _close_events(t)
            return list(ended)
        if progress:
            progress(done, loop.steps)
        window_start, t0 = done, time.perf_counter()
    _finish(t, ended)
    return list(ended)


# ---- the step


def _step(t: Training) -> list[Entry]:
    """Every phase in order; each one's loss and the stats of its last repeat, detached, on the device."""
    entries: list[Entry] = []
    for phase in t.phases:
        loss, stats, grad_norm = _run_phase(t, phase)
        entries.append((phase.name, f"loss_{phase.name}", loss.detach()))
        entries.append((phase.name, f"grad_norm_{phase.name}", grad_norm))
        entries += [(phase.name, name, value) for name, value in stats.items()]
    return entries


def _run_phase(t: Training, phase: Phase) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """The phase's updates; its last loss and stats, and the mean over its updates of the gradient norm."""
    B = t.loop.batch_size
    grad_norm = torch.zeros((), device=t.device)
    for _ in range(phase.repeats):
        x, y = t.group.source.sample(B)  # labels too: G's step needs them for conditional variants
        with frozen(phase.other):
            with t.amp:
                loss, stats = phase.loss(t.G, t.D, Batch(x, y), t.group.model.sample_z(B, t.device))
            phase.opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # a pack gives one loss per member; members share no parameter
        grad_norm = grad_norm + grad_norm_of(phase.net, t.group.size)
        phase.opt.step()
        phase.after_step(phase.net)
    return loss, stats, grad_norm / phase.repeats


def grad_norm_of(net: nn.Module, members: int) -> Tensor:
    """Global L2 norm of the net's gradients, on the device: [] for one run, [K] for a pack, whose
    stacked [K, ...] gradients give each member the norm over its own slices."""
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:  # a net the loss did not reach
        device = next(net.parameters()).device
        return torch.zeros(members, device=device) if members > 1 else torch.zeros((), device=device)
    if members == 1:
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())
    per_tensor = torch.stack([torch.linalg.vector_norm(g.reshape(members, -1).float(), dim=1) for g in grads])
    return torch.linalg.vector_norm(per_tensor, dim=0)


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


class Window:
    """One log window of per-step values in a device buffer, a row per step, copied to the host once."""

    def __init__(self, size: int, device: torch.device):
        self.size, self.device = size, device
        self.names: list[str] = []
        self.buf = torch.empty(0)

    def put(self, i: int, entries: list[Entry]) -> None:
        row = torch.stack([value.float() for _, _, value in entries])  # [values] or [values, members]
        if not self.names:
            self.names = record_names([(phase, name) for phase, name, _ in entries])
            self.buf = torch.empty(self.size, *row.shape, device=self.device)
        self.buf[i] = row

    def rows(self, n: int) -> Tensor:
        return self.buf[:n].cpu().reshape(n, len(self.names), -1)  # sync point; steps x values x members


def record_names(keys: list[tuple[str, str]]) -> list[str]:
    """Record names of (phase, name) pairs: the name itself (loss_d, d_real, gp), so metrics.jsonl reads
    as it always has; a name two phases share is kept apart as <phase>.<name> in each."""
    counts: dict[str, int] = {}
    for _, name in keys:
        counts[name] = counts.get(name, 0) + 1
    names = [f"{phase}.{name}" if counts[name] > 1 else name for phase, name in keys]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise BenchError(f"a loss returns the stat {twice[0]!r} twice or under the loop's own name for the "
                         f"loss; rename it in the variant")
    return names


# ---- setup


def _setup(runs: list[RunDir], configs: list[RunConfig], data: Optional[DeviceData], pack_mode: str) -> Training:
    """Nets, optimizers, phases and fast paths, resumed from the runs' checkpoints; each run marked running."""
    config = configs[0]
    loop, options = config.loop, config.options
    device = pick_device(loop.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(loop.seed)
    data = data or registry.datasets.get(config.dataset).load(config.data, loop.image_size, device)
    variant = registry.variants.get(config.variant)(options, data.spec)
    nhwc = loop.channels_last and data.spec.kind == "images" and len(runs) == 1
    group = packed.members(variant, data, [c.loop.seed for c in configs], device,
                           torch.channels_last if nhwc else None, pack_mode)
    model = group.model
    opt_g, opt_d = model.optimizers(group.G, group.D, fused=loop.fused_optim and device.type == "cuda")
    start = group.restore([r.checkpoint_file for r in runs], device, opt_g, opt_d)
    amp = torch.autocast(device.type, torch.bfloat16, enabled=loop.amp)  # losses are cast to float32
    phases = (Phase("d", group.D, group.G, opt_d, model.d_loss, options.d_steps, model.after_d_step),
              Phase("g", group.G, group.D, opt_g, model.g_loss, options.g_steps))
    precision = precision_ran(group.D if group.size == 1 else group.nets(0)[1], variant, data.spec, device, amp)
    G, D, compiled = group.G, group.D, "off"
    if loop.compile:
        G, D, compiled = _compiled(group, phases, loop.batch_size, device, amp) if group.size == 1 \
            else (G, D, "off (a pack runs eager)")
    t = Training(runs=runs, loop=loop, data=data, device=device, group=group, phases=phases, opt_g=opt_g,
                 opt_d=opt_d, G=G, D=D, amp=amp, start=start, images_per_step=loop.batch_size * options.d_steps)
    paths = {"amp": precision, "compile": compiled, "fused_optim": fused_ran(opt_g, opt_d),
             "channels_last": channels_last_ran(group.G, group.D),
             **({"pack": group.record()} if group.size > 1 else {})}
    _open_runs(t, configs, variant, paths)
    if loop.log_tensorboard:
        from bench.train.tensorboard import EventLog

        t.events = [EventLog(run.path) for run in runs]
    return t


def _open_runs(t: Training, configs: list[RunConfig], variant, paths: dict) -> None:
    for run, c in zip(t.runs, configs):
        checkpoint.remove_partial_writes(run.path)  # temporary files of writes a kill interrupted
        run.truncate_metrics(t.start)  # records written after the checkpoint by a killed process
        t.samples.append(SampleWriter(run, variant, t.data, t.device))
        t.evaluators.append(Evaluator(run, c, variant, t.data, t.device))
        # threads: float sums, and so a run's numbers, depend on the CPU thread count (docs/protocols.md §12)
        run.set_status("running", step=t.start, start_step=t.start, steps=t.loop.steps, started=time.time(),
                       data=t.data.info, fast_paths=paths, threads=torch.get_num_threads())


def _same_but_seed(configs: list[RunConfig]) -> None:
    def rest(c: RunConfig) -> dict:
        return {k: v for k, v in c.flat().items() if k != "seed"}
    if any(rest(c) != rest(configs[0]) for c in configs[1:]):
        raise BenchError("runs trained as one pack must differ only in seed")


def _compiled(group: packed.Members, phases, B: int, device: torch.device, amp):
    """torch.compile'd G and D for the hot path, or the eager ones and why compiling failed.

    One update of each phase (forward and backward, no optimizer step) runs on the compiled nets before
    training, then gradients, BN buffers and every RNG are put back: a graph that cannot be trained
    (WGAN-GP's penalty needs a double backward, which compiled graphs do not support) falls back to
    eager here, never mid-run. The graphs compiled here are the ones training uses.
    """
    G, D = group.G, group.D
    G_c, D_c = torch.compile(G, backend=COMPILE_BACKEND), torch.compile(D, backend=COMPILE_BACKEND)
    rng = checkpoint.rng_state()
    buffers = [{name: b.clone() for name, b in net.named_buffers()} for net in (G, D)]
    try:
        for phase in phases:
            x, y = group.source.sample(B)
            with frozen(phase.other):  # as in training, so both graphs compile here
                with amp:
                    loss, _ = phase.loss(G_c, D_c, Batch(x, y), group.model.sample_z(B, device))
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


# ---- the flush and the end


def _flush(t: Training, rows: Tensor, names: list[str], done: int, seconds: float,
           ended: list[Optional[str]]) -> None:
    """Each run still training gets its window of records, and at their steps samples, a curve
    evaluation and a checkpoint; a run whose window holds a non-finite value ends as diverged."""
    for k, run in enumerate(t.runs):
        if ended[k]:
            continue  # a pack trains on; a diverged member's slice is no longer recorded
        mine = rows[:, :, k]
        n, loop = len(mine), t.loop
        finite = torch.isfinite(mine).all(dim=1)
        if not finite.all():
            bad_step = done - n + int((~finite).nonzero()[0, 0]) + 1
            run.append_metrics(_records(names, mine[finite], bad_step, seconds, n, t.images_per_step))
            run.set_status("diverged", step=bad_step, finished=time.time(),
                           reason=f"non-finite loss at step {bad_step}")
            ended[k] = "diverged"
            continue
        records = _records(names, mine, done, seconds, n, t.images_per_step)
        run.append_metrics(records)
        G_k, D_k = t.group.nets(k)
        if loop.sample_every and done % loop.sample_every == 0 and done != loop.steps:
            t.samples[k].write(G_k, done)
        strip = t.samples[k].timeline(G_k, done) if done in t.evaluators[k].steps else None  # fixed latents
        curve = t.evaluators[k].at_flush(G_k, done)
        if t.events:
            t.events[k].write(records + (curve or []), strip, done)
        if done % loop.ckpt_every == 0 or done == loop.steps:
            t.group.save(k, run.checkpoint_file, step=done, G=G_k, D=D_k, opt_g=t.opt_g, opt_d=t.opt_d,
                         extra={"spec": spec_record(t.data.spec)})
        run.set_status("running", step=done)


def _close_events(t: Training) -> None:
    for events in t.events:
        events.close()


def _finish(t: Training, ended: list[Optional[str]]) -> None:
    """The final sample grid, the full evaluation protocol and "done", for each run that did not diverge."""
    for k, run in enumerate(t.runs):
        if not ended[k]:
            G_k, _ = t.group.nets(k)
            t.samples[k].write(G_k, t.loop.steps)
            t.evaluators[k].final(G_k, t.loop.steps)
            run.set_status("done", step=t.loop.steps, finished=time.time())
            ended[k] = "done"
    _close_events(t)


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
