"""`bench sample --checkpoint final|best|STEP`: the best-by-curve generator can be checked from outside."""

from __future__ import annotations

import json

import numpy as np
import torch
import yaml

from bench.datasets.builtin import ring_centres
from bench.metrics import modes
from conftest import tiny_grid


def test_sample_of_the_best_checkpoint_reproduces_its_recorded_scores(bench_cli, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(tiny_grid(steps=400, log_every=50, ckpt_every=100, eval_every=100)))
    assert bench_cli("run", str(grid))[0] == 0
    (run,) = [p for p in (tmp_path / "results/tiny").iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = {r["name"]: r for r in records if r["kind"] == "best"}
    final = {r["name"]: r for r in records if r["kind"] == "final"}
    n = best["hq_fraction"]["protocol"]["n_gen"]
    for which, recorded in (("best", best), ("final", final), (str(best["hq_fraction"]["step"]), best)):
        code, _, err = bench_cli("sample", str(run), "--n", str(n), "--out", f"{which}.npz", "--checkpoint", which)
        assert code == 0, err
        drawn = np.load(tmp_path / f"{which}.npz")
        assert int(drawn["step"]) == recorded["hq_fraction"]["step"]
        scores = modes.mixture_scores(torch.from_numpy(drawn["samples"]), ring_centres(8, 1.0), 0.01)
        for name in ("modes_covered", "hq_fraction"):  # the same generator, latents and count as the record
            assert scores[name] == recorded[name]["value"], (which, name)
    code, _, err = bench_cli("sample", str(run), "--n", "10", "--out", "x.npz", "--checkpoint", "7")
    assert code == 2 and "keeps final (step 400)" in err and "best (step" in err
