"""`bench data ...`: the dataset commands, the one place anything is downloaded.

Kept outside bench/datasets so `bench --help` does not import torch through the loaders.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="data")
def data():
    """Datasets on disk: fetch them before a run (runs never download)."""


# Written out so `bench data fetch --help` stays free of torch; tests/test_fetch_messages.py keeps
# it equal to bench/datasets/fetch.py and the dataset registry.
FETCHABLE = "anime, cartoonset, cifar10, imagefolder, mnist, stanford_dogs"
BUILT_IN = "digits, grid25, mnist5k, ring8, shapes, stacked_digits, stacked_mnist5k"
BUILT_FROM = "stacked_mnist (from mnist)"


@data.command(epilog=f"\b\nNAME: {FETCHABLE}\n(built in, nothing to fetch: {BUILT_IN};\n"
                     f"built from a fetched dataset: {BUILT_FROM})")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where to put it (default: $BENCH_DATA/NAME, else ./data/NAME); pass the same as data.root")
def fetch(name, root):
    """Download dataset NAME: resumable, SHA-256 checked, safely extracted (or say where to get it)."""
    from bench.datasets.fetch import fetch as fetch_dataset
    from bench.datasets.files import data_root

    for line in fetch_dataset(name, root if root is not None else data_root("", name)):
        click.echo(line, err=True)


@data.command()
@click.argument("name", metavar="NAME[:KEY=VALUE,...]")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--size", type=click.IntRange(8, 128), default=32, show_default=True, help="image side in pixels")
def export(name, folder, size):
    """Write dataset NAME's images (with its options, e.g. cifar10:split=test) as PNG files into a new
    FOLDER, in the dataset's order, for other tools or as a bench score reference."""
    from bench.study.references import export as export_images

    count = export_images(name, folder, size)
    click.echo(f"wrote {count} images of {name} at {size} px to {folder}", err=True)


@data.command(name="list")
def list_datasets():
    """Every dataset: built in, present or missing, its size on disk and the folder it reads."""
    from bench import registry
    from bench.datasets.base import FileDataset
    from bench.datasets.files import data_root

    lines = [f"{'dataset':16} {'state':9} {'size':>9}  folder"]
    for name in registry.datasets.names():
        cls = registry.datasets.get(name)
        if cls.built_from:
            source = data_root("", cls.built_from)
            state = "present" if source.is_dir() and any(source.iterdir()) else "missing"
            lines.append(f"{name:16} {state:9} {'-':>9}  {source} (built from {cls.built_from}: "
                         f"bench data fetch {cls.built_from})")
            continue
        if not issubclass(cls, FileDataset):
            lines.append(f"{name:16} {'built in':9} {'-':>9}  -")
            continue
        root = data_root("", name)
        files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        size = sum(p.stat().st_size for p in files)
        state = "present" if files else "missing"
        lines.append(f"{name:16} {state:9} {_size(size) if files else '-':>9}  {root}")
    lines.append("folders: data.root, else $BENCH_DATA/NAME, else ./data/NAME; bench data fetch NAME fills one")
    click.echo("\n".join(lines))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
