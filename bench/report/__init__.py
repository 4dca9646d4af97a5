"""Reports: results/<grid>/ run folders in, tables, statistics, figures and pages out.

Everything here reads only the run folders (config.yaml, status.json, metrics.jsonl, samples/), so
a results folder copied to a laptop without a GPU stack gives the same report. No module in this
package imports torch; a test checks that in a fresh interpreter.

load -> tidy tables; stability -> per-run collapse and divergence; summary -> per-configuration
statistics and tests (stats holds the numbers); figures -> PNGs; render/text -> HTML, Markdown,
LaTeX, CSV; build ties them together for one grid.

Notebook entry points (imported on first use, so `import bench.report` stays light):
`frame(*grids)` is the tidy table of one or more grids, `compare_grids(*grids)` their comparison.
"""


def __getattr__(name):
    if name in ("frame", "compare_grids"):
        from bench.report import compare

        return getattr(compare, name)
    raise AttributeError(f"module 'bench.report' has no attribute {name!r}")
