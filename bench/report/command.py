"""`bench report`: grids under results/ to reports/<grid>/ (HTML, Markdown, CSV, LaTeX)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click


@click.command(name="report")
@click.argument("targets", nargs=-1, metavar="[GRID_NAME|RESULTS_DIR]...")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="reports go to OUT/<grid>/")
@click.option("--baseline", "baseline", multiple=True, metavar="KEY=VALUE",
              help="configuration every other one is tested against; repeat for a bundle "
                   "or AXIS=NAME for a named bundle; one per stratum (dataset and protocol), an ambiguous match "
                   "is an error (default: the grid's first configuration in each stratum)")
@click.option("--format", "formats", default="html,md,csv,tex", show_default=True, help="comma-separated: html,md,csv,tex")
@click.option("--test", type=click.Choice(["mannwhitney", "welch"]), default="mannwhitney", show_default=True,
              help="test against the baseline (Holm-corrected over each stratum's headline metrics)")
@click.option("--threshold", "thresholds", multiple=True, metavar="KEY=RULE",
              help="stability rule, repeatable: divergence.fd=start+25%, collapse.modes_covered=-25%, "
                   "collapse.msssim_gap=+0.10, reach.modes_covered=50%, reach.recall=10%, loss.d_max=0.05, "
                   "loss.g_rise=1, loss.windows=3, grad.g_share=0.01; RULE 'off' drops a rule")
@click.option("--max-panels", type=click.IntRange(1), default=12, show_default=True,
              help="figure panels (one per setting of the non-baseline keys) drawn; tables keep every configuration")
@click.option("--link-samples", is_flag=True, help="link sample PNGs in the run folders instead of embedding them")
@click.option("--results", "results", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: os.environ.get("BENCH_RESULTS", "results"), show_default=False,
              help="results folder (default: ./results or $BENCH_RESULTS)")
def report(targets, out, baseline, formats, test, thresholds, max_panels, link_samples, results):
    """Tables, statistics across seeds, stability and figures for each grid, from the run folders alone;
    two or more grids named together also get a comparison on the configuration keys they share."""
    from bench.report.build import Options, parse_formats, write_report
    from bench.report.load import find_grids
    from bench.report.stability import parse_thresholds

    options = Options(baseline=baseline, formats=parse_formats(formats), test=test,
                      thresholds=parse_thresholds(thresholds), max_panels=max_panels,
                      embed_samples=not link_samples)
    reports: list = []
    grids = find_grids(targets, Path(results))
    for grid_dir in grids:
        start = time.perf_counter()
        dest = out / grid_dir.name
        times = write_report(grid_dir, dest, options, keep=reports)
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in times.items())
        target = dest / "index.html" if "html" in options.formats else dest
        click.echo(f"{grid_dir.name}: {target} ({time.perf_counter() - start:.1f}s: {parts})", err=True)
    if len(targets) > 1 and len(reports) > 1:  # grids named together: line them up on their shared keys
        from bench.report.compare import write_comparison

        dest = write_comparison(reports, out)
        click.echo(f"comparison: {dest / 'index.html'}" if dest else
                   "comparison: the grids share no configuration key; nothing to line up", err=True)


if __name__ == "__main__":
    sys.exit(report())
