"""Command line: argv to calls. A BenchError becomes one line on stderr and exit code 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from bench.errors import BenchError, Terminated
from bench.data_command import data as data_commands

RESULTS_HELP = "results folder (default: ./results or $BENCH_RESULTS)"


def results_option(f):
    return click.option("--results", "results", type=click.Path(file_okay=False, path_type=Path),
                        default=lambda: os.environ.get("BENCH_RESULTS", "results"), show_default=False,
                        help=RESULTS_HELP)(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gan-bench")
def cli():
    """GAN Bench: train a grid of GAN variants with one shared loop, then evaluate and report."""


def max_runs_option(f):
    from bench.config.grid import DEFAULT_MAX_RUNS

    return click.option("--max-runs", type=click.IntRange(1), default=DEFAULT_MAX_RUNS, show_default=True,
                        help="refuse a grid file that expands to more runs than this")(f)


def _grid_and_configs(grid_file: str, sets: tuple[str, ...], smoke: bool, max_runs: int):
    from bench.config.schema import load_grid, parse_set
    from bench.config.grid import resolve_all

    grid = load_grid(grid_file)
    overrides = parse_set(sets)
    configs, skipped = resolve_all(grid, overrides, smoke=smoke, max_runs=max_runs)
    name = f"{grid.name}-smoke" if smoke else grid.name
    return grid, name, configs, skipped


def _gpu_list(text: str | None, local: bool = True) -> tuple[int, ...]:
    """--gpus checked at planning, before anything is written: a device that is not there would
    otherwise fail every run, and failed runs are skipped until --retry-failed. Devices of a dask or
    ray cluster are the cluster's to check (`local` False): only the syntax is checked here."""
    if text is None:
        return ()
    try:
        wanted = None if text == "all" else tuple(int(g) for g in text.split(","))
    except ValueError:
        raise BenchError(f"--gpus {text}: expected device indices like 0,1 or 'all'") from None
    if wanted is not None and any(g < 0 for g in wanted):
        raise BenchError(f"--gpus {text}: device indices start at 0")
    if not local:
        if wanted is None:
            raise BenchError("--gpus all: name the cluster's device indices (0,1,...) with --backend dask or ray")
        return wanted
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise BenchError(f"--gpus {text}: no CUDA device is visible; drop --gpus to run on CPU")
    if wanted is None:
        return tuple(range(count))
    bad = [g for g in wanted if not 0 <= g < count]
    if bad:
        raise BenchError(f"--gpus {text}: no CUDA device {bad[0]}; this machine has 0..{count - 1}")
    return wanted


def positional_sets(words: tuple[str, ...], sets: tuple[str, ...]) -> tuple[str, ...]:
    """Hydra's `key=value` after the grid file is `--set key=value`; those come first, as typed."""
    for word in words:
        if "=" not in word:
            raise BenchError(f"unexpected argument {word!r}; after the grid file give overrides as KEY=VALUE "
                             f"(or --set KEY=VALUE)")
    return (*words, *sets)


