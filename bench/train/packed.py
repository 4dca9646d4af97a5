"""Many seeds in one process: K runs that differ only in seed, trained as one batched model.

The loop (bench/train/loop.py) trains `Members` (the Protocol below): the modules it steps, the losses it
calls (a `Trainable`), the batches it draws (a `Source`), plus, per run, the nets, optimizer state and
RNG state that go into that run's own folder. One run is a `Solo`: its modules are the run's nets,
its Trainable the variant, its Source the data. K runs are a `Pack` (a `PackedVariant` for the
losses, `PackedData` for the batches), and each member k reproduces the single run of seed k:

- Nets. Member k's G and D are built as a single run builds them (global RNG seeded with its seed,
  then `variant.build`), then stacked: each parameter and buffer becomes one [K, ...] tensor
  (torch.func.stack_module_state). The loop's optimizers see the stacked tensors; Adam, RMSprop and
  weight clipping act elementwise, so one optimizer over them is K independent optimizers.
- Losses. The variant's own `d_loss`/`g_loss` run per member under torch.func.vmap with
  functional_call on the member's slice ("vmap" mode) and give one loss per member. The loop
  back-propagates their sum; members share no parameter, so each gets the gradient of its own loss.
  BatchNorm stays per member: batch statistics come from the member's own batch, and the running
  statistics are stacked buffers updated in place under vmap.
- Randomness. Each member keeps its own RNG states (CPU and CUDA), swapped in around its data and
  latent draws, so member k draws the batch indices and z of the single run of seed k. Draws *inside*
  a loss (soft or noisy labels, the WGAN-GP epsilon) cannot use per-member generators under vmap:
  they come from the pack's own stream (randomness="different": independent per member, but not the
  numbers a single run would draw). "loop" mode runs members one after another inside the step, each
  under its own RNG, and is exact for every variant. `auto` picks vmap only where it is exact: it
  takes loop where vmap fails (autograd.grad inside a loss, as in the WGAN-GP penalty) or where the
  losses draw random numbers; `vmap` can be forced for speed, and the mode and the reason are
  recorded in each run's status.
- Records. At each flush member k's losses, a checkpoint in the single-run format (its nets, its
  slice of the optimizer state, its RNG states: bench/store/checkpoint.py slices and stacks them) and its
  status go to run k's folder, so a report cannot tell the runs apart from K separate ones, and a
  folder resumes as a pack or alone.

What stays different from K single runs is float rounding: a vmapped convolution is a grouped one,
whose kernels sum in another order (about 1e-6 relative per step).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from typing import Any, Optional, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from bench.store import checkpoint
from bench.train.device import seed_everything
from bench.errors import BenchError
from bench.variant import Batch, Stats

MODES = ("auto", "vmap", "loop")
PackMismatch = checkpoint.PackMismatch  # raised where the members' checkpoints are read; caught by the scheduler


# ---- the interface the loop is typed against


@runtime_checkable
class Trainable(Protocol):
    """What the loop's step calls for losses, latents and optimizers: a Variant, or a PackedVariant."""

    def sample_z(self, n: int, device: torch.device) -> Tensor: ...
    def d_loss(self, G, D, batch: Batch, z: Tensor) -> tuple[Tensor, Stats]: ...  # loss: [] or [K]
    def g_loss(self, G, D, batch: Batch, z: Tensor) -> tuple[Tensor, Stats]: ...
    def optimizers(self, G: nn.Module, D: nn.Module,
                   fused: bool = False) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]: ...
    def after_d_step(self, D: nn.Module) -> None: ...


@runtime_checkable
class Source(Protocol):
    """Where the loop draws real batches: a DeviceData, or PackedData ([K, n, ...], one batch per member)."""

    def sample(self, n: int) -> tuple[Tensor, Optional[Tensor]]: ...


