"""Command line: argv to calls. A BenchError becomes one line on stderr and exit code 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from bench.errors import BenchError
from bench.fetch import data as data_commands

RESULTS_HELP = "results folder (default: ./results or $BENCH_RESULTS)"


def results_option(f):
    return click.option("--results", "results", type=click.Path(file_okay=False, path_type=Path),
                        default=lambda: os.environ.get("BENCH_RESULTS", "results"), show_default=False,
                        help=RESULTS_HELP)(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gan-bench")
def cli():
    """GAN Bench: train a grid of GAN variants with one shared loop, then evaluate and report."""


def _grid_and_configs(grid_file: str, sets: tuple[str, ...], smoke: bool):
    from bench.config import load_grid, parse_set
    from bench.grid import resolve_all

    grid = load_grid(grid_file)
    overrides = parse_set(sets)
    configs, skipped = resolve_all(grid, overrides, smoke=smoke)
    name = f"{grid.name}-smoke" if smoke else grid.name
    return grid, name, configs, skipped


@cli.command()
@click.argument("grid_file", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a key in every run (repeatable)")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="runs trained in parallel processes")
@click.option("--dry-run", is_flag=True, help="print the expanded runs and their state; train nothing")
@click.option("--smoke", is_flag=True, help="shrink every run (steps, batch, image size) for a quick check; "
                                            "stored under <grid>-smoke")
@results_option
def run(grid_file, sets, jobs, dry_run, smoke, results):
    """Train every run of GRID_FILE that is not finished yet (killed runs resume)."""
    from bench import scheduler
    from bench.runs import write_atomic

    grid, name, configs, skipped = _grid_and_configs(grid_file, sets, smoke)
    planned = scheduler.plan(results, name, configs)
    for reason in skipped:
        click.echo(f"skipped: {reason}", err=True)
    if dry_run:
        _print_table(planned)
        return
    write_atomic(results / name / "grid.yaml", grid.text or "")
    todo = [p for p in planned if p.state not in ("done", "diverged")]
    click.echo(f"{name}: {len(planned)} runs, {len(planned) - len(todo)} finished, {len(todo)} to train"
               f" -> {results / name}", err=True)
    if not todo:
        return
    from bench.progress import GridProgress

    with GridProgress(todo, jobs) as progress:
        states = scheduler.run_all(todo, jobs, progress.run_done, progress.steps_for if jobs == 1 else None)
    failed = [rid for rid, state in states.items() if state == "failed"]
    counts = {s: list(states.values()).count(s) for s in sorted(set(states.values()))}
    click.echo(f"{name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()), err=True)
    for rid in failed:
        click.echo(f"failed {rid}: {scheduler.RunDir(results, name, rid).status().get('reason', '')}", err=True)


def _print_table(planned) -> None:
    click.echo(f"{'run id':12}  {'state':9}  {'step':>6}  config")
    for p in planned:
        status = p.run.status()
        flat = p.config.flat()
        keys = ["variant", "dataset", "seed"]
        desc = " ".join(f"{k}={flat[k]}" for k in keys)
        step = status.get("step", 0)
        click.echo(f"{p.run.id:12}  {status.get('state', 'queued'):9}  {step:>6}  {desc}")


@cli.command(name="list")
@click.argument("grid", type=str)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="as given to bench run")
@click.option("--smoke", is_flag=True, help="as given to bench run")
@results_option
def list_runs(grid, sets, smoke, results):
    """Show every run of GRID (a grid file, or a grid name under the results folder) with its state."""
    from bench import scheduler
    from bench.config import parse_set
    from bench.runs import RunDir

    if Path(grid).is_file():
        _, name, configs, _ = _grid_and_configs(grid, sets, smoke)
        _print_table(scheduler.plan(results, name, configs))
        return
    folder = results / grid
    if not folder.is_dir():
        raise BenchError(f"no grid named {grid!r} under {results}; pass a grid file or one of: "
                         + (", ".join(sorted(p.name for p in results.iterdir() if p.is_dir())) or "(none yet)"))
    parse_set(sets)
    from bench.config import resolve

    planned = []
    for path in sorted(p for p in folder.iterdir() if (p / "config.yaml").is_file()):
        run = RunDir.open(path)
        planned.append(scheduler.PlannedRun(run, resolve(run.read_config(), str(run.config_file))))
    _print_table(planned)


cli.add_command(list_runs, name="status")
cli.add_command(data_commands)  # bench data fetch NAME


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--n", "n", type=click.IntRange(1), default=1000, show_default=True, help="number of samples")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="output .npz file")
@click.option("--class", "class_", type=int, default=None, help="class label for conditional variants")
@click.option("--seed", type=int, default=None, help="latent seed (default: the fixed evaluation seed)")
def sample(run_dir, n, out, class_, seed):
    """Write N samples of a run's last checkpoint to an .npz (samples, labels, value_range)."""
    from bench.sampling import sample_run

    path = sample_run(run_dir, n, out, class_, seed)
    click.echo(f"wrote {n} samples to {path}", err=True)


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="bench", standalone_mode=False)
    except BenchError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except KeyboardInterrupt:
        click.echo("interrupted; run the same command again to resume", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
