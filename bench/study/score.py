"""`bench score A B`: two image sets (folders or `bench sample` arrays) scored by the registered
feature-space metrics, with the protocol records `bench eval` writes.

A plays the generated side and B the reference, as torch-fidelity's input1/input2 do. Features
come from the domain extractor fitted on a built-in dataset (`--features`, default digits), so
scoring works offline; the extractor, sample counts and both sources are recorded with each value.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from bench import registry
from bench.errors import BenchError

DEFAULT_METRICS = ("fd", "kid", "prc")
MAX_IMAGES = 50_000  # the protocols' largest count; both sets are held in memory as uint8


def load_set(path: str):
    """uint8 N x 3 x H x W from an image folder (searched recursively) or an .npz of `bench sample`."""
    import numpy as np
    import torch

    from bench.study.score_inputs import check_count, folder_images, npz_samples

    p = Path(path)
    if p.is_file() and p.suffix == ".npz":
        x = torch.from_numpy(npz_samples(path))
        x = (x * 255).round().to(torch.uint8)
    elif p.is_dir():
        from bench.datasets.files import IMAGE_EXTENSIONS

        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)[:MAX_IMAGES]
        if not files:
            raise BenchError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        arrays = folder_images(path, files)
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise BenchError(f"{path}: images of several sizes ({', '.join(sorted(map(str, shapes))[:3])}); "
                             f"resize them to one square size first")
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        raise BenchError(f"{path}: not an image folder or an .npz file")
    check_count(path, len(x))
    if x.shape[-1] != x.shape[-2]:
        raise BenchError(f"{path}: images are {x.shape[-2]}x{x.shape[-1]}; bench score takes square images")
    x = x[:MAX_IMAGES]
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


def load_reference(b: str, side: int):
    """Set B: a registered dataset by name (at A's side), else a folder or .npz as load_set reads it."""
    from bench.study import references

    if references.looks_like_name(b):
        return references.load(b, side)[0][:MAX_IMAGES]
    return load_set(b)


def default_features(b: str) -> str:
    """B's own dataset when B names a built-in labelled image set (its extractor fits it best), else digits."""
    from bench.metrics.context import feature_family
    from bench.study import references

    name = references.parse(b)[0] if references.names_dataset(b) else ""
    return name if name and feature_family(name) == "domain" else "digits"


@functools.cache
def _context_class():
    """ScoreContext, built on first use so importing this module (for `bench --help`) loads no torch."""
    import torch

    from bench.metrics.context import EvalContext

    class ScoreContext(EvalContext):
        """An EvalContext whose reference is set B; the extractor stays the one fitted on `features`."""

        def __init__(self, reference, source: str, features: str):
            from bench.config.schema import IMAGE_SIZES

            size, cls = int(reference.shape[-1]), registry.datasets.get(features)
            if size not in IMAGE_SIZES:
                raise BenchError(f"the sets hold {size} px images; bench score takes one of "
                                 f"{', '.join(map(str, IMAGE_SIZES))} px")
            data = cls.load(cls.Options(), size, torch.device("cpu"))
            super().__init__(None, data, None, torch.device("cpu"), dataset=features)
            if self.family != "domain":
                raise BenchError(f"--features {features}: not a built-in labelled image dataset; pick one of "
                                 f"digits, shapes, mnist5k")
            self._reference, self.source = reference, source

        @property
        def reference(self):
            return self._reference, None

        @property
        def ref_split(self) -> str:
            return "set"

        @functools.cached_property
        def real_features(self):
            return self.extractor.features(self._reference)

        @functools.cached_property
        def derived_key(self) -> str:
            """The cache key of values computed from the reference (FD statistics, ceilings): set B's
            own bytes, so two reference sets scored in one feature space never share a cached value."""
            import hashlib

            digest = hashlib.sha256(self._reference.contiguous().numpy().tobytes()).hexdigest()[:16]
            return f"{super().derived_key}-set{digest}"

        def protocol(self) -> dict:
            out = super().protocol()
            out.update(ref_dataset=self.source, ref_split="set", ref_fingerprint="", seed=None,
                       extractor_fitted_on=self.dataset)
            return out

    return ScoreContext


class ScoreSet:
    """Set A where metrics expect a generated draw: images and their features."""

    def __init__(self, ctx, images):
        self.images, self.n, self.labels = images, len(images), None
        self._features = ctx.extractor.features(images)

    def features(self, n: int):  # a torch.Tensor; torch is imported only when scoring starts
        return self._features[:n]


def score(a: str, b: str, names: list[str], features: str) -> list[dict]:
    """The records of every asked-for metric on A (generated side) against B (reference)."""
    from bench.metrics import suite
    from bench.metrics.families.base import FINAL
    from bench.metrics.families.builtin_images import DomainFeatures
    from bench.metrics.records import record

    set_a = load_set(a)
    set_b = load_reference(b, int(set_a.shape[-1]))
    if set_a.shape[1:] != set_b.shape[1:]:
        raise BenchError(f"{a} holds {set_a.shape[-1]} px images and {b} {set_b.shape[-1]} px; give sets of one size")
    ctx = _context_class()(set_b, str(b), features)
    chosen, missing = suite.resolve_names(ctx, names)
    feature_metrics = [n for n in registry.metrics.names() if isinstance(registry.metrics.get(n)(), DomainFeatures)]
    bad = missing + [n for n in chosen if n not in feature_metrics]
    if bad:
        raise BenchError(f"bench score computes feature-space metrics only; {bad[0]!r} is not one; valid: "
                         f"{', '.join(feature_metrics)} (and fid)")
    gen, protocol = ScoreSet(ctx, set_a), {**ctx.protocol(), "gen_source": str(a)}
    records = []
    for name in chosen:
        for v in registry.metrics.get(name)().compute(ctx, gen, FINAL, len(set_a)):
            records.append(record(v, step=0, kind="final", checkpoint=str(a), protocol=protocol))
    return records


def write_json(path: str, a: str, b: str, records: list[dict]) -> None:
    from bench.store.runs import write_atomic

    try:
        write_atomic(Path(path), json.dumps({"a": a, "b": b, "records": records}, indent=1, sort_keys=True))
    except OSError as exc:
        raise BenchError(f"--out {path}: cannot write it ({exc.strerror or type(exc).__name__}); "
                         f"pick a writable folder with free space") from None


def table(records: list[dict]) -> str:
    """Columns as wide as their longest entry, so long labels keep the values lined up."""
    rows = [(r["name"], r["label"], f"{r['value']:.6g}", f" ± {r['std']:.4g}" if r.get("std") is not None else "")
            for r in records]
    name_w = max([len("metric")] + [len(r[0]) for r in rows])
    label_w = max([len("label")] + [len(r[1]) for r in rows])
    value_w = max([len("value")] + [len(r[2]) for r in rows])
    lines = [f"{'metric':{name_w}}  {'label':{label_w}}  {'value':>{value_w}}"]
    lines += [f"{n:{name_w}}  {label:{label_w}}  {v:>{value_w}}{std}" for n, label, v, std in rows]
    return "\n".join(lines)


@click.command(name="score")
@click.argument("a")
@click.argument("b")
@click.option("--metrics", "metric_names", default=",".join(DEFAULT_METRICS), show_default=True, metavar="A,B",
              help="feature-space metrics: fd (or fid), kid, prc, density_coverage")
@click.option("--features", default=None,
              help="built-in dataset whose fitted extractor gives the features (digits, shapes, mnist5k); "
                   "default: B's dataset when B names one of them, else digits")
@click.option("--out", default=None, metavar="FILE.json", help="also write the records as JSON")
def score_command(a, b, metric_names, features, out):
    """Score image set A against reference B (image folders, bench sample .npz files, or for B a dataset
    name such as mnist5k or cifar10:split=test, loaded at A's image size)."""
    if out is not None:
        from bench.study.sampling import out_file

        out_file(out, ".json")
    names = [m.strip() for m in metric_names.split(",") if m.strip()]
    if not names:
        raise BenchError("--metrics is empty; give names such as fd,kid,prc")
    records = score(a, b, names, features or default_features(b))
    click.echo(table(records))
    if out is not None:
        write_json(out, a, b, records)
        click.echo(f"wrote {len(records)} records to {out}", err=True)
