"""Reports: results/<grid>/ run folders in, tables, statistics, figures and pages out.

Everything here reads only the run folders (config.yaml, status.json, metrics.jsonl, samples/), so
a results folder copied to a laptop without a GPU stack gives the same report. No module in this
package imports torch; a test checks that in a fresh interpreter.

load -> tidy tables; stability -> per-run collapse and divergence; summary -> per-configuration
statistics and tests (stats holds the numbers); figures -> PNGs; render/text -> HTML, Markdown,
LaTeX, CSV; build ties them together for one grid.
"""
