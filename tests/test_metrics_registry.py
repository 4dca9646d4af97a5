"""Every registered metric, on the first offline case it applies to: the values it says it writes, with
their protocol; the same numbers twice without touching the training RNG; and real data told apart
from a collapsed generator. The case list comes from the registry, so a new metric is covered the day
it is registered, and one that applies to no offline case fails here until a case is added.

The generator is a stand-in that returns real examples (of the requested class for conditional runs),
so every number is one a well-trained run could produce; the collapsed one returns one real example.
Metrics that need downloaded weights (Inception, VGG16) are checked on their offline path: a one-line
reason when asked for by name, NaN values that say why in the default final protocol; the determinism and
collapse tests skip them visibly and run them again on a small fixed random network standing in for both
backbones (no file, no download).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench import registry
from bench.config.schema import resolve
from bench.datasets.base import FileDataset
from bench.errors import BenchError
from bench.metrics import facts, fidelity
from bench.metrics.context import FEATURE_FAMILIES, EvalContext, feature_family
from bench.metrics.records import record
from bench.metrics.suite import FINAL, run_protocol

N = 300
SIZE = 16
CPU = torch.device("cpu")


def available(name: str) -> bool:
    """Whether the dataset loads here without a download: every built-in one, and file sets already fetched."""
    cls = registry.datasets.get(name)
    try:
        cls.check(cls.Options(), SIZE)
    except BenchError:
        return False
    return not issubclass(cls, FileDataset)  # a folder set found under data/ would depend on this machine


OFFLINE = [n for n in registry.datasets.names() if available(n)]
SMALL = {"stacked_digits": {"data.count": 3000}, "shapes": {"data.classes": 6, "data.per_class": 40}}  # speed only
VARIANT = {"points": "mlp_gan", "images": "dcgan"}  # dcgan: the probe needs a conv D
READS_NO_SAMPLES = {"probe"}  # scores D on real images; the generator does not enter
N_FOR = {"probe": 60}  # its 5-fold search over C grows fast with the count: 3 s at 60 images, 38 s at 200
REQUIRED = {"ref_dataset", "ref_split", "ref_fingerprint", "checkpoint", "eval_seed", "library", "seed"}
# 60 images of 10 classes leave some classes with fewer than 5 members for the probe's 5 folds.
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")


class RealData(nn.Module):
    """A generator that returns real examples (one example only when `collapsed`), by class when given labels."""

    def __init__(self, data, collapsed: bool = False):
        super().__init__()
        x, y = data.reference(2000, torch.Generator().manual_seed(5))
        self.x, self.y = (x[:1], None if y is None else y[:1]) if collapsed else (x, y)

    def forward(self, z, y=None):
        pick = (z[:, 0].double() * 1e6).abs().long()  # a fixed, spread-out example per latent
        if y is None or self.y is None or len(self.x) == 1:
            return self.x[pick % len(self.x)].to(z.device)
        out = torch.empty(len(z), *self.x.shape[1:])
        for c in y.unique():
            pool = (self.y == c).nonzero().flatten()
            out[y == c] = self.x[pool[pick[y == c] % len(pool)]]
        return out.to(z.device)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A labelled folder of small PNGs: the natural-image family without downloads."""
    root = tmp_path_factory.mktemp("natural")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir()
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3)).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def offline_weights(tmp_path_factory):
    """No Inception or VGG16 anywhere, whatever this machine has cached."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
    for name in (fidelity.INCEPTION_ENV, fidelity.VGG16_ENV, fidelity.DOWNLOAD_ENV):
        mp.delenv(name, raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def cases(bench_cache, folder, offline_weights):
    """Contexts in order (points, built-in images, their conditional runs, a natural folder unconditional
    and conditional), built lazily."""
    keys = []
    for dataset in OFFLINE:
        kind = registry.datasets.get(dataset).kind
        keys.append((dataset, VARIANT[kind]))
        if kind == "images":
            keys.append((dataset, "cgan"))
    keys += [("imagefolder", "dcgan"), ("imagefolder", "cgan")]  # cgan: the natural conditional judge
    built: dict = {}

    def get(key):
        if key not in built:
            dataset, variant_name = key
            extra = {"data.root": str(folder)} if dataset == "imagefolder" else SMALL.get(dataset, {})
            width = {"width": 8} if variant_name != "mlp_gan" else {}
            config = resolve({"variant": variant_name, "dataset": dataset, "image_size": SIZE, "device": "cpu",
                              **width, **extra})
            data = registry.datasets.get(dataset).load(config.data, SIZE, CPU)
            variant = registry.variants.get(variant_name)(config.options, data.spec)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                _, D = variant.build()
            built[key] = (EvalContext(config, data, variant, CPU), D)
        return built[key]

    def first(name):
        metric = registry.metrics.get(name)()
        for key in keys:  # only datasets of a family the metric serves are loaded; applies() decides
            labelled_family = FEATURE_FAMILIES[feature_family(key[0])]
            if labelled_family not in metric.families:
                continue
            ctx, D = get(key)
            if metric.applies(ctx):
                return ctx, D
        pytest.fail(f"metric {name!r} applies to none of the offline cases {keys}; add one it applies to")

    return first


def compute(ctx, D, name, stage=FINAL, collapsed=False):
    return run_protocol(ctx, RealData(ctx.data, collapsed), stage, names=[name], n=N_FOR.get(name, N), D=D)


@pytest.fixture(scope="module")
def measured(cases):
    """compute() once per (metric, stage, collapsed) for the tests below; MissingWeights when it needs them."""
    done: dict = {}

    def get(name, stage=FINAL, collapsed=False):
        if (name, stage, collapsed) not in done:
            ctx, D = cases(name)
            try:
                done[name, stage, collapsed] = compute(ctx, D, name, stage, collapsed)
            except fidelity.MissingWeights as exc:
                done[name, stage, collapsed] = exc
        return done[name, stage, collapsed]

    return get


@pytest.mark.parametrize("name", registry.metrics.names())
def test_metric_writes_what_it_declares_with_its_protocol(cases, measured, name):
    ctx, D = cases(name)
    metric, n = registry.metrics.get(name)(), N_FOR.get(name, N)
    if isinstance(measured(name), fidelity.MissingWeights):
        assert "\n" not in str(measured(name)) and "weights not found" in str(measured(name))
        declared = metric.outputs(ctx, FINAL, n)
        values = [v for v in run_protocol(ctx, RealData(ctx.data), FINAL, n=n) if v.name in declared]
        assert [v.label for v in values] == list(declared.values())
        assert all(math.isnan(v.value) and "weights not found" in v.params["skipped"] for v in values)
        return
    for stage in metric.stages:
        values = measured(name, stage)
        declared = metric.outputs(ctx, stage, n)
        assert [v.name for v in values] == list(declared)
        assert [v.label for v in values] == list(declared.values())
        assert set(declared) <= set(facts.METRICS[name].writes)  # every value it writes is declared with it
        assert [v.higher_is_better for v in values] == [facts.VALUES[v.name].higher for v in values]
        for v in values:
            assert isinstance(v.value, float) and math.isfinite(v.value), (v.name, v.value)
            r = record(v, step=1, kind=stage, checkpoint="final", protocol=ctx.protocol())
            assert REQUIRED <= set(r["protocol"]), (v.name, REQUIRED - set(r["protocol"]))
            assert {"extractor", "judge"} & set(r["protocol"]), v.name  # what the value was measured in
            counted = "n_ref" if name in READS_NO_SAMPLES else "n_gen"
            assert 0 < r["protocol"][counted] <= n and r["protocol"]["ref_dataset"] == ctx.dataset, v.name


@pytest.mark.parametrize("name", registry.metrics.names())
def test_metric_repeats_itself_and_leaves_the_training_rng_alone(cases, measured, name):
    ctx, D = cases(name)
    if isinstance(measured(name), fidelity.MissingWeights):
        pytest.skip("needs downloaded weights: run on the stand-in backbone below")
    _repeats(ctx, D, name, measured(name))


def _repeats(ctx, D, name, first):
    before = torch.get_rng_state(), np.random.get_state()[1].copy()
    again = compute(ctx, D, name)
    assert torch.equal(torch.get_rng_state(), before[0]) and np.array_equal(np.random.get_state()[1], before[1])
    assert [(v.name, v.value, v.std) for v in again] == [(v.name, v.value, v.std) for v in first]
    assert all(math.isfinite(v.value) for v in first), [(v.name, v.value) for v in first]


@pytest.mark.parametrize("name", sorted(set(registry.metrics.names()) - READS_NO_SAMPLES))
def test_metric_tells_real_data_from_a_collapsed_generator(measured, name):
    if isinstance(measured(name), fidelity.MissingWeights):
        pytest.skip("needs downloaded weights: run on the stand-in backbone below")
    _tells_collapse(measured(name), measured(name, collapsed=True))


def _tells_collapse(real, collapsed):
    real = {v.name: v for v in real}
    collapsed = {v.name: v for v in collapsed}
    # Not every value must: precision and density of one real example repeated are high by design.
    better = [k for k, v in real.items()
              if (v.value > collapsed[k].value if v.higher_is_better else v.value < collapsed[k].value)]
    assert better, {k: (v.value, collapsed[k].value) for k, v in real.items()}


class StandIn(nn.Module):
    """A fixed random conv net mapping uint8 images to 64 features: Inception and VGG16 both, offline."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())

    @torch.no_grad()
    def forward(self, images):
        return self.net(images.float().cpu() / 255)


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """bench.metrics.fidelity's backbone calls answered by StandIn, with the harness's own FD, KID and
    precision/recall on its features; the metrics' own code (weights lookup, caching, protocol) runs."""
    net, weights = StandIn(), tmp_path / "stand-in.pth"
    weights.write_bytes(b"stand-in weights")

    def features(images, path, device, batch=64):
        return net(images)

    def drawn(gen, n):
        return net(gen(torch.zeros(n, gen.z_size)))

    def inception_scores(gen, n_gen, reference, cache_name, path, device, seed, isc, cache_root):
        fake, real = drawn(gen, n_gen), net(reference)
        kid_mean, kid_std, size = fidelity.kid(fake, real, seed)
        p = fake.softmax(1)
        score = float(torch.exp((p * (p.log() - p.mean(0, keepdim=True).log())).sum(1).mean()))
        return {"frechet_inception_distance": fidelity.fd(fake, real), "kernel_inception_distance_mean": kid_mean,
                "kernel_inception_distance_std": kid_std, "inception_score_mean": score, "inception_score_std": 0.0,
                "kid_subset_size": size}

    def vgg_prc(gen, n_gen, reference, cache_name, path, device, seed, cache_root):
        return fidelity.prc(drawn(gen, n_gen), net(reference))

    for name, value in [("inception_weights", lambda w: weights), ("vgg16_weights", lambda w: weights),
                        ("inception_features", features), ("vgg_features", features),
                        ("inception_scores", inception_scores), ("vgg_prc", vgg_prc)]:
        monkeypatch.setattr(fidelity, name, value)


