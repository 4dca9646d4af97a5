"""Study tools (issue 16): gradient norms recorded by the loop, the training timeline, latent exploration."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench.store import checkpoint

from bench.train import loop

from bench import registry
from bench.config.schema import resolve
from bench.store.runs import RunDir
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

    import numpy as np
    from PIL import Image

    def rows(g_of_step):
        return pd.DataFrame([{"config": c, "run_id": "r" + c, "step": s, "name": n, "value": v}
                             for c in ("a", "b") for s in (100, 200, 300)
                             for n, v in (("loss_d", 0.5), ("loss_g", 1.0), ("grad_norm_d", 2.0),
                                          ("grad_norm_g", g_of_step(s)))])

    marks = pd.DataFrame({"config": ["a"], "run_id": ["ra"], "collapse_onset": [200], "diverged_at": [None]})
    falling = rows(lambda s: 0.5 / s)
    with_grads = figures.loss_figure(tmp_path / "f1", falling, marks)
    without = figures.loss_figure(tmp_path / "f2", falling[falling["name"].str.startswith("loss")], marks)
    other = figures.loss_figure(tmp_path / "f3", rows(lambda s: 1e-3 * s), marks)
    h1, h2 = Image.open(with_grads).size[1], Image.open(without).size[1]
    assert h1 == 2 * h2  # a row of gradient panels under each row of loss panels
    # Other gradient norms change the lower row only: the gradient panels draw grad_norm_*, the losses stay.
    a, b = (np.asarray(Image.open(p).convert("L"), dtype=np.int16) for p in (with_grads, other))
    assert np.array_equal(a[: h1 // 2 - 10], b[: h1 // 2 - 10]) and np.abs(a[h1 // 2:] - b[h1 // 2:]).sum() > 0


def test_timeline_strips_at_every_curve_evaluation_and_the_report_draws_them(tmp_path):
    import pandas as pd
    from PIL import Image

    from bench.report import visuals

    config = resolve({"variant": "mlp_gan", "dataset": "ring8", "steps": 6, "batch_size": 8, "log_every": 2,
                      "ckpt_every": 6, "eval_every": 2, "eval_n": 100, "device": "cpu", "seed": 0})
    run = RunDir(tmp_path / "results", "g", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    curve_steps = sorted({r["step"] for r in run.read_metrics() if r["kind"] == "curve"})
    strips = sorted(p.name for p in (run.samples_dir / "timeline").glob("*.png"))
    assert curve_steps == [2, 4, 6] and strips == [f"step-{s:07d}.png" for s in curve_steps]
    # the report's step, on the run table it reads (no torch there); write_report is covered by test_report_build
    runs = pd.DataFrame([{"run_id": config.run_id, "config": "mlp_gan", "seed": 0, "finished": True, "path": run.path},
                         {"run_id": "x", "config": "other", "seed": 0, "finished": True, "path": tmp_path / "none"}])
    report = SimpleNamespace(data=SimpleNamespace(runs=runs), shown_configs=["mlp_gan", "other"], figures=[])
    visuals.timeline_figures(report, tmp_path / "figures")
    (figure,) = report.figures
    assert figure.section == "timeline" and figure.path.is_file() and "3 curve evaluations" in figure.caption
    with Image.open(figure.path) as im, Image.open(run.samples_dir / "timeline" / strips[0]) as strip:
        assert im.size[1] > strip.size[1] * im.size[0] / strip.size[0]  # more than one strip's height: rows stacked


def test_slerp_hits_its_endpoints_and_stays_on_the_shell():
    from bench.study.explore import lerp, slerp

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 32, generator=g, dtype=torch.float64), 3 * torch.randn(16, 32, generator=g, dtype=torch.float64)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    for t in (0.25, 0.5, 0.9):
        want = (1 - t) * a.norm(dim=1) + t * b.norm(dim=1)
        torch.testing.assert_close(slerp(a, b, t).norm(dim=1), want)
    ua, ub = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    t = torch.rand(16, generator=g, dtype=torch.float64)
    torch.testing.assert_close(slerp(ua, ub, t).norm(dim=1), torch.ones(16, dtype=torch.float64))
    torch.testing.assert_close(slerp(ua, ua, 0.3), ua)  # parallel endpoints: no NaN
    mid = slerp(ua, ub, 0.5)  # equal angles to both ends
    torch.testing.assert_close((mid * ua).sum(1), (mid * ub).sum(1))
    torch.testing.assert_close(lerp(a, b, 0.5), (a + b) / 2)
    assert lerp(ua, ub, 0.5).norm(dim=1).max() < 1  # the straight line cuts inside the sphere


def test_path_length_is_zero_for_a_constant_G_and_grows_with_a_planted_scale():
    from bench.study.explore import path_lengths, trimmed_mean

    g = torch.Generator().manual_seed(1)
    z1, z2, t = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g), torch.rand(400, generator=g)
    W = torch.randn(8, 5, generator=g)

    def ppl(G):
        return trimmed_mean(path_lengths(G, lambda x: x, z1, z2, t))

    assert ppl(lambda z: torch.ones(len(z), 5)) == 0.0
    base, double = ppl(lambda z: torch.tanh(z @ W)), ppl(lambda z: 2 * torch.tanh(z @ W))
    assert 0 < base and double == pytest.approx(4 * base, rel=1e-2)  # squared distance: scale^2


def test_explore_writes_strips_and_one_ppl_record(tmp_path):
    from bench.study.explore import explore_run

    config = resolve({"variant": "mlp_gan", "dataset": "ring8", "steps": 2, "batch_size": 8, "log_every": 2,
                      "ckpt_every": 2, "eval_every": -1, "device": "cpu", "seed": 0})
    run = RunDir(tmp_path, "g", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    for _ in range(2):
        files, lines = explore_run(str(run.path), pairs=200)
    assert {f.name for f in files} == {"interp-slerp-final.png", "ppl-final.json"} and all(f.is_file() for f in files)
    (rec,) = [r for r in run.read_metrics() if r["name"] == "ppl"]
    assert rec["kind"] == "final" and rec["protocol"]["eps"] == 1e-4 and rec["protocol"]["interp"] == "slerp"
    assert rec["value"] > 0 and rec["label"].startswith("PPL@200/slerp/") and "PPL@200" in lines[0]
    with pytest.raises(Exception, match="best.pt"):
        explore_run(str(run.path), which="best", pairs=200)


def test_latent_arithmetic_moves_a_planted_concept_and_chance_stays_at_the_class_share():
    from bench.study.explore import latent_arithmetic

    g = torch.Generator().manual_seed(2)
    z = torch.randn(3000, 6, generator=g)

    def classify(z):  # the class is the largest of the first three coordinates: linear concepts
        return z[:, :3].argmax(dim=1)

    out = latent_arithmetic(z, classify, 3, torch.Generator().manual_seed(0), n=600)
    assert out["hit"] > 0.8 and out["chance"] == pytest.approx(1 / 3, abs=0.05) and out["classes"] == 3
    assert (classify(out["start"]) == out["B"]).all() and (out["A"] != out["B"]).all()
    assert latent_arithmetic(z, lambda z: torch.zeros(len(z), dtype=torch.long), 3, g) is None


def test_class_pages_put_each_class_on_its_own_row_with_shared_latents(tmp_path, monkeypatch):
    """A conditional run's final samples include class pages: one row per class (4 per page here, so 10
    digits make pages of 4, 4 and 2 rows), the same latents in every row; the pixels of a planted
    row are exactly that row's samples, and the report shows the first page."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from bench.train import samples
    from bench.report import visuals

    monkeypatch.setattr(samples, "CLASSES_PER_PAGE", 4)
    config = resolve({"variant": "cgan", "dataset": "digits", "image_size": 8, "cgan.width": 8, "batch_size": 4,
                      "steps": 2, "log_every": 2, "ckpt_every": 2, "eval_every": -1, "eval_n": 100, "device": "cpu",
                      "seed": 0})
    run = RunDir(tmp_path / "results", "g", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    pages = sorted((run.samples_dir / "classes").glob("*.png"))
    assert [p.name for p in pages] == [f"step-0000002-p0{i}.png" for i in (1, 2, 3)]
    heights = [Image.open(p).size[1] for p in pages]
    assert heights == [2 + 4 * 10, 2 + 4 * 10, 2 + 2 * 10]  # rows of 8 px tiles with 2 px padding

    # Planted samples: row r is the constant gray r / 3 in [-1, 1] terms; every tile of the row reads so.
    fake = torch.cat([torch.full((8, 1, 8, 8), -1 + 2 * r / 3) for r in range(4)])
    page = np.asarray(samples.class_rows_image(fake, ["a", "b", "c", "a_much_longer_class_name_than_the_rest"], 8))
    margin = page.shape[1] - (2 + 8 * 10)
    for r in range(4):
        tile = page[2 + r * 10: 2 + r * 10 + 8, margin + 2: margin + 2 + 8 * 10 - 2]
        gray = round(255 * r / 3)
        assert abs(int(tile[:, :8].min()) - gray) <= 1 and abs(int(tile[:, :8].max()) - gray) <= 1
    assert (page[:, :margin] < 128).any()  # the labels are drawn in the margin

    runs = pd.DataFrame([{"run_id": config.run_id, "config": "cgan", "seed": 0, "finished": True, "path": run.path}])
    report = SimpleNamespace(data=SimpleNamespace(runs=runs), shown_configs=["cgan"], samples=[])
    visuals.class_pages(report)
    (shown,) = report.samples
    assert shown.path == pages[0] and "page 1 of 3" in shown.caption and "one row per class" in shown.caption
