"""A registered dataset as a set of images: the reference `bench score` takes by name, and what
`bench data export` writes for other tools, as torch-fidelity accepts registered inputs beside folders.

`NAME` or `NAME:KEY=VALUE,...` with the dataset's options (`cifar10:split=test`, `shapes:classes=4`),
loaded at a given side through the same loader and cache as a run, so the images are the run's own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench import registry
from bench.errors import BenchError

PNG_DIGITS = 6  # file names 000000.png...: sorted order is the dataset's order


def parse(spec: str) -> tuple[str, dict]:
    """`NAME[:KEY=VALUE,...]` to the dataset name and its `data.` options."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"{spec}: expected NAME:KEY=VALUE,... such as cifar10:split=test")
        key = key.strip()
        options[key if key.startswith("data.") else f"data.{key}"] = _value(value.strip())
    return name, options


def _value(text: str):
    import yaml

    from bench.config.schema import read_yaml

    try:
        return read_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError):  # left as text: the option's type check names it
        return text


def names_dataset(spec: str) -> bool:
    """True where `spec` names a registered dataset and no file or folder of that name exists (a path wins)."""
    return not Path(spec).exists() and parse(spec)[0] in registry.datasets.names()


def looks_like_name(spec: str) -> bool:
    """A word that is no file or folder and has no path separator or suffix: meant as a dataset name."""
    name = parse(spec)[0] if ":" in spec else spec
    return not Path(spec).exists() and "/" not in name and not Path(name).suffix


def load(spec: str, side: int):
    """uint8 N x 3 x side x side images of the dataset `spec`, in its own order, and their labels (or None)."""
    import torch

    from bench.config.schema import resolve

    name, options = parse(spec)
    if name not in registry.datasets.names():
        raise BenchError(f"{spec}: no such file or folder, and no dataset {name!r}; datasets: "
                         f"{', '.join(registry.datasets.names())}")
    dataset = registry.datasets.get(name)
    if dataset.kind != "images":
        raise BenchError(f"{spec}: dataset {name!r} is {dataset.kind}; bench score and bench data export take "
                         f"image sets")
    valid = sorted(f.name for f in dataclasses.fields(dataset.Options))
    unknown = [k for k in options if k[len("data."):] not in valid]
    if unknown:
        raise BenchError(f"{spec}: dataset {name!r} has no option {unknown[0][len('data.'):]!r}; valid: "
                         f"{', '.join(valid)}")
    config = resolve({"variant": "dcgan", "dataset": name, "image_size": side, "device": "cpu", **options},
                     where=f"dataset reference {spec}")
    data = registry.datasets.get(name).load(config.data, config.loop.image_size, torch.device("cpu"))
    images = data.images
    images = images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images
    return images, getattr(data, "labels", None)


def export(spec: str, folder: Path, side: int) -> int:
    """Write the dataset's images as PNG files into a new folder, all or nothing; returns the count."""
    import os
    import tempfile

    from PIL import Image

    name, _ = parse(spec)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BenchError(f"{folder} exists and is not an empty folder; pass a new one")
    images, _ = load(spec, side)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
            Image.fromarray(image).save(tmp / f"{i:0{PNG_DIGITS}d}.png")
        if folder.exists():
            folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(images)
