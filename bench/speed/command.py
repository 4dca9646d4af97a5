"""`bench speed`: images/s of the shared loop and of the reference DCGAN loop, in one process.

Both train on the same synthetic uint8 images, shapes and device. The shared loop runs with the fast
paths chosen below (each one a LoopConfig switch, overridable by flag); `--paths` measures each one
off and on, so every default here can be re-checked with one command.
"""

from __future__ import annotations

import platform

import click

from bench.errors import BenchError

# Fast paths `bench speed` turns on per device type unless a flag says otherwise (grid runs set them
# as loop keys). The measurements behind the CPU choice are in the README's Speed section: bf16 autocast
# is far slower without bf16 units, channels_last and compile were within run-to-run noise, and compile
# costs a C++ build per process that short runs do not earn back.
SPEED_DEFAULTS = {
    "cuda": {"channels_last": True, "amp": True, "compile": True, "fused_optim": True},
    "cpu": {"channels_last": False, "amp": False, "compile": False, "fused_optim": False},
}
SIZES = ("8", "16", "32", "64", "128")


def _switch(name: str):
    flag = name.replace("_", "-")
    return click.option(f"--{flag}/--no-{flag}", name, default=None,
                        help=f"fast path {name} on or off (default: the measured choice for the device)")


@click.command("speed")
@click.option("--variant", default="dcgan", show_default=True, help="variant trained by the shared loop")
@click.option("--size", type=click.Choice(SIZES), default="64", show_default=True, help="image side in pixels")
@click.option("--batch", type=click.IntRange(1), default=128, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--steps", type=click.IntRange(1), default=None,
              help="timed steps per measurement (default: 300 on CUDA, 6 on CPU)")
@click.option("--warmup", type=click.IntRange(1), default=None,
              help="untimed steps before them (default: 50 on CUDA, 2 on CPU)")
@click.option("--paths", "show_paths", is_flag=True, help="also measure each fast path off and on")
@click.option("--pack", type=click.IntRange(1), default=1, show_default=True,
              help="also train this many seeds as one packed model and report aggregate images/s")
@click.option("--pack-mode", type=click.Choice(["auto", "vmap", "loop"]), default="auto", show_default=True,
              help="how a pack runs its members (bench/train/packed.py)")
@click.option("--variants", "each_variant", is_flag=True, help="also time the step of every image variant")
@click.option("--no-reference", is_flag=True, help="skip the reference loop")
@click.option("--sync-check", is_flag=True, help="count host syncs of the shared loop (CUDA sync debug mode)")
@click.option("--eval-data", default="digits", show_default=True,
              help="dataset whose in-training evaluation is timed (its curve protocol); 'none' skips it")
@click.option("--ref-workers", type=click.IntRange(0), default=2, show_default=True,
              help="DataLoader workers of the reference loop (the example's default is 2)")
@_switch("channels_last")
@_switch("amp")
@_switch("compile")
@_switch("fused_optim")
def speed(variant, size, batch, device, steps, warmup, show_paths, pack, pack_mode, each_variant, no_reference,
          sync_check, eval_data, ref_workers, **switches):
    """Images/s of the shared loop against the reference DCGAN example loop, with peak memory."""
    import torch

    from bench.speed import measure
    from bench.train.device import pick_device

    _check_eval_data(variant, eval_data, int(size))
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    steps, warmup, size = steps or (300 if cuda else 6), warmup or (50 if cuda else 2), int(size)
    paths = {k: v if v is not None else SPEED_DEFAULTS[dev.type][k] for k, v in switches.items()}
    images, labels = measure.synthetic_images(batch * (warmup + steps + 1), size)
    where = torch.cuda.get_device_name(dev) if cuda else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    click.echo(f"bench speed: {variant} {size}x{size} px, batch {batch}, {dev.type} ({where}), torch "
               f"{torch.__version__}; {steps} timed steps after {warmup}")

    def loop(name=variant, seeds=1, p=paths, check=False):
        return measure.measure_loop(name, images, labels, batch, device, steps, warmup, p, seeds, check, pack_mode)

    shared = _main_table(loop, images, dev, batch, steps, warmup, pack, no_reference, sync_check, ref_workers)
    if eval_data != "none":
        click.echo(_eval_line(measure.measure_eval(variant, eval_data, size, batch, device), shared.sec_per_step))
    if show_paths:
        _paths_table(loop, shared, paths)
    if each_variant:
        _variants_table(loop)


def _check_eval_data(variant: str, eval_data: str, size: int) -> None:
    """A missing or unfit dataset fails here, before anything trains; so does an unknown variant."""
    from bench import registry

    kinds = registry.variants.get(variant).data_kinds  # unknown names fail here with the valid list
    if eval_data != "none":
        data_cls = registry.datasets.get(eval_data)
        if data_cls.kind not in kinds:
            raise BenchError(f"--eval-data {eval_data} holds {data_cls.kind}; {variant} trains on "
                             f"{', '.join(kinds)}: pick such a dataset or --eval-data none")
        data_cls.check(data_cls.Options(), size)


