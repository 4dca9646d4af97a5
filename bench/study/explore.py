"""`bench explore RUN`: how a trained G maps its latent space, written into the run folder (explore/).

- Interpolation strips between random latent pairs: slerp for Gaussian latents (a straight line between
  two Gaussian draws passes through the low-norm middle where G rarely saw a z), lerp for uniform ones
  or on request. Conditional runs also get a class sweep: each row one fixed z, each column a class.
  G takes integer labels, so classes are swept, not interpolated.
- Perceptual path length (Karras et al. 2019, StyleGAN): E[d(G(i(z1, z2, t)), G(i(z1, z2, t + eps))) / eps^2]
  with eps = 1e-4, t ~ U(0, 1), d the squared Euclidean distance in the feature space the dataset's
  metrics use (the fitted domain extractor for built-in images, fed the unrounded pixels, since uint8
  rounding would erase a 1e-4 step; the raw coordinates for 2-D points), values outside the 1st-99th
  percentile dropped as StyleGAN does. It becomes a metric record with its protocol in metrics.jsonl.

Latents come from a generator seeded with EVAL_SEED (or --seed), never the training RNG.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from bench.errors import BenchError
from bench.store.runs import RunDir, save_atomic, write_atomic
from bench.metrics.latents import EVAL_SEED

EPS = 1e-4  # StyleGAN's path-length step
STRIPS, STRIP_STEPS = 8, 10  # latent pairs shown, images per interpolation strip
PPL_PAIRS = 2000
TRIM = (1, 99)  # percentiles kept (StyleGAN's outlier filter)
INTERPOLATIONS = ("auto", "slerp", "lerp")


def lerp(a: Tensor, b: Tensor, t) -> Tensor:
    t = _column(t, a)
    return a + (b - a) * t


def slerp(a: Tensor, b: Tensor, t) -> Tensor:
    """Spherical interpolation of directions, the norm interpolated linearly between the endpoints' norms:
    unit vectors stay on the unit sphere, and t = 0, 1 give a and b."""
    t = _column(t, a)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.acos((ua * ub).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    arc = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so.clamp_min(1e-12)
    line = ua + (ub - ua) * t  # (anti)parallel endpoints: no plane to rotate in
    line = line / line.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    direction = torch.where(so > 1e-6, arc, line)
    return direction * (na + (nb - na) * t)


def _column(t, like: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, 1) if t.dim() else t


def path_lengths(G: Callable[[Tensor], Tensor], features: Callable[[Tensor], Tensor], z1: Tensor, z2: Tensor,
                 t: Tensor, interp: Callable = slerp, eps: float = EPS) -> Tensor:
    """Per pair: squared feature distance between G at t and at t + eps along the interpolation, / eps^2."""
    with torch.no_grad():
        fa = features(G(interp(z1, z2, t))).double()
        fb = features(G(interp(z1, z2, t + eps))).double()
    return ((fa - fb) ** 2).flatten(1).sum(1) / eps ** 2


def trimmed_mean(values: Tensor, trim: tuple[float, float] = TRIM) -> float:
    lo, hi = (torch.quantile(values, q / 100) for q in trim)
    kept = values[(values >= lo) & (values <= hi)]
    return float(kept.mean()) if len(kept) else float("nan")


def latent_arithmetic(z: Tensor, classify: Callable[[Tensor], Tensor], num_classes: int, gen: torch.Generator,
                      n: int = 500, min_members: int = 5) -> Optional[dict]:
    """z - mean(B) + mean(A): a latent whose sample the classifier calls B, minus the mean latent of
    B's samples, plus the mean latent of A's. Returns the share of results called A (hit) against the
    share of random latents called A for the same A draws (chance), or None with fewer than two
    classes having min_members samples. The classifier is the one fitted on real data."""
    called = classify(z)
    classes = [c for c in range(num_classes) if int((called == c).sum()) >= min_members]
    if len(classes) < 2:
        return None
    means = {c: z[called == c].mean(0) for c in classes}
    share = {c: float((called == c).float().mean()) for c in classes}
    pick = torch.randint(len(classes), (n, 2), generator=gen)
    pick[:, 1] = (pick[:, 0] + 1 + torch.randint(len(classes) - 1, (n,), generator=gen)) % len(classes)  # A != B
    A = torch.tensor([classes[i] for i in pick[:, 0].tolist()])
    B = torch.tensor([classes[i] for i in pick[:, 1].tolist()])
    start = torch.empty(n, z.shape[1], dtype=z.dtype)
    for b in set(B.tolist()):
        members = (called == b).nonzero()[:, 0]
        rows = (B == b).nonzero()[:, 0]
        start[rows] = z[members[torch.randint(len(members), (len(rows),), generator=gen)]]
    result = start - torch.stack([means[b] for b in B.tolist()]) + torch.stack([means[a] for a in A.tolist()])
    hit = float((classify(result) == A).float().mean())
    return {"hit": hit, "chance": float(sum(share[a] for a in A.tolist()) / n), "n": n, "classes": len(classes),
            "start": start, "result": result, "A": A, "B": B}


# ---- the command


def explore_run(run_dir: str, which: str = "final", interp: str = "auto", pairs: int = PPL_PAIRS,
                seed: Optional[int] = None, device: str = "cpu") -> tuple[list[Path], list[str]]:
    """Strips and path length for one run's final or best G; returns the files written and lines to print."""
    from bench import registry
    from bench.config.schema import resolve
    from bench.train.device import pick_device
    from bench.metrics.evaluator import load_best_generator
    from bench.metrics.context import EvalContext
    from bench.study.sampling import load_generator

    if which not in ("final", "best"):
        raise BenchError(f"--checkpoint {which}: choose final or best")
    if interp not in INTERPOLATIONS:
        raise BenchError(f"--interp {interp}: choose one of {', '.join(INTERPOLATIONS)}")
    run = RunDir.open(run_dir)
    _check_seed(seed)
    dev = pick_device(device, fix="use --device cpu")
    config = resolve(run.read_config(), where=str(run.config_file))
    _check_finished(run, config)
    variant, G, spec, step = load_generator(run, dev)
    data = registry.datasets.get(config.dataset).load(config.data, config.loop.image_size, dev)
    ctx = EvalContext(config, data, variant, dev)
    if which == "best":
        loaded = load_best_generator(ctx, run.path / "ckpt" / "best.pt")
        if loaded is None:
            raise BenchError(f"{run.path} has no ckpt/best.pt (no curve evaluation ran); use --checkpoint final")
        G, step, _ = loaded
    G.eval()
    if interp == "auto":
        interp = "lerp" if getattr(variant.config, "z_dist", "normal") == "uniform" else "slerp"
    fn = slerp if interp == "slerp" else lerp
    gen = torch.Generator().manual_seed(EVAL_SEED if seed is None else seed)
    out_dir = _out_dir(run)
    written = [_strips(out_dir, variant, G, spec, data, fn, interp, which, gen, dev)]
    if variant.conditional and spec.num_classes:
        written.append(_class_sweep(out_dir, variant, G, spec, which, gen, dev))
    files, line = _path_length(run, ctx, variant, G, spec, fn, interp, which, step, pairs, gen, dev,
                               EVAL_SEED if seed is None else seed)
    lines = [line]
    if ctx.family == "domain" and not ctx.stacked and not variant.conditional and spec.num_classes:
        more, arith_line = _arithmetic(run, ctx, variant, G, spec, which, step, gen, dev,
                                       EVAL_SEED if seed is None else seed)
        files, lines = files + more, lines + [arith_line]
    return written + files, lines