@pytest.mark.parametrize("name", sorted(set(registry.metrics.names()) - READS_NO_SAMPLES))
def test_weight_needing_metric_repeats_and_tells_collapse_on_a_stand_in_backbone(cases, measured, stand_in, name):
    if not isinstance(measured(name), fidelity.MissingWeights):
        pytest.skip("needs no downloaded weights: tested on its real extractor above")
    ctx, D = cases(name)
    first = compute(ctx, D, name)
    assert first and not any("skipped" in v.params for v in first)  # it ran, on the stand-in
    _repeats(ctx, D, name, first)
    _tells_collapse(first, compute(ctx, D, name, collapsed=True))


@pytest.mark.parametrize("name", ["fd", "kid", "prc", "density_coverage"])
def test_domain_ceiling_is_real_half_against_real_half_and_ignores_the_generator(measured, name):
    real = {v.name: v for v in measured(name)}
    collapsed = {v.name: v for v in measured(name, collapsed=True)}
    twins = [k for k in real if k.endswith("_real")]
    assert twins and all(k[:-5] in real for k in twins)
    for k in twins:
        assert real[k].value == collapsed[k].value  # measured on real data only
        assert real[k].params["ceiling_n"] > 0 and "-real@" in real[k].label
    if name == "fd":
        assert real["fd_real"].value < 0.2 * collapsed["fd"].value
    if name == "prc":
        assert real["recall_real"].value > 0.5 > collapsed["recall"].value
