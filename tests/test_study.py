"""Study tools (issue 16): gradient norms recorded by the loop, the training timeline, latent exploration."""

from __future__ import annotations

import pytest
import torch

from bench import checkpoint, loop, registry
from bench.config import resolve
from bench.runs import RunDir
from bench.variant import Batch


def _trained(root, steps: int, **keys) -> tuple[RunDir, object]:
    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": 8, "dcgan.width": 8, "batch_size": 4,
                      "steps": steps, "log_every": 2, "ckpt_every": 2, "eval_every": -1, "device": "cpu", "seed": 3,
                      **keys})
    run = RunDir(root / str(steps), "g", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    return run, config


def _grad_norm(net) -> float:
    return torch.sqrt(sum((p.grad.double() ** 2).sum() for p in net.parameters() if p.grad is not None)).item()


def _recorded(run: RunDir, step: int) -> dict[str, float]:
    return {r["name"]: r["value"] for r in run.read_metrics() if r["step"] == step and r["kind"] == "train"}


def test_grad_norms_equal_textbook_autograd_over_two_steps(tmp_path):
    """The window mean of grad_norm_d / grad_norm_g over steps 3-4 equals the norms of two textbook steps
    (no freezing, plain backward) from the step-2 checkpoint."""
    start, config = _trained(tmp_path, 2)
    end, _ = _trained(tmp_path, 4)
    cpu = torch.device("cpu")
    data = registry.datasets.get(config.dataset).load(config.data, 8, cpu)
    variant = registry.variants.get(config.variant)(config.options, data.spec)
    G, D = variant.build()
    opt_g, opt_d = variant.optimizers(G, D)
    checkpoint.restore(start.checkpoint_file, cpu, G=G, D=D, opt_g=opt_g, opt_d=opt_d)
    norms = {"d": [], "g": []}
    for _ in range(2):
        for name, net, opt, loss_fn in (("d", D, opt_d, variant.d_loss), ("g", G, opt_g, variant.g_loss)):
            x, y = data.sample(4)
            loss, _ = loss_fn(G, D, Batch(x, y), variant.sample_z(4, cpu))
            G.zero_grad(set_to_none=True)
            D.zero_grad(set_to_none=True)
            loss.backward()
            norms[name].append(_grad_norm(net))
            opt.step()
            if name == "d":
                variant.after_d_step(D)
    got = _recorded(end, 4)
    for name in ("d", "g"):
        assert got[f"grad_norm_{name}"] == pytest.approx(sum(norms[name]) / 2, rel=1e-5), name
        assert got[f"grad_norm_{name}"] > 0


def test_a_packed_member_records_its_own_grad_norms(tmp_path):
    """Per-member norms in a pack equal the single run of that seed."""
    cfgs = [resolve({"variant": "mlp_gan", "dataset": "ring8", "steps": 4, "batch_size": 8, "log_every": 2,
                     "ckpt_every": 4, "eval_every": -1, "device": "cpu", "seed": s}) for s in (3, 4)]
    runs = [RunDir(tmp_path / "pack", "p", c.run_id) for c in cfgs]
    for run, c in zip(runs, cfgs):
        run.write_config(c.flat())
    assert loop.train_runs(runs, cfgs) == ["done", "done"]
    values = []
    for run, c in zip(runs, cfgs):
        single = RunDir(tmp_path / f"single{c.loop.seed}", "p", c.run_id)
        single.write_config(c.flat())
        assert loop.train(single, c) == "done"
        for step in (2, 4):
            a, b = _recorded(single, step), _recorded(run, step)
            for name in ("grad_norm_d", "grad_norm_g"):
                assert b[name] == pytest.approx(a[name], rel=1e-4), (c.loop.seed, step, name)
        values.append(_recorded(run, 4)["grad_norm_d"])
    assert values[0] != values[1]


def _planted_grid(tmp_path, runs: dict):
    """runs: {tag: (loss_d, grad_norm_g) per window} -> loaded grid of synthetic run folders."""
    from bench.report.load import load_grid
    from bench.report.synthetic import train_records, write_run

    grid = tmp_path / "g"
    for seed, (tag, (ds, gs)) in enumerate(runs.items()):
        recs = []
        for i, (d, g) in enumerate(zip(ds, gs)):
            how = {"step": 100 * (i + 1), "kind": "train", "agg": "window_mean", "window": 50}
            recs += train_records(100 * (i + 1), d, 1.0)
            recs += [{**how, "name": "grad_norm_g", "value": g}, {**how, "name": "grad_norm_d", "value": 2 * g}]
        write_run(grid, {"variant": "dcgan", "tag": tag, "seed": seed}, "done", recs, 1000)
    data = load_grid(grid)
    return data, dict(zip(data.runs["cfg.tag"], data.runs["run_id"]))


def test_vanishing_g_gradient_while_d_wins_is_flagged_with_its_threshold(tmp_path):
    from bench.report.stability import Thresholds, detect, parse_thresholds

    won = ([0.7] * 5 + [0.01] * 5, [1.0] * 5 + [1e-3] * 5)
    d_wins_g_fine = ([0.7] * 5 + [0.01] * 5, [1.0] * 10)  # non-saturating G: its gradient stays
    g_small_d_fine = ([0.7] * 10, [1.0] * 5 + [1e-3] * 5)
    data, ids = _planted_grid(tmp_path, {"won": won, "nsgan": d_wins_g_fine, "conv": g_small_d_fine})

    def stab(t):
        return detect(data.runs, data.records, data.columns, t)

    st = stab(Thresholds())
    runs = st.runs.set_index("run_id")
    assert runs.loc[ids["won"], "collapse_onset"] == 600 and "grad_norm_g" in runs.loc[ids["won"], "collapse_by"]
    assert not runs.loc[ids["nsgan"], "collapsed"] and not runs.loc[ids["conv"], "collapsed"]
    assert st.counts() == {"grads": 1}
    assert any(k == "grads" and "grad_norm_g<0.01" in rule for k, rule, _ in Thresholds().rules())
    assert ("grad.g_share", "0.01") in Thresholds().describe()
    assert not stab(parse_thresholds(["grad.g_share=0.0001"])).runs["collapsed"].any()


def test_loss_figure_draws_grad_norms_under_the_losses(tmp_path):
    import pandas as pd

    from bench.report import figures

    rows = [{"config": c, "run_id": "r" + c, "step": s, "name": n, "value": v}
            for c in ("a", "b") for s in (100, 200, 300)
            for n, v in (("loss_d", 0.5), ("loss_g", 1.0), ("grad_norm_d", 2.0), ("grad_norm_g", 0.5 / s))]
    marks = pd.DataFrame({"config": ["a"], "run_id": ["ra"], "collapse_onset": [200], "diverged_at": [None]})
    with_grads = figures.loss_figure(tmp_path / "f1", pd.DataFrame(rows), marks)
    without = figures.loss_figure(tmp_path / "f2", pd.DataFrame([r for r in rows if r["name"].startswith("loss")]),
                                  marks)
    from PIL import Image

    h1, h2 = Image.open(with_grads).size[1], Image.open(without).size[1]
    assert h1 == 2 * h2  # a row of gradient panels under each row of loss panels