@runtime_checkable
class Members(Protocol):
    """What the loop trains and writes: a Solo (one run) or a Pack (K runs that differ only in seed)."""

    size: int  # runs trained; member k writes the folder of the k-th run
    G: nn.Module  # the modules the optimizers step (stacked [K, ...] tensors in a pack)
    D: nn.Module
    model: Trainable
    source: Source

    def nets(self, k: int) -> tuple[nn.Module, nn.Module]:
        """Member k's G and D as ordinary nets, for its samples, evaluation and checkpoint."""

    def restore(self, files: list, device: torch.device, opt_g, opt_d) -> int:
        """Load every member's checkpoint (files[k]) if there are any; the step to start from."""

    def save(self, k: int, path, *, step: int, G: nn.Module, D: nn.Module, opt_g, opt_d, extra: dict) -> None:
        """Member k's checkpoint, from its nets (as nets(k) gave them) and the loop's optimizers."""

    def record(self) -> dict[str, Any]:
        """What status.json says about the pack under fast_paths; empty for one run."""


class Solo:
    """One run trained on its own: the modules the loop steps are the run's nets; the RNG is global."""

    size = 1

    def __init__(self, variant, data, G: nn.Module, D: nn.Module):
        self.model, self.source, self.G, self.D = variant, data, G, D

    def nets(self, k: int) -> tuple[nn.Module, nn.Module]:
        return self.G, self.D

    def restore(self, files, device, opt_g, opt_d) -> int:
        start, _ = checkpoint.restore(files[0], device, G=self.G, D=self.D, opt_g=opt_g, opt_d=opt_d)
        return start

    def save(self, k, path, *, step, G, D, opt_g, opt_d, extra) -> None:
        checkpoint.save(path, step=step, G=G, D=D, opt_g=opt_g, opt_d=opt_d, extra=extra)  # the global RNG

    def record(self) -> dict[str, Any]:
        return {}


# ---- the parts of a pack


class MemberRNG:
    """Per-member RNG states (checkpoint.rng_state format); `use(k)` swaps member k's in around draws."""

    def __init__(self, states: list[dict], device: torch.device):
        self.states, self.device = states, device
        self.cuda = device.type == "cuda"
        self.index = (device.index or 0) if self.cuda else 0

    def current(self) -> tuple[Tensor, Optional[Tensor]]:
        """The generators now in use (CPU, and the device's CUDA one)."""
        return torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.cuda else None

    def _set(self, cpu: Tensor, gpu: Optional[Tensor]) -> None:
        torch.set_rng_state(cpu.cpu())
        if self.cuda:
            torch.cuda.set_rng_state(gpu.cpu(), self.device)

    @contextlib.contextmanager
    def use(self, k: int):
        outer = self.current()
        state = self.states[k]
        self._set(state["torch"], state["cuda"][self.index] if self.cuda else None)
        try:
            yield
        finally:
            cpu, gpu = self.current()
            state["torch"] = cpu
            if self.cuda:
                state["cuda"] = list(state["cuda"])
                state["cuda"][self.index] = gpu
            self._set(*outer)


def _mangle(name: str) -> str:
    return name.replace(".", "__")  # parameter names may not contain dots


class _Call:
    """One member of a PackedNet as a callable net, for the variant's loss code."""

    def __init__(self, template: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor]):
        self.template, self.params, self.buffers = template, params, buffers

    def __call__(self, *args):
        return functional_call(self.template, (self.params, self.buffers), args)