@cli.command()
@click.argument("grid_file", type=click.Path(dir_okay=False))
@click.argument("words", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a key in every run (repeatable)")
@click.option("--jobs", default="auto", show_default=True, metavar="N|auto",
              help="runs trained at once; auto: processes and threads measured for this machine (cached)")
@click.option("--gpus", default=None, metavar="0,1|all", help="pin runs to these CUDA devices (one stream each)")
@click.option("--per-gpu", type=click.IntRange(1), default=1, show_default=True, help="runs sharing one GPU")
@click.option("--backend", type=click.Choice(["local", "dask", "ray"]), default="local", show_default=True,
              help="who executes runs: worker processes here, a dask cluster or a ray cluster")
@click.option("--address", default=None, help="dask scheduler (tcp://host:port) or ray address; "
                                               "default: a local cluster")
@click.option("--pack", type=click.IntRange(1), default=1, show_default=True,
              help="train up to this many runs that differ only in seed as one batched model (bench/train/packed.py)")
@click.option("--retry-failed", is_flag=True, help="train failed runs again (they are skipped otherwise)")
@click.option("--dry-run", is_flag=True, help="print the expanded runs and their state; train nothing")
@click.option("--smoke", is_flag=True, help="shrink every run (steps, batch, image size) for a quick check; "
                                            "stored under <grid>-smoke")
@max_runs_option
@results_option
def run(grid_file, words, sets, jobs, gpus, per_gpu, backend, address, pack, retry_failed, dry_run, smoke,
        max_runs, results):
    """Train every run of GRID_FILE that is not finished yet (killed runs resume). KEY=VALUE after the
    file overrides a key in every run, as --set does."""
    from bench.store import locks
    from bench.launch import scheduler
    from bench.launch.backends import execute
    from bench.store import overrides
    from bench.store.runs import write_atomic

    sets = positional_sets(words, sets)
    grid, name, configs, skipped = _grid_and_configs(grid_file, sets, smoke, max_runs)
    gpu_list = _gpu_list(gpus, local=backend == "local")
    planned = scheduler.plan(results, name, configs)
    for reason in skipped:
        click.echo(f"skipped: {reason}", err=True)
    if dry_run:
        from bench.launch.status import read_rows, render

        rows = read_rows([p.run.path for p in planned], [p.config.flat() for p in planned])
        click.echo(render(rows, f"{name}: {len(planned)} runs (dry run, nothing trained)", grid.text or ""))
        return
    placement = _placement(jobs, gpu_list, per_gpu)
    write_atomic(results / name / "grid.yaml", grid.text or "")
    overrides.record(results / name, sets, [p.run.id for p in planned])
    damaged = [p for p in planned if p.state == scheduler.DAMAGED]
    for p in damaged:
        click.echo(f"damaged {p.run.id}: {p.run.inspect(metrics=True).damage}", err=True)
    todo = [p for p in planned if scheduler.needs_work(p, retry_failed)]
    failed_before = sum(p.state == "failed" for p in planned) if not retry_failed else 0
    click.echo(f"{name}: {len(planned)} runs, {len(planned) - len(todo)} finished, failed or damaged, {len(todo)} "
               f"to train -> {results / name}" + (" (--retry-failed retrains failed runs)" if failed_before else ""),
               err=True)
    rerun = _rerun(grid_file, sets, smoke, results)
    _events_for_finished(planned)
    if not todo:
        _exit_if_failed(failed_before, rerun, len(damaged))
        return
    for p in todo:
        scheduler.prepare(p)
    from bench.launch.progress import GridProgress

    outcomes: dict[str, str] = {}
    with GridProgress(todo, placement.slots, grid=planned, grid_text=grid.text or "") as progress:
        cost = scheduler.expected_cost(planned) if placement.slots > 1 else None
        units = scheduler.pack_units(todo, pack, cost)
        step_progress = progress.steps_for if placement.slots == 1 and backend == "local" else None
        for rid, outcome, seconds in execute(units, backend, placement, retry_failed, address, step_progress):
            outcomes[rid] = outcome
            progress.run_done(rid, outcome, seconds)
    counts = {s: list(outcomes.values()).count(s) for s in sorted(set(outcomes.values()))}
    click.echo(f"{name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()), err=True)
    for rid, outcome in outcomes.items():
        if outcome == "failed":
            click.echo(f"failed {rid}: {scheduler.RunDir(results, name, rid).inspect().status.get('reason', '')}",
                       err=True)
    live, dead = scheduler.unfinished_claims([p for p in todo if outcomes.get(p.run.id) == scheduler.CLAIMED])
    if live:
        click.echo(f"{len(live)} run(s) are being trained by another live process (bench status shows them)", err=True)
    if dead:
        click.echo(f"{len(dead)} run(s) are claimed by processes that stopped without finishing them (or whose "
                   f"lock.json cannot be read); run {rerun} again to take them over (a claim "
                   f"is taken over once its heartbeat is {locks.STALE_S:.0f} s old)", err=True)
    if scheduler.DISK_FULL in outcomes.values():
        _exit_disk_full(results, name, [rid for rid, o in outcomes.items() if o == scheduler.DISK_FULL], rerun)
    _exit_if_failed(failed_before + counts.get("failed", 0), rerun, len(damaged) + len(dead))


def _events_for_finished(planned) -> None:
    """log_tensorboard on runs that finished without it: the loop will not train them again, so their
    events are written here from their records (cheap: no model is loaded), and the run line says so."""
    from bench.store.runs import FINISHED

    finished = [p for p in planned if p.config.loop.log_tensorboard and p.state in FINISHED]
    if not finished:
        return
    try:
        from bench.train.tensorboard import replay

        written = sum(replay(p.run) for p in finished)
    except ImportError:
        raise BenchError("log_tensorboard needs the tensorboard package; pip install -e '.[tensorboard]'") from None
    if written:
        click.echo(f"log_tensorboard: {written} finished run(s) had no events; wrote them from their records "
                   f"(metrics.jsonl, samples/timeline) into <run>/tensorboard/", err=True)


def _placement(jobs: str, gpus: tuple[int, ...], per_gpu: int):
    """--jobs N, or auto: the layout bench/launch/autojobs.py measured for this machine (GPUs: one stream each)."""
    from bench.launch.backends import Placement

    if jobs != "auto":
        if not jobs.isdigit() or int(jobs) < 1:
            raise BenchError(f"--jobs {jobs!r}: expected a whole number of runs at once (1 or more) or auto")
        return Placement(int(jobs), gpus, per_gpu)
    if gpus:
        return Placement(1, gpus, per_gpu)
    from bench.datasets.files import cache_root
    from bench.launch.autojobs import decide

    layout = decide(cache_root())
    if layout.measured:  # an OMP_NUM_THREADS setting keeps the plain layout, and the output as it was
        click.echo(f"--jobs auto: {layout.processes} process(es) of {layout.threads} thread(s) ({layout.why})",
                   err=True)
    return Placement(layout.processes, threads_per_run=layout.threads)


def _exit_if_failed(failed: int, rerun: str, unfinished: int = 0) -> None:
    """Exit 1 while the grid holds failed, damaged or abandoned runs, so scripts and CI notice;
    diverged runs are results."""
    if failed:
        click.echo(f"{failed} run(s) of the grid failed (reasons: bench status); fix the cause, then "
                   f"{rerun} --retry-failed", err=True)
    if failed or unfinished:
        raise click.exceptions.Exit(1)


def _exit_disk_full(results: Path, name: str, rids: list[str], command: str) -> None:
    """A grid stopped by a full disk: one line, exit 1. Its runs are queued (or, where not even
    status.json could be written, still marked running), so the same command resumes them."""
    from bench.launch.scheduler import DISK_FULL_FIX, RunDir

    reasons = [RunDir(results, name, rid).inspect().status.get("reason", "") for rid in rids]
    full = next((r[:-len(DISK_FULL_FIX)].rstrip("; ") for r in reasons if r.endswith(DISK_FULL_FIX)), None)
    if full is None:
        full = (f"no space left on device under {results / name} (status.json of run {rids[0]} could not be "
                f"updated either; the run resumes all the same)")
    click.echo(f"error: {full}; free space, then {command} to resume", err=True)
    raise click.exceptions.Exit(1)


def _rerun(grid_file: str, sets: tuple[str, ...], smoke: bool, results: Path) -> str:
    """The bench run command line that plans the same runs again."""
    import shlex

    words = ["bench", "run", grid_file, *(f"--set={s}" for s in sets), *(["--smoke"] if smoke else [])]
    if results != Path(os.environ.get("BENCH_RESULTS", "results")):
        words += ["--results", str(results)]
    return shlex.join(words)


@cli.command()
@click.argument("grids", nargs=-1)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="as given to bench run (grid files)")
@click.option("--smoke", is_flag=True, help="as given to bench run (grid files)")
@click.option("--watch", is_flag=True, help="refresh every 2 s until every run has ended")
@max_runs_option
@results_option
def status(grids, sets, smoke, watch, max_runs, results):
    """Runs of each GRID (a grid file or a grid name under results/; default: all) by state, with ETA.
    KEY=VALUE words override keys of the grid files, as --set does."""
    import time

    sets = positional_sets(tuple(g for g in grids if "=" in g and not Path(g).exists()), sets)
    grids = tuple(g for g in grids if "=" not in g or Path(g).exists())

    def groups():
        names = grids or sorted(p.name for p in results.iterdir() if p.is_dir()) if results.is_dir() else grids
        if not names:
            raise BenchError(f"no grids under {results}; run one with bench run GRID.yaml")
        out = []
        for grid in names:
            if Path(grid).is_file():
                from bench.launch import scheduler

                parsed, name, configs, _ = _grid_and_configs(grid, sets, smoke, max_runs)
                runs = scheduler.plan(results, name, configs)
                flat = [p.config.flat() for p in runs]  # what --dry-run shows, for runs not created yet
                out.append((name, [p.run.path for p in runs], flat, flat, parsed.text or "",
                            [" ".join(sets)] if sets else []))
            elif (results / grid).is_dir():
                from bench.launch.status import grid_order

                paths = sorted(p for p in (results / grid).iterdir() if (p / "config.yaml").is_file())
                saved = results / grid / "grid.yaml"
                text = saved.read_text(errors="replace") if saved.is_file() else ""
                from bench.store import overrides

                ids = {rid: i for i, rid in enumerate(overrides.run_order(results / grid))}  # as bench run planned
                paths = sorted(paths, key=lambda p: ids.get(p.name, len(ids)))
                order = None if ids else grid_order(results / grid)  # grid order, else run-id order
                out.append((grid, paths, None, order, text, overrides.applied(results / grid, [p.name for p in paths])))
            else:
                raise BenchError(f"no grid named {grid!r} under {results}; pass a grid file or a name listed "
                                 f"by bench status")
        return out

    while True:
        from bench.launch.status import in_grid_order, read_rows, render

        tables, active = [], False
        for name, paths, configs, planned, grid_text, applied in groups():
            rows = in_grid_order(read_rows(paths, configs), planned)
            active |= any(r.state in ("running", "queued") for r in rows)
            with_sets = f" (overrides: {'; '.join(applied)})" if applied else ""
            tables.append(render(rows, f"{name}: {len(rows)} runs{with_sets}", grid_text))
        if watch:
            click.clear()
        click.echo("\n\n".join(tables))
        if not (watch and active):
            return
        time.sleep(2)


cli.add_command(status, name="list")
cli.add_command(data_commands)  # bench data fetch NAME
from bench.study.eval_command import eval_command  # noqa: E402  (click only; no torch at import)
cli.add_command(eval_command)  # bench eval RUN_DIR|GRID [--metrics a,b] [--n N] [--checkpoint final|best|all]
from bench.report.command import report as report_command  # noqa: E402  (click only; no pandas at import)
cli.add_command(report_command)  # bench report [GRID_NAME|RESULTS_DIR]...
from bench.speed.command import speed as speed_command  # noqa: E402  (click only; no torch at import)
cli.add_command(speed_command)  # bench speed [--variant dcgan] [--size 64] [--batch 128] [--paths]
from bench.study.score import score_command; cli.add_command(score_command)  # noqa: E402,E702  bench score A B [--out F.json]


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--n", "n", type=click.IntRange(1), default=1000, show_default=True, help="number of samples")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="output .npz file")
@click.option("--class", "class_", type=int, default=None, help="class label for conditional variants")
@click.option("--seed", type=int, default=None, help="latent seed (default: the fixed evaluation seed)")
@click.option("--checkpoint", "which", default="final", show_default=True, metavar="final|best|STEP",
              help="the last checkpoint, the best by the curve (ckpt/best.pt), or the one saved at STEP")
def sample(run_dir, n, out, class_, seed, which):
    """Write N samples of a run's checkpoint to an .npz (samples, labels, value_range, step)."""
    from bench.study.sampling import sample_run

    path = sample_run(run_dir, n, out, class_, seed, which)
    click.echo(f"wrote {n} samples to {path}", err=True)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--checkpoint", "which", type=click.Choice(["final", "best"]), default="final", show_default=True)
@click.option("--interp", type=click.Choice(["auto", "slerp", "lerp"]), default="auto", show_default=True,
              help="auto: slerp for Gaussian latents, lerp for uniform ones")
@click.option("--pairs", type=click.IntRange(10, 100_000), default=2000, show_default=True,
              help="latent pairs for the perceptual path length")
@click.option("--seed", type=int, default=None, help="latent seed (default: the fixed evaluation seed)")
@click.option("--device", default="cpu", show_default=True)
def explore(run_dir, which, interp, pairs, seed, device):
    """Interpolation strips (and a class sweep for conditional runs) into RUN/explore/, and the perceptual
    path length as a metric record."""
    from bench.study.explore import explore_run

    files, lines = explore_run(run_dir, which, interp, pairs, seed, device)
    for line in lines:
        click.echo(line)
    click.echo(f"wrote {', '.join(str(f) for f in files)}", err=True)


def interrupted(argv: list[str]) -> str:
    """The Ctrl-C line: what was kept and the command that carries on."""
    import shlex

    command = shlex.join(["bench", *[a for a in argv if a != "--dry-run"]])
    if argv[:1] == ["run"]:
        return (f"interrupted; finished runs are kept and the others resume from their last checkpoint "
                f"with: {command}")
    return f"interrupted; run it again with: {command}"


def main(argv=None) -> int:
    try:
        code = cli.main(args=argv, prog_name="bench", standalone_mode=False)
    except BenchError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # click turns Ctrl-C into Abort
        click.echo(interrupted(sys.argv[1:] if argv is None else argv), err=True)
        terminated = isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated)
        return 143 if terminated else 130  # 128 + the signal, as a shell reports it
    except click.UsageError as exc:  # a bad option value: one line, like every other mistake
        where = f"; {exc.ctx.command_path} --help lists the options" if exc.ctx else ""
        click.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
        return 2
    except click.ClickException as exc:
        exc.show()
        return 2
    except Exception as exc:
        from bench.launch.scheduler import disk_full

        full = disk_full(exc)
        if not full:
            raise
        click.echo(f"error: {full}; free space, then run the same command again", err=True)
        return 2
    return code if isinstance(code, int) else 0  # a command's Exit(n) comes back as n


if __name__ == "__main__":
    sys.exit(main())
