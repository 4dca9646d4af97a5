"""`bench data ...`: the dataset commands, the one place anything is downloaded.

Kept outside bench/datasets so `bench --help` does not import torch through the loaders.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="data")
def data():
    """Datasets on disk: fetch them before a run (runs never download)."""


@data.command()
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where to put it (default: $BENCH_DATA/NAME, else ./data/NAME); pass the same as data.root")
def fetch(name, root):
    """Download dataset NAME: resumable, SHA-256 checked, safely extracted (or say where to get it)."""
    from bench.datasets.fetch import fetch as fetch_dataset
    from bench.datasets.files import data_root

    for line in fetch_dataset(name, root if root is not None else data_root("", name)):
        click.echo(line, err=True)
