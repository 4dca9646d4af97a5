"""`bench eval`: the full protocol on saved checkpoints, by the same code the grid runner calls.

A command, so it lives beside the CLI, above bench/metrics/evaluator.py and bench/metrics/ that it calls.

Click only at import, so `bench --help` never loads torch. Values are appended to each run's
metrics.jsonl as kind "final" / "best" records; running it again appends again, and readers take
the last record per (name, kind, label, step).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from bench.errors import BenchError


def _runs(targets: tuple[str, ...], results: Path) -> list[Path]:
    """Run folders from run folders, grid result folders, or grid names under --results."""
    found: list[Path] = []
    for target in targets:
        path = Path(target)
        if not path.exists() and (results / target).is_dir():
            path = results / target
        if (path / "config.yaml").is_file():
            found.append(path)
        elif path.is_dir():
            runs = sorted(p for p in path.iterdir() if (p / "config.yaml").is_file())
            if not runs:
                raise BenchError(f"{path} holds no run folders; pass results/<grid> or results/<grid>/<run id>")
            found += runs
        else:
            raise BenchError(f"{target}: no such run folder, grid folder or grid under {results}; "
                             f"pass results/<grid>/<run id> or a grid name")
    return found


def metrics_epilog() -> str:
    """One line per declared metric and alias. Read from bench.metrics.facts, never from the registered
    classes, so `bench eval --help` imports no torch; built when shown, so a metric declared late is listed."""
    from bench import registry
    from bench.metrics import facts

    lines = [(name, d.help) for name, d in facts.METRICS.items()]
    lines += [(name, f"alias of {targets[0]}" if len(targets) == 1 else f"alias: {' or '.join(targets)}, whichever fits")
              for name, targets in registry.metrics.aliases().items() if name not in facts.METRICS]
    return "\b\nMetrics (--metrics A,B):\n" + "\n".join(f"  {k:17} {v}" for k, v in lines)


class _EvalCommand(click.Command):
    def format_epilog(self, ctx, formatter):
        self.epilog = metrics_epilog()
        super().format_epilog(ctx, formatter)


@click.command(name="eval", cls=_EvalCommand)
@click.argument("targets", nargs=-1, required=True)
@click.option("--metrics", "metric_names", default="", metavar="A,B",
              help="metrics to compute, by name or torch-fidelity's (fid, isc, kid, prc; list below); "
                   "default: every one of the full protocol that applies")
@click.option("--n", "n", type=click.IntRange(2), default=None, help="generated samples (default: the protocol's)")
@click.option("--checkpoint", type=click.Choice(["final", "best", "all"]), default="all", show_default=True,
              help="which generator: the final one, the best by the curve (ckpt/best.pt), or both")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--inception-weights", default="", metavar="FILE",
              help="Inception weights file (default: $BENCH_INCEPTION_WEIGHTS, else the torch hub cache)")
@click.option("--vgg16-weights", default="", metavar="FILE",
              help="torchvision VGG16 state dict for precision/recall (default: $BENCH_VGG16_WEIGHTS, else hub cache)")
@click.option("--download-weights", is_flag=True, help="let torch-fidelity / torchvision download missing weights")
@click.option("--results", "results", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: os.environ.get("BENCH_RESULTS", "results"), show_default=False,
              help="results folder for grid names (default: ./results or $BENCH_RESULTS)")
def eval_command(targets, metric_names, n, checkpoint, device, inception_weights, vgg16_weights,
                 download_weights, results):
    """Evaluate finished runs (TARGETS: run folders, grid folders or grid names) and store the values."""
    from bench.metrics.fidelity import Weights

    weights = Weights.from_env(inception_weights, vgg16_weights, download_weights)
    from bench.store.runs import Damaged

    names = [m.strip() for m in metric_names.split(",") if m.strip()] or None
    paths, damaged = _runs(targets, results), 0
    # On a grid, a named metric that does not fit some runs (kid on ring8) skips those runs with a
    # note; asked of one run, it is an error. Fitting no run at all is an error either way.
    notes: list[str] | None = [] if len(paths) > 1 else None
    used: set[str] = set()
    for path in paths:
        try:
            records, timings = evaluate_run(path, names, n, checkpoint, device, weights, notes)
        except Damaged as exc:
            if len(paths) == 1:
                raise
            click.echo(f"damaged {path.name}: {exc}", err=True)  # the grid's other runs are still evaluated
            damaged += 1
            continue
        used |= {r["name"] for r in records}
        click.echo(f"{path}: {len(records)} values", err=True)
        for r in records:
            std = f" ± {r['std']:.4g}" if r.get("std") is not None else ""
            value = r["value"]
            shown = "skipped" if value is None or value != value else f"{value:.6g}"
            click.echo(f"  {r['kind']:5}  step {r['step']:>7}  {r['label']:36}  {shown}{std}")
        click.echo("  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()), err=True)
    if notes and names and not used:
        raise BenchError(f"--metrics {metric_names}: no run of {', '.join(targets)} takes any of them "
                         f"(see the notes above); pick metrics that fit the grid's datasets")
    if damaged:
        click.echo(f"{damaged} damaged run(s) not evaluated (see the lines above for the file and the fix)", err=True)
        raise click.exceptions.Exit(1)


def evaluate_run(path: Path, names, n, which: str, device_name: str, weights, notes: list | None = None):
    """Load a finished run's data, G (and D for the probe) and run the full protocol on it. With
    `notes`, named metrics that do not apply to this run are left out and noted there."""
    import torch

    from bench.store import checkpoint

    from bench import registry
    from bench.config.schema import resolve
    from bench.train.device import pick_device
    from bench.metrics.evaluator import evaluate_final
    from bench.metrics.context import EvalContext
    from bench.store.runs import RunDir

    run = RunDir.open(path)
    config = resolve(run.read_config(), where=str(run.config_file))
    status = run.status()
    if status.get("state") != "done":
        raise BenchError(f"{run.path} is {status.get('state', 'queued')} (step {status.get('step', 0)} of "
                         f"{config.loop.steps}); finish it with bench run first")
    if names:
        for name in names:
            registry.metrics.candidates(name)  # unknown names fail here, listing the valid ones
    device = pick_device(device_name)
    data = registry.datasets.get(config.dataset).load(config.data, config.loop.image_size, device)
    variant = registry.variants.get(config.variant)(config.options, data.spec)
    state = checkpoint.load(run.checkpoint_file, device, fix=checkpoint.RETRAIN)
    with torch.random.fork_rng(devices=[]):
        G, D = variant.build()
    checkpoint.load_into(run.checkpoint_file, state, fix=checkpoint.RETRAIN, G=G, D=D)
    G, D = G.to(device), D.to(device)
    ctx = EvalContext(config, data, variant, device, weights)
    if names and notes is not None:
        from bench.metrics.suite import resolve_names

        chosen, missing = resolve_names(ctx, names)
        if missing:
            note = (f"note: {run.path.name} ({config.dataset}): {', '.join(missing)} does not apply; "
                    f"{'skipped for this run' if chosen else 'run skipped'}")
            notes.append(note)
            print(note, file=sys.stderr)
        if not chosen:
            return [], {}
        names = chosen
    timings: dict[str, float] = {}
    best_file = run.path / "ckpt" / "best.pt"
    records = evaluate_final(run, ctx, G, int(state["step"]), best_file, names, n, timings, D=D, which=which)
    if names and "probe" in names and which != "best":  # what the probe read, drawn beside its numbers
        from bench.metrics.representation import write_pictures

        write_pictures(run.path / "representation", G, D, ctx.reference[0], device)
    if which == "best" and not best_file.is_file():
        print(f"warning: {run.path} has no ckpt/best.pt (no curve evaluations); nothing evaluated", file=sys.stderr)
    return records, timings