def _main_table(loop, images, dev, batch, steps, warmup, pack, no_reference, sync_check, ref_workers):
    """The shared loop beside the reference loop (and a pack); returns the shared loop's measurement."""
    from bench.speed import reference

    shared = loop(check=sync_check)
    rows = [("shared loop", shared.images_per_s, shared.sec_per_step, shared.peak_bytes, _describe(shared.paths))]
    ref = None
    if not no_reference:
        ref = reference.run(images, dev, batch, steps, warmup, workers=ref_workers)
        rows.append(("reference (DCGAN example)", ref.images_per_s, ref.sec_per_step, ref.peak_bytes,
                     f"DataLoader({ref_workers} workers), Sigmoid+BCELoss, .item() per step, float32"))
    if pack > 1:
        packed = loop(seeds=pack)
        rows.append((f"{pack} seeds packed", packed.images_per_s, packed.sec_per_step, packed.peak_bytes,
                     _describe(packed.paths)))
    click.echo(_table(["loop", "images/s", "ms/step", "peak MiB", "what ran"],
                      [(n, f"{ips:,.0f}", f"{s * 1e3:.2f}", _mib(b), d) for n, ips, s, b, d in rows]))
    if ref is not None:
        click.echo(f"shared / reference: {shared.images_per_s / ref.images_per_s:.2f}x")
    if pack > 1:
        click.echo(f"packed / single run: {packed.images_per_s / shared.images_per_s:.2f}x aggregate images/s")
    if sync_check:
        if shared.syncs is None:
            click.echo("host syncs: not checked (the sync debug mode needs CUDA)")
        else:
            click.echo(f"host syncs: {shared.syncs} in {warmup + steps} steps ({shared.flushes} flushes, one each)")
    return shared


def _paths_table(loop, shared, paths: dict) -> None:
    from bench.speed import measure

    table = []
    for name in measure.FAST_PATHS:
        flipped = loop(p={**paths, name: not paths[name]})
        on, off = (shared, flipped) if paths[name] else (flipped, shared)
        table.append((name, f"{off.images_per_s:,.0f}", f"{on.images_per_s:,.0f}",
                      f"{on.images_per_s / off.images_per_s:.2f}x", str(on.paths.get(name, ""))))
    click.echo("\nfast paths, each flipped from the settings above:")
    click.echo(_table(["path", "off images/s", "on images/s", "on / off", "on: what ran"], table))


def _variants_table(loop) -> None:
    from bench import registry

    table = []
    for name in registry.variants.names():
        if "images" not in registry.variants.get(name).data_kinds:
            continue
        r = loop(name=name)
        table.append((name, f"{r.sec_per_step * 1e3:.2f}", f"{r.images_per_s:,.0f}", _mib(r.peak_bytes),
                      _describe(r.paths)))
    click.echo("\nevery image variant, shared loop, settings above:")
    click.echo(_table(["variant", "ms/step", "real images/s", "peak MiB", "what ran"], table))


def _eval_line(cost, sec_per_step: float) -> str:
    """One curve evaluation against training time: the share a default grid run spends evaluating."""
    head = f"in-training evaluation ({cost.dataset}, {cost.family} features, curve protocol, {cost.n:,} samples"
    skipped = (f"; skipped here, so not timed: {', '.join(cost.skipped)} (bench eval RUN --metrics "
               f"{cost.skipped[0]} says why)") if cost.skipped else ""
    if not cost.metrics:
        return f"{head}): nothing ran{skipped}"
    train = cost.run_steps * sec_per_step
    spent = cost.first_seconds + (cost.evals_per_run - 1) * cost.seconds
    return (f"{head}: {', '.join(cost.metrics)}): {cost.seconds:.2f} s each (the first {cost.first_seconds:.2f} s, "
            f"caching the reference side) = {cost.seconds / sec_per_step:.1f} training steps; a run of "
            f"{cost.run_steps:,} steps at this size and batch with the auto schedule ({cost.evals_per_run} "
            f"evaluations) spends {100 * spent / (train + spent):.1f}% of its time in them (the final "
            f"evaluation, full protocol after training, is not counted){skipped}")


def _describe(paths: dict) -> str:
    parts = []
    for key, value in paths.items():
        if key == "pack":
            parts.append(f"pack={value.get('mode')}")
        elif value is True:
            parts.append(key)
        elif value not in (False, "off"):
            parts.append(f"{key}={value}")
    return " ".join(parts) or "no fast path"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f}" if n else "-"


def _table(header: list[str], rows: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)