class PackedNet(nn.Module):
    """K copies of one architecture as stacked [K, ...] parameters and buffers."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        params, buffers = stack_module_state(nets)
        # Kept in lists so they are not registered: a real net to copy members into, and a weightless
        # one for functional_call.
        self._blank = [copy.deepcopy(nets[0])]
        self._template = [copy.deepcopy(nets[0]).to("meta")]
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.size = len(nets)
        for name, value in params.items():
            self.register_parameter(_mangle(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_mangle(name), value.clone())

    @property
    def template(self) -> nn.Module:
        return self._template[0]

    def tensors(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return ({n: getattr(self, _mangle(n)) for n in self.param_names},
                {n: getattr(self, _mangle(n)) for n in self.buffer_names})

    def calls(self) -> list[_Call]:
        """Every member as a callable; one unbind per tensor keeps the backward a single stack."""
        params, buffers = self.tensors()
        p = {n: t.unbind(0) for n, t in params.items()}
        b = {n: t.unbind(0) for n, t in buffers.items()}
        return [_Call(self.template, {n: t[k] for n, t in p.items()}, {n: t[k] for n, t in b.items()})
                for k in range(self.size)]

    @torch.no_grad()
    def member(self, k: int) -> nn.Module:
        """Member k as an ordinary net (a copy): for samples, evaluation and its checkpoint."""
        net = copy.deepcopy(self._blank[0])
        params, buffers = self.tensors()
        for name, t in net.named_parameters():
            t.copy_(params[name][k])
        for name, t in net.named_buffers():
            t.copy_(buffers[name][k])
        return net

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, Tensor], where: str) -> None:
        params, buffers = self.tensors()
        tensors = {**params, **buffers}
        expected = set(self._blank[0].state_dict())
        if set(state) != expected:
            raise BenchError(f"checkpoint {where} does not match this run's networks; delete it to restart that run")
        for name, value in state.items():
            tensors[name][k].copy_(value)


class PackedData:
    """The run's data, drawn per member under the member's RNG: x is [K, n, ...]."""

    def __init__(self, data, rngs: MemberRNG, size: int):
        self.inner, self.rngs, self.size = data, rngs, size

    def sample(self, n: int) -> tuple[Tensor, Optional[Tensor]]:
        xs, ys = [], []
        for k in range(self.size):
            with self.rngs.use(k):
                x, y = self.inner.sample(n)
            xs.append(x)
            ys.append(y)
        return torch.stack(xs), None if ys[0] is None else torch.stack(ys)


class PackedVariant:
    """The variant's losses, latents and optimizers for K members: one loss per member ([K]), stats as
    [K] vectors, z drawn per member under its RNG. `mode` says how the losses run (module docstring)."""

    def __init__(self, variant, G: PackedNet, D: PackedNet, rngs: MemberRNG, data: PackedData,
                 device: torch.device, mode: str):
        self.inner, self.G, self.D, self.rngs, self.data, self.device = variant, G, D, rngs, data, device
        self.size = G.size
        self.reason = ""
        self.mode = self._probe() if mode == "auto" else mode

    def sample_z(self, n: int, device: torch.device) -> Tensor:
        zs = []
        for k in range(self.size):
            with self.rngs.use(k):
                zs.append(self.inner.sample_z(n, device))
        return torch.stack(zs)

    def optimizers(self, G, D, fused: bool = False):
        return self.inner.optimizers(G, D, fused)

    def after_d_step(self, D) -> None:
        self.inner.after_d_step(D)

    def d_loss(self, G, D, batch: Batch, z: Tensor):
        return self._losses(self.inner.d_loss, G, D, batch, z)

    def g_loss(self, G, D, batch: Batch, z: Tensor):
        return self._losses(self.inner.g_loss, G, D, batch, z)

    def _losses(self, loss_fn, G, D, batch: Batch, z: Tensor, buffers=None):
        """(one loss per member [K], stats as [K] vectors)."""
        if self.mode == "vmap":
            return self._vmapped(loss_fn, G, D, batch, z, buffers)
        losses, stats = [], []
        for k, (g, d) in enumerate(zip(G.calls(), D.calls())):
            y = None if batch.y is None else batch.y[k]
            with self.rngs.use(k):
                loss, s = loss_fn(g, d, Batch(batch.x[k], y), z[k])
            losses.append(loss)
            stats.append(s)
        return torch.stack(losses), {name: torch.stack([s[name] for s in stats]) for name in stats[0]}

    def _vmapped(self, loss_fn, G, D, batch: Batch, z: Tensor, buffers=None):
        pg, bg = G.tensors()
        pd, bd = D.tensors()
        if buffers is not None:  # the probe runs on copies so BN running statistics stay untouched
            bg, bd = buffers

        def one(pg, bg, pd, bd, x, y, z):
            return loss_fn(_Call(G.template, pg, bg), _Call(D.template, pd, bd), Batch(x, y), z)

        in_dims = (0, 0, 0, 0, 0, None if batch.y is None else 0, 0)
        return vmap(one, in_dims=in_dims, randomness="different")(pg, bg, pd, bd, batch.x, batch.y, z)

    def _probe(self) -> str:
        """vmap when both losses run under it and draw no random numbers; else loop (exact for all).

        Runs each loss once, forward only, on copies of the BN buffers, then restores every RNG.
        """
        saved = checkpoint.rng_state()
        members = copy.deepcopy(self.rngs.states)
        self.mode = "vmap"
        try:
            buffers = ({n: b.clone() for n, b in self.G.tensors()[1].items()},
                       {n: b.clone() for n, b in self.D.tensors()[1].items()})
            x, y = self.data.sample(2)
            z = self.sample_z(2, self.device)
            before = self.rngs.current()  # data and z drew under member states; the pack stream is untouched
            for fn in (self.inner.d_loss, self.inner.g_loss):
                self._losses(fn, self.G, self.D, Batch(x, y), z, buffers)
            after = self.rngs.current()
            if not all(a is None or torch.equal(a, b) for a, b in zip(before, after)):
                self.reason = "the losses draw random numbers; under vmap they could not follow each seed's stream"
                return "loop"
            return "vmap"
        except Exception as exc:  # noqa: BLE001 - any failure under vmap means run members one by one
            self.reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
            return "loop"
        finally:
            checkpoint.set_rng_state(saved)
            self.rngs.states = members


def pack_seed(seeds: list[int]) -> int:
    """Seed of the pack's own stream (draws inside losses in vmap mode): not any member's seed."""
    text = "pack:" + ",".join(map(str, seeds))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class Pack:
    """K members of one variant: stacked nets, their losses (a PackedVariant) and their data (PackedData)."""

    def __init__(self, variant, seeds: list[int], data, device: torch.device, mode: str = "auto"):
        if mode not in MODES:
            raise BenchError(f"pack mode {mode!r} is not one of {', '.join(MODES)}")
        self.seeds, self.size, self.device = list(seeds), len(seeds), device
        Gs, Ds, states = [], [], []
        for seed in self.seeds:
            seed_everything(seed)  # exactly what a single run does before building its nets
            G, D = variant.build()
            Gs.append(G.to(device))
            Ds.append(D.to(device))
            states.append(checkpoint.rng_state())
        self.G, self.D = PackedNet(Gs).to(device), PackedNet(Ds).to(device)
        self.rngs = MemberRNG(states, device)
        self.source = PackedData(data, self.rngs, self.size)
        seed_everything(pack_seed(self.seeds))
        self.model = PackedVariant(variant, self.G, self.D, self.rngs, self.source, device, mode)

    def nets(self, k: int) -> tuple[nn.Module, nn.Module]:
        return self.G.member(k), self.D.member(k)

    def save(self, k, path, *, step, G, D, opt_g, opt_d, extra) -> None:
        """Also saved with every member: the pack's own stream, so a resumed pack draws as before."""
        checkpoint.save_member(path, k, step=step, G=G, D=D, opt_g=opt_g, opt_d=opt_d, rng=self.rngs.states[k],
                               extra={**extra, "pack_rng": checkpoint.stream_state(self.device),
                                      "pack_seeds": self.seeds})

    def restore(self, files, device, opt_g, opt_d) -> int:
        """Resume every member from its own checkpoint; all or none must exist, at one step."""
        step, states = checkpoint.load_members(files, device)
        for k, (f, s) in enumerate(zip(files, states)):
            self.G.load_member(k, s["G"], str(f))
            self.D.load_member(k, s["D"], str(f))
            self.rngs.states[k] = s["rng"]
        if states:
            checkpoint.stack_optimizer_states(opt_g, [s["opt_g"] for s in states])
            checkpoint.stack_optimizer_states(opt_d, [s["opt_d"] for s in states])
            pack_rng = states[0].get("extra", {}).get("pack_rng")
            if pack_rng is not None:
                checkpoint.set_stream_state(pack_rng, device)
        return step

    def record(self) -> dict[str, Any]:
        out = {"size": self.size, "mode": self.model.mode, "seeds": self.seeds}
        if self.model.reason:
            out["why_not_vmap"] = self.model.reason
        return out


def members(variant, data, seeds: list[int], device: torch.device, memory_format=None,
            mode: str = "auto") -> Members:
    """Solo for one seed (the nets built as always), a Pack for several."""
    if len(seeds) == 1:
        G, D = variant.build()
        fmt = memory_format or torch.preserve_format
        return Solo(variant, data, G.to(device, memory_format=fmt), D.to(device, memory_format=fmt))
    return Pack(variant, seeds, data, device, mode)
