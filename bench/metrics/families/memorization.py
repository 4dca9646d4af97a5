"""Memorization of image data (opt-in: `bench eval --metrics memorization`): nearest training images
in the space the run's other distances use, the domain extractor on built-in data and Inception
pool features on natural images (its weights, never downloaded here).

Values: the mean minimum cosine distance of generated samples to the training set and its real
twin (held-out real images to the training set), the MiFID penalty, the Frechet distance to the
training set and MiFID, and the data-copying share with its real-vs-real ceiling (bench/metrics/
memorization.py). The copy test needs real images the run never trained on: a dataset trained on
its `train` split supplies its `test` split; a run trained on all its images has none, so those three
values are not written and the protocol of the others says why. `bench eval` also draws the closest
generated/training pairs (memorization/pairs.png in the run folder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from bench import registry
from bench.metrics import fidelity, inception_judge, memorization
from bench.metrics.context import Generated, metrics_cache, to_uint8_images
from bench.metrics.families.base import FINAL, Metric, domain_tag
from bench.metrics.records import count_label

MAX_HELD_OUT = 10_000  # held-out real images scored, a fixed subset chosen with eval_seed
NO_HELD_OUT = ("the run trained on split {split!r}, so no real image is held out; train on data.split: train "
               "to get the copy test")


class Space:
    """The run's feature space: features of uint8 images, the training set's, and the protocol fields."""

    def __init__(self, ctx):
        self.ctx = ctx
        if ctx.family == "domain":
            self.tag, self.fd_name, self.path = domain_tag(ctx), "FD", None
        else:
            self.path = fidelity.inception_weights(ctx.weights)  # MissingWeights first, before any work
            self.wid = fidelity.weights_id("inception-v3-compat", self.path)
            self.tag, self.fd_name = f"{ctx.ref_split}/inception", "FID"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.ctx.family == "domain":
            return self.ctx.extractor.features(images)
        return fidelity.inception_features(images, self.path, self.ctx.device)

    def train(self) -> torch.Tensor:
        """Features of the training reference (every training image up to 50,000), cached as the
        Inception judge caches them."""
        ctx = self.ctx
        if ctx.family == "domain":
            return ctx.real_features
        images = ctx.reference[0]
        path = metrics_cache() / "fidelity" / f"{ctx.cache_key}-n{len(images)}-{self.wid.split('@')[1]}-pool2048.pt"
        return inception_judge.cached(path, lambda: {"features": self.features(images)})["features"]

    def record(self) -> dict:
        if self.ctx.family == "domain":
            return self.ctx.extractor.record()
        return {"extractor": self.wid, "extractor_layer": "2048", "extractor_input": "uint8, native size"}


def has_held_out(ctx) -> bool:
    return getattr(ctx.config.data, "split", "all") == "train"


def held_out(ctx) -> tuple[torch.Tensor | None, str]:
    """(uint8 images the run never trained on, where they come from) or (None, why there are none)."""
    if not has_held_out(ctx):
        return None, NO_HELD_OUT.format(split=getattr(ctx.config.data, "split", "all"))
    options = dataclasses.replace(ctx.config.data, split="test")
    data = registry.datasets.get(ctx.dataset).load(options, ctx.image_size, torch.device("cpu"))
    images = to_uint8_images(data.images.cpu())
    if len(images) > MAX_HELD_OUT:
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(ctx.eval_seed))[:MAX_HELD_OUT]
        images = images[keep.sort().values]
    return images, "test split"


@registry.metrics.register("memorization")
class Memorization(Metric):
    """Nearest-training-image distances, MiFID beside FD/FID, and the data-copying share."""

    stages = (FINAL,)
    opt_in = True

    def outputs(self, ctx, stage, n):
        c = count_label(n)
        t = f"{ctx.ref_split}/inception" if ctx.family == "natural" else domain_tag(ctx)
        fd_name = "FID" if ctx.family == "natural" else "FD"
        out = {"mem_distance": f"min-cos@{c}/{t}", "mifid_penalty": f"MiFID-penalty@{c}/{t}",
               "mifid_fd": f"{fd_name}-train@{c}/{t}", "mifid": f"MiFID@{c}/{t}"}
        if has_held_out(ctx):
            out.update({"mem_distance_real": f"min-cos-real/{t}", "copy_share": f"copy-share@{c}/{t}",
                        "copy_share_real": f"copy-share-real/{t}"})
        return out

    def compute(self, ctx, gen, stage, n):
        space = Space(ctx)
        train = space.train()
        fake = space.features(gen.images[:n])
        dist, _ = memorization.nearest(fake, train)
        mean = float(dist.mean())
        fd = fidelity.fd(fake, train)
        numbers = {"mem_distance": mean, "mifid_penalty": memorization.mifid_penalty(mean), "mifid_fd": fd,
                   "mifid": memorization.mifid(fd, mean)}
        images, source = held_out(ctx)
        numbers.update(copy_test(ctx, space, train, dist, images))
        params = {**space.record(), "n_gen": n, "n_ref": len(train), "distance": "1 - |cos|",
                  "mifid_eps": memorization.MIFID_EPS, "held_out": source,
                  "n_held_out": 0 if images is None else len(images),
                  "library": "own (MiFID as Bai et al. 2021; copy share after Meehan et al. 2020)"}
        return self.values(ctx, stage, n, numbers, params)


def copy_test(ctx, space: Space, train: torch.Tensor, dist: torch.Tensor, images) -> dict:
    """The copy share of the generated distances against held-out real ones, and its real-vs-real
    ceiling: one random half of the held-out images against the other."""
    if images is None:
        return {}
    real, _ = memorization.nearest(space.features(images), train)
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(ctx.eval_seed + 3))
    half = len(real) // 2
    return {"mem_distance_real": float(real.mean()), "copy_share": memorization.copy_share(dist, real),
            "copy_share_real": memorization.copy_share(real[order[:half]], real[order[half:2 * half]])}


def write_pairs(folder: Path, ctx, G, n: int = 2_000, k: int = 16) -> Path:
    """folder/pairs.png: the k generated samples (of n on the evaluation latents) closest to a
    training image, each above that training image."""
    from PIL import Image

    from bench.store.runs import save_atomic

    space = Space(ctx)
    gen = Generated(ctx, G, n)
    dist, index = memorization.nearest(space.features(gen.images), space.train())
    grid = memorization.pairs_picture(gen.images, ctx.reference[0], dist, index, k)
    path = folder / "pairs.png"
    folder.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(grid.permute(1, 2, 0).numpy())
    save_atomic(path, lambda tmp: picture.save(tmp, format="png"))
    return path