def _check_seed(seed: Optional[int]) -> None:
    from bench.study.sampling import SEED_LIMIT

    if seed is not None and not 0 <= seed < SEED_LIMIT:
        raise BenchError(f"--seed {seed}: must be in [0, 2^63), the range of a torch generator seed")


def _check_finished(run: RunDir, config) -> None:
    """Only a finished run's G is its final one: explored earlier, a record labelled final would hold
    the G of whatever step the checkpoint had reached (as bench eval refuses too)."""
    status = run.check()  # a damaged run file stops here, as in every other reader
    if status.get("state") != "done":
        raise BenchError(f"{run.path} is {status.get('state', 'queued')} (step {status.get('step', 0)} of "
                         f"{config.loop.steps}); finish it with bench run first")


def _out_dir(run: RunDir) -> Path:
    out_dir = run.path / "explore"
    try:
        out_dir.mkdir(exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BenchError(f"{out_dir} exists and is not a folder; move it away, then explore again") from None
    return out_dir


def _seed_label(seed: int) -> str:
    """The latent seed in a label when it is not the default, so two seeds never share a table heading."""
    return "" if seed == EVAL_SEED else f"/seed{seed}"


def _labels(variant, spec, n: int, gen) -> Optional[Tensor]:
    return torch.randint(spec.num_classes, (n,), generator=gen) if variant.conditional and spec.num_classes else None


def _generate(variant, G, z: Tensor, y: Optional[Tensor]) -> Tensor:
    with torch.no_grad():
        return variant.generate(G, z, y).float().cpu()


def _strips(out_dir, variant, G, spec, data, fn, interp, which, gen, dev) -> Path:
    z1, z2 = (variant.sample_z(STRIPS, torch.device("cpu"), generator=gen) for _ in range(2))
    y = _labels(variant, spec, STRIPS, gen)
    t = torch.linspace(0, 1, STRIP_STEPS)
    z = torch.stack([fn(z1, z2, ti) for ti in t], dim=1).reshape(STRIPS * STRIP_STEPS, -1)  # row = one pair
    yy = None if y is None else y.repeat_interleave(STRIP_STEPS)
    fake = _generate(variant, G, z.to(dev), None if yy is None else yy.to(dev))
    path = out_dir / f"interp-{interp}-{which}.png"
    if spec.kind == "images":
        _image_grid(path, fake, STRIP_STEPS)
    else:
        _paths_png(path, fake.reshape(STRIPS, STRIP_STEPS, -1), data, f"{interp} paths, {which} G")
    return path


def _class_sweep(out_dir, variant, G, spec, which, gen, dev) -> Path:
    C = spec.num_classes
    z = variant.sample_z(STRIPS, torch.device("cpu"), generator=gen).repeat_interleave(C, dim=0)
    y = torch.arange(C).repeat(STRIPS)
    fake = _generate(variant, G, z.to(dev), y.to(dev))
    path = out_dir / f"classes-{which}.png"
    if spec.kind == "images":
        _image_grid(path, fake, C)
    return path


def _image_grid(path: Path, fake: Tensor, nrow: int) -> None:
    import torchvision.utils as vutils

    grid = vutils.make_grid(fake.clamp(-1, 1), nrow=nrow, normalize=True, value_range=(-1, 1))
    save_atomic(path, lambda tmp: vutils.save_image(grid, tmp, format="png"))


def _paths_png(path: Path, fake: Tensor, data, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real, _ = data.reference(2500, torch.Generator().manual_seed(EVAL_SEED))
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(real[:, 0].cpu(), real[:, 1].cpu(), s=3, c="#bbbbbb")
    for row in fake.numpy():
        ax.plot(row[:, 0], row[:, 1], "-o", ms=2, lw=1)
    ax.set_title(title)
    ax.set_aspect("equal")
    fig.tight_layout()
    save_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def pixel_features(extractor) -> Callable[[Tensor], Tensor]:
    """The domain extractor's features of images in [-1, 1], on unrounded 0-255 values (grey to 3 channels,
    as the stored reference is)."""
    from bench.metrics import extractors

    def features(x: Tensor) -> Tensor:
        x = (x.float().cpu().clamp(-1, 1) + 1) * 127.5
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return extractors.forward(extractor.weights, x)[0]

    return features


def _path_length(run, ctx, variant, G, spec, fn, interp, which, step, pairs, gen, dev, seed) -> tuple[list[Path], str]:
    from bench.metrics.records import Value, count_label, record

    if ctx.family == "points":
        features, space, label_space = (lambda x: x.float().cpu()), {"space": "xy"}, "xy"
    elif ctx.family == "domain":
        features = pixel_features(ctx.extractor)
        space, label_space = {**ctx.extractor.record(), "extractor_input": "0-255 floats, unrounded"}, ctx.domain_source
    else:
        return [], (f"no path length for {ctx.dataset}: it needs the built-in domain features or 2-D points "
                    "(natural images would need Inception on unrounded pixels)")
    values = []
    for s in range(0, pairs, 500):
        n = min(500, pairs - s)
        z1, z2 = (variant.sample_z(n, torch.device("cpu"), generator=gen) for _ in range(2))
        t = torch.rand(n, generator=gen)
        y = _labels(variant, spec, n, gen)
        yd = None if y is None else y.to(dev)

        def sample(z, yd=yd):
            return variant.generate(G, z.to(dev), yd)

        values.append(path_lengths(sample, features, z1, z2, t, fn))
    ppl = trimmed_mean(torch.cat(values))
    v = Value("ppl", ppl, f"PPL@{count_label(pairs)}/{interp}/{label_space}{_seed_label(seed)}", False,
              params={"n_pairs": pairs, "eps": EPS, "interp": interp, "trim_percentiles": list(TRIM),
                      "distance": "squared L2", "latent_seed": seed, **space})
    rec = record(v, step=step, kind=which, checkpoint=which, protocol=ctx.protocol())
    same = [r for r in run.read_metrics() if r.get("name") == "ppl" and r.get("kind") == which
            and r.get("step") == step and r.get("protocol") == rec["protocol"]]
    if not same:  # a second explore of the same G with the same protocol adds no second row
        run.append_metrics([rec])
    path = run.path / "explore" / f"ppl-{which}{_seed_label(seed).replace('/', '-')}.json"
    write_atomic(path, json.dumps(rec, indent=1, sort_keys=True) + "\n")
    return [path], (f"{v.label} = {ppl:.4g} ({which} G, step {step})" if math.isfinite(ppl) else
                     f"{v.label} undefined")


ARITH_LATENTS, ARITH_TRIALS = 2000, 500


def _arithmetic(run, ctx, variant, G, spec, which, step, gen, dev, seed) -> tuple[list[Path], str]:
    """Latent arithmetic with class concepts from the domain classifier (fitted on real data); a record
    `latent_arith` (share of results the classifier assigns to the expected class, chance beside it)."""
    from bench.metrics import extractors
    from bench.metrics.records import Value, record

    w = ctx.extractor.weights

    def classify(z: Tensor) -> Tensor:
        x = (_generate(variant, G, z.to(dev), None).clamp(-1, 1) + 1) * 127.5
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return extractors.forward(w, x)[1].argmax(dim=-1)

    z = variant.sample_z(ARITH_LATENTS, torch.device("cpu"), generator=gen)
    out = latent_arithmetic(z, classify, spec.num_classes, gen, ARITH_TRIALS)
    if out is None:
        return [], "latent arithmetic skipped: G's samples fall in fewer than two classes"
    shown = 8
    pairs = torch.stack([out["start"][:shown], out["result"][:shown]], dim=1).reshape(2 * shown, -1)
    path = run.path / "explore" / f"arith-{which}.png"
    if spec.kind == "images":
        _image_grid(path, _generate(variant, G, pairs.to(dev), None), 2)
    v = Value("latent_arith", out["hit"], f"arith@{ARITH_TRIALS}/{ctx.domain_source}{_seed_label(seed)}", True,
              params={"chance": out["chance"], "trials": ARITH_TRIALS, "concept_latents": ARITH_LATENTS,
                      "classes_used": out["classes"], "rule": "z(B) - mean z(B) + mean z(A), expect A",
                      "latent_seed": seed, **ctx.extractor.record()})
    rec = record(v, step=step, kind=which, checkpoint=which, protocol=ctx.protocol())
    same = [r for r in run.read_metrics() if r.get("name") == "latent_arith" and r.get("kind") == which
            and r.get("step") == step and r.get("protocol") == rec["protocol"]]
    if not same:
        run.append_metrics([rec])
    return [path], (f"latent arithmetic: {out['hit']:.1%} of {ARITH_TRIALS} results called the expected class "
                    f"(random latents: {out['chance']:.1%}); pairs in {path.name}, left z of B, right z - B + A")
