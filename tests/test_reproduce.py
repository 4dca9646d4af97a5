"""Reproduction presets (ablations/reproduce/): each resolves and dry-runs with its paper's numbers
parsed; a bad `published:` section is refused in one line; the published-vs-measured table and its
verdicts on a planted tidy table; the real-digit datasets and the mixtures' protocol fields."""

from __future__ import annotations

import dataclasses
import json

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from bench.report.model import md_escape
from bench.config import published
from bench.metrics import facts

from bench import registry
from bench.report import published as measured
from bench.config.schema import load_grid, resolve
from conftest import REPO

PRESETS = sorted((REPO / "ablations" / "reproduce").glob("*.yaml"))


# ------------------------------------------------------------------ the presets

def _fake_cifar10(root) -> None:
    """Placeholder files where torchvision's CIFAR-10 reader looks: enough for --dry-run's layout check."""
    for cls in [registry.datasets.get("cifar10")]:
        for rel in cls.files["train"]:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"placeholder")


def _idx(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root, n: int = 6) -> np.ndarray:
    """A tiny MNIST in torchvision's raw layout: digit k is a block of brightness 40 * (k + 1)."""
    labels = np.arange(n) % 10
    digits = np.zeros((n, 28, 28), dtype=np.uint8)
    digits[:, 8:20, 8:20] = (40 * (labels + 1))[:, None, None]
    for prefix in ("train", "t10k"):
        _idx(root / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte", digits)
        _idx(root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte", labels)
    return labels


def test_the_reproduction_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {"pacgan_2d", "pacgan_ring_cpu", "veegan_2d", "stacked_mnist", "dcgan_cifar10_fid"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_states_its_source_and_dry_runs(bench_cli, preset, tmp_path):
    assert preset.read_text().startswith("# "), "the first line says which published table the grid reproduces"
    grid = load_grid(preset)
    assert grid.published, "a reproduction preset carries the paper's numbers"
    for value in grid.published:
        assert value.source.paper and 1950 <= value.source.year <= 2100 and value.source.where
        assert math.isfinite(value.mean) and value.metric in facts.VALUES
        assert value.spread is None or value.kind in ("std", "sem", "range")
    extra = []
    if grid.base.get("dataset") == "cifar10":
        _fake_cifar10(tmp_path / "cifar10")
        extra = ["--set", f"data.root={tmp_path / 'cifar10'}"]
    code, out, err = bench_cli("run", str(preset), "--dry-run", *extra)
    assert code == 0, err
    assert " queued " in out and "failed" not in out


def test_stacked_preset_runs_on_the_full_mnist_pool_once_fetched(bench_cli, tmp_path):
    _fake_mnist(tmp_path / "mnist")
    code, out, err = bench_cli("run", str(REPO / "ablations/reproduce/stacked_mnist.yaml"), "--dry-run",
                               "--set", "dataset=stacked_mnist", "--set", f"data.root={tmp_path / 'mnist'}")
    assert code == 0, err
    assert out.count(" queued ") == 40  # 4 packings x 10 seeds


def test_recipes_carry_the_papers_numbers():
    """Spot checks that the files say what their header says (PacGAN's and TTUR's release configs)."""
    pac = load_grid(REPO / "ablations/reproduce/pacgan_2d.yaml")
    assert pac.base["hidden_g"] == [400] * 4 and pac.base["act_d"] == "maxout" and pac.base["z_dim"] == 2
    assert pac.base["steps"] == 400_000 and pac.base["betas"] == [0.8, 0.999] and len(pac.seeds) == 10
    rows = {(v.row, v.metric, dict(v.config)["dataset"]): v for v in pac.published}
    assert rows[("GAN", "hq_fraction", "ring8")].unit == "%" and rows[("GAN", "modes_covered", "grid25")].mean == 17.3
    assert {dict(v.config)["pac"] for v in pac.published} == {1, 2, 3, 4} and len(pac.published) == 24
    # 100 packs a batch, as PacGAN's streams draw them: batch_size = 100 x pac
    assert {(r.options.pac, r.loop.batch_size) for r in _runs(pac)} == {(1, 100), (2, 200), (3, 300), (4, 400)}
    stacked = load_grid(REPO / "ablations/reproduce/stacked_mnist.yaml")
    assert stacked.base["z_dist"] == "uniform" and stacked.base["g_steps"] == 2
    assert {v.source.paper.split(":")[0] for v in stacked.published} == {"VEEGAN", "PacGAN"}
    assert {(r.options.pac, r.loop.batch_size) for r in _runs(stacked)} == {(1, 64), (2, 128), (3, 192), (4, 256)}
    assert {v.row for v in stacked.published if dict(v.config)["pac"] > 1} == {"PacDCGAN2", "PacDCGAN3", "PacDCGAN4"}


def _runs(grid):
    from bench.config.grid import expand

    return [resolve(flat) for flat in expand(grid)]


def test_ttur_recipe_is_the_two_published_configurations():
    """TTUR: lr_d 1e-4 / lr_g 5e-4 for 75k updates against 1e-4 for both for 100k, one G update per D
    update, each compared on its best checkpoint (the authors report the best FID of a run)."""
    grid = load_grid(REPO / "ablations/reproduce/dcgan_cifar10_fid.yaml")
    runs = _runs(grid)
    configs = {(r.options.lr_d, r.options.lr_g, r.loop.steps, r.options.d_steps, r.options.g_steps) for r in runs}
    assert configs == {(1e-4, 5e-4, 75_000, 1, 1), (1e-4, 1e-4, 100_000, 1, 1)}
    rows = {dict(v.config)["lr_g"]: v for v in grid.published}
    assert (rows[5e-4].mean, rows[1e-4].mean) == (36.9, 37.7)
    assert {v.checkpoint for v in grid.published} == {"best"} and all(r.loop.eval_every == 5000 for r in runs)


TRANSCRIPTION = REPO / "tests" / "data" / "published_transcription.yaml"
# Our row names where they differ from the printed ones.
PRINTED_ROW = {"DCGAN (PacGAN's implementation)": "DCGAN (our implementation)",
               "DCGAN, TTUR (1e-4, 5e-4; 75k updates)": "TTUR 1e-4 5e-4 75k",
               "DCGAN, original rule (1e-4; 100k updates)": "orig 1e-4 100k"}


def _printed(value: published.Reported) -> tuple[dict, list]:
    """The transcribed table of a preset's value, and the [mean, spread] cell it must equal."""
    import yaml

    tables = yaml.safe_load(TRANSCRIPTION.read_text())["tables"]
    table = next(t for t in tables if value.source.paper.startswith(t["paper"]) and value.source.where == t["table"])
    dataset = dict(value.config).get("dataset")
    column = f"{dataset} {value.metric}" if f"{dataset} {value.metric}" in table["columns"] else value.metric
    return table, table["rows"][PRINTED_ROW.get(value.row, value.row)][table["columns"].index(column)]


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_published_values_match_an_independent_transcription_of_the_tables(preset):
    """Every value of every preset equals the table as typed a second time from the authors' own image
    of it (tests/data/published_transcription.yaml), and its source says where it was checked."""
    values = load_grid(preset).published
    assert values, f"{preset.stem} has no published values"
    for v in values:
        table, (mean, spread) = _printed(v)
        assert v.source.checked and table["source"].split(" ", 1)[1] in v.source.checked_against, v.source
        assert (v.mean * 1, v.spread) == (mean, spread), f"{preset.stem}: {v.row} {v.metric} {dict(v.config)}"
        assert v.kind == table["spread"]["kind"] and v.runs == table["spread"].get("runs"), v
        assert "Values checked against" in v.source.cite() and "not yet checked" not in v.source.cite()


# ------------------------------------------------------------------ bad sections: one line, exit 2

GOOD = {"source": {"paper": "A paper", "year": 2018, "table": "Table 1"}, "spread": {"kind": "sem", "runs": 10},
        "values": [{"row": "GAN", "metric": "modes_covered", "config": {"dataset": "ring8"}, "mean": 6.3,
                    "spread": 0.5}]}


def _with(change):
    section = {"source": dict(GOOD["source"]), "spread": dict(GOOD["spread"]),
               "values": [dict(GOOD["values"][0], config=dict(GOOD["values"][0]["config"]))]}
    change(section)
    return section


BAD = {
    "no source": (lambda s: s.pop("source"), "published.source is missing"),
    "no year": (lambda s: s["source"].pop("year"), "published.source.year must be the publication year"),
    "no table": (lambda s: s["source"].pop("table"), "exactly one of 'table' or 'figure'"),
    "nan mean": (lambda s: s["values"][0].update(mean=float("nan")), "mean must be a finite number"),
    "inf spread": (lambda s: s["values"][0].update(spread=float("inf")), "spread must be a finite number"),
    "text mean": (lambda s: s["values"][0].update(mean="6.3 ± 0.5"), "mean must be a finite number"),
    "spread without kind": (lambda s: s.update(spread={"runs": 10}), "spread is given but not its kind"),
    "unknown kind": (lambda s: s["values"][0].update(kind="iqr"), "spread kind must be one of"),
    "bad runs": (lambda s: s["values"][0].update(runs=0), "runs must be a positive count"),
    "unknown metric": (lambda s: s["values"][0].update(metric="modes"), "not a harness metric"),
    "no config": (lambda s: s["values"][0].pop("config"), "config must map grid keys"),
    "key not in grid": (lambda s: s["values"][0]["config"].update(lr_d=1e-4), "which the grid does not set"),
    "value not run": (lambda s: s["values"][0]["config"].update(dataset="grid25"), "a value the grid never runs"),
    "unknown key": (lambda s: s["values"][0].update(std=0.5), "has no key 'std'"),
    "empty values": (lambda s: s.update(values=[]), "values must be a non-empty list"),
    "range without mean": (lambda s: s["values"][0].update(kind="range", spread=[7, 8]), "does not contain the mean"),
    "checked, not where": (lambda s: s["source"].update(checked=True), "checked: true needs checked_against"),
    "where, not checked": (lambda s: s["source"].update(checked_against="Table1.png"), "checked: false takes none"),
    "checked as text": (lambda s: s["source"].update(checked="yes"), "checked must be true or false"),
    "unknown checkpoint": (lambda s: s["values"][0].update(checkpoint="last"), "checkpoint must be final or best"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_published_section_is_refused_in_one_line(bench_cli, write_grid, name):
    change, message = BAD[name]
    grid = {"name": "bad", "seeds": 1, "base": {"variant": "mlp_gan", "dataset": "ring8", "steps": 20},
            "published": _with(change)}
    code, out, err = bench_cli("run", str(write_grid(grid)), "--dry-run")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err and message in err, err


def test_a_good_section_and_a_list_of_tables_are_accepted(bench_cli, write_grid):
    two = [_with(lambda s: s["source"].update(checked=True, checked_against="the authors' Table1.png")),
           _with(lambda s: s["source"].update(paper="Another", figure="2", table=None) or s["source"].pop("table"))]
    grid = {"name": "ok", "seeds": 1, "base": {"variant": "mlp_gan", "dataset": "ring8", "steps": 20},
            "published": two}
    code, out, err = bench_cli("run", str(write_grid(grid)), "--dry-run")
    assert code == 0, err
    values = load_grid(write_grid(grid, "again.yaml")).published
    assert [v.source.where for v in values] == ["Table 1", "Figure 2"]
    assert [(v.source.checked, v.source.checked_against) for v in values] == [
        (True, "the authors' Table1.png"), (False, "")]
    assert values[0].source.cite().endswith("Table 1. Values checked against the authors' Table1.png.")
    assert values[1].source.cite().endswith("Figure 2. Values not yet checked against the printed table.")
    assert published.from_grid_text(write_grid(grid, "text.yaml").read_text()) == values


# ------------------------------------------------------------------ published vs measured

def _reported(metric, mean, spread=None, kind="sem", unit="", config=(("dataset", "ring8"),), runs=10):
    source = published.Source("A paper", 2018, "Table 1", authors="A. Author")
    return published.Reported(source, "GAN", metric, config, mean, spread, kind if spread is not None else "none",
                              runs, unit)


def _tidy(rows: list[tuple]) -> pd.DataFrame:
    """(run_id, seed, state, dataset, hidden_g, name, kind, step, value) rows in the shape of load.tidy."""
    df = pd.DataFrame(rows, columns=["run_id", "seed", "state", "cfg.dataset", "cfg.hidden_g", "name", "kind",
                                     "step", "value"])
    df["label"] = df["name"].map(lambda n: f"{n}@2500")
    df["cfg.variant"] = "mlp_gan"
    df["config"] = "dataset=" + df["cfg.dataset"] + ", hidden_g=" + df["cfg.hidden_g"]
    df["config_id"] = df["config"]
    return df


def _planted() -> pd.DataFrame:
    rows = []
    modes = [8.0, 7.0, 8.0, 8.0]
    hq = [0.30, 0.25, 0.35, 0.28]
    for i, (m, h) in enumerate(zip(modes, hq)):
        rid, state = f"r{i}", "diverged" if i == 3 else "done"
        rows += [(rid, i, state, "ring8", "[400, 400]", "modes_covered", "curve", 500, 2.0),
                 (rid, i, state, "ring8", "[400, 400]", "modes_covered", "final", 1000, m),
                 (rid, i, state, "ring8", "[400, 400]", "hq_fraction", "final", 1000, h),
                 (rid, i, state, "ring8", "[400, 400]", "kl_modes", "final", 1000, math.nan if i == 0 else 0.1 * i)]
    rows.append(("r9", 9, "running", "ring8", "[400, 400]", "modes_covered", "final", 1000, 0.0))  # unfinished
    rows.append(("g0", 0, "done", "grid25", "[400, 400]", "modes_covered", "final", 1000, 20.0))
    return _tidy(rows)


def test_verdicts_on_a_planted_table():
    reported = [
        _reported("modes_covered", 6.3, 0.5),             # ours 7.75 [7.25, 8]: above, higher is better
        _reported("hq_fraction", 98.2, 0.2, unit="%"),    # ours ~29.5%: below
        _reported("modes_covered", 7.6, 0.3),             # overlaps our CI
        _reported("kl_modes", 0.45, 0.09),                # ours 0.2 (NaN left out, n=3): lower is better
        _reported("modes_covered", 1.0, config=(("dataset", "ring8"), ("hidden_g", (400, 400)))),  # no spread
        _reported("modes_covered", 5.0, config=(("dataset", "ring8"), ("hidden_g", (200,)))),     # no such runs
    ]
    table = measured.compare(_planted(), reported)
    assert list(table.columns) == measured.TABLE_COLUMNS
    assert table["verdict"].tolist() == ["not reproduced: ours higher", "not reproduced: ours lower", "reproduced",
                                         "not reproduced: ours lower", "not reproduced: ours higher", "no runs"]
    first = table.iloc[0]
    assert first["n"] == 4 and first["diverged"] == 1, "unfinished runs out, diverged runs in and counted"
    assert first["ours_mean"] == pytest.approx(7.75) and first["ours_low"] <= 7.75 <= first["ours_high"]
    hq = table.iloc[1]
    assert hq["ours_mean"] == pytest.approx(29.5) and hq["published_low"] == pytest.approx(98.0)
    assert "%" in hq["ours"] and hq["published"] == "98.2 ± 0.2% (sem, 10 runs)"
    assert table.iloc[3]["n"] == 3, "a NaN KL (no high-quality sample) is left out of n"
    assert table.iloc[2]["label"] == "modes_covered@2500"


def test_two_points_are_compared_and_scoped_keys():
    """A published point against one seed (a zero-width interval): equal is reproduced, apart is not."""
    one_seed = _tidy([("r0", 0, "done", "ring8", "[400, 400]", "modes_covered", "final", 1000, 4.0)])
    table = measured.compare(one_seed, [_reported("modes_covered", 1.0), _reported("modes_covered", 4.0),
                                        _reported("modes_covered", 5.0)])
    assert table["verdict"].tolist() == ["not reproduced: ours higher", "reproduced", "not reproduced: ours lower"]
    assert table.iloc[0]["ours"] == "4 (n=1)"
    scoped = measured.compare(_planted(), [_reported("modes_covered", 6.3, 0.5,
                                                      config=(("mlp_gan.hidden_g", (400, 400)), ("dataset", "ring8")))])
    assert scoped.iloc[0]["n"] == 4, "mlp_gan.hidden_g selects mlp_gan runs with that key"
    other = measured.compare(_planted(), [_reported("modes_covered", 6.3, 0.5, config=(("dcgan.width", 64),))])
    assert other["verdict"].tolist() == ["no runs"]
    skipped = _tidy([("r0", 0, "done", "ring8", "[400, 400]", "modes_covered", "final", 1000, math.nan)])
    table = measured.compare(skipped, [_reported("modes_covered", 1.0)])
    assert table["verdict"].tolist() == ["not measured"] and "1 runs, no finite value" in table.iloc[0]["ours"]


def test_verdict_speaks_of_reproduction_not_of_better_or_worse():
    """The side is ours against the paper's, whatever the metric's direction: a lower FID is "ours
    lower", not "better" (the grid's own headline says which method is better)."""
    rep = _reported("fid", 36.9, (35.0, 39.0), kind="range")
    assert measured.verdict(rep, 3, 30.0, 29.0, 31.0) == "not reproduced: ours lower"
    assert measured.verdict(rep, 3, 45.0, 44.0, 46.0) == "not reproduced: ours higher"
    assert measured.verdict(rep, 3, 39.5, 38.5, 40.5) == "reproduced"
    assert measured.verdict(rep, 3, 39.5, 39.0, 40.5) == "reproduced", "touching intervals overlap"
    assert measured.verdict(rep, 0, math.nan, math.nan, math.nan) == "no runs"
    modes = _reported("modes_covered", 1.0)
    assert measured.verdict(modes, 5, 8.0, 8.0, 8.0) == "not reproduced: ours higher", "two points, clearly apart"
    assert set(published.VERDICTS) >= {"reproduced", "not reproduced: ours higher", "not reproduced: ours lower"}


def test_a_row_matching_several_configurations_is_refused_naming_them():
    """Today's pooling of two configurations' seeds into one cell would set the paper's number beside a
    mixture: the row must name one configuration."""
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=r"published row 'GAN' \(modes_covered, mlp_gan.hidden_g=\[400, 400\]\) "
                                         r"matches 2 configurations: dataset=ring8, hidden_g=\[400, 400\]; "
                                         r"dataset=grid25, hidden_g=\[400, 400\]; add keys"):
        measured.compare(_planted(), [_reported("modes_covered", 6.3, 0.5, config=(("mlp_gan.hidden_g", (400, 400)),))])


def test_a_best_checkpoint_row_reads_the_best_records():
    rows = [(f"r{i}", i, "done", "ring8", "[400, 400]", "fid", kind, 1000, value)
            for i, (final, best) in enumerate([(40.0, 36.0), (42.0, 37.0)])
            for kind, value in (("final", final), ("best", best))]
    rep = dataclasses.replace(_reported("fid", 36.9), checkpoint="best")
    table = measured.compare(_tidy(rows), [rep, _reported("fid", 36.9)])
    assert table["ours_mean"].tolist() == [36.5, 41.0] and table["checkpoint"].tolist() == ["best", "final"]
    assert "fid ↓ (fid@2500, best checkpoint)" in measured.to_markdown(table, md_escape)


def test_renderings_cite_the_source_and_escape():
    reported = [_reported("modes_covered", 6.3, 0.5), _reported("hq_fraction", 98.2, 0.2, unit="%")]
    table = measured.compare(_planted(), reported)
    md, page, tex = measured.to_markdown(table, md_escape), measured.to_html(table), measured.to_latex(table)
    cite = "A. Author. A paper. 2018, Table 1."
    for text in (md, page):
        assert cite in text and "ours higher" in text and "ours lower" in text
    assert md.splitlines()[0].startswith("| Method |") and f"Source: {cite}" in md
    assert '<td class="verdict not-reproduced-ours-higher">not reproduced: ours higher</td>' in page
    assert '<p class="source">Source: A. Author. A paper. 2018, Table 1. Values not yet checked against the printed table.</p>' in page
    checked = [dataclasses.replace(r, source=dataclasses.replace(r.source, checked=True, checked_against="Table1.png"))
               for r in reported]
    page = measured.to_html(measured.compare(_planted(), checked))
    assert "not yet checked" not in page and "Values checked against Table1.png." in page
    assert "\\begin{tabular}" in tex and "98.2 $\\pm$ 0.2\\%" in tex and "Source: A. Author" in tex
    assert "<b>" not in measured.to_html(table.assign(row="<b>GAN</b>")), "HTML-escaped"


def test_published_module_needs_no_torch():
    code = ("import sys, pandas as pd; from bench.config import published as p; from bench.report import published as m;"
            "t = pd.DataFrame({'name': ['fid'], 'kind': ['final'], 'step': [1], 'value': [30.0], 'label': ['FID'],"
            " 'run_id': ['a'], 'seed': [0], 'state': ['done'], 'cfg.variant': ['dcgan']});"
            "s = p.Source('P', 2017, 'Table 1');"
            "r = p.Reported(s, 'DCGAN', 'fid', (('variant', 'dcgan'),), 36.9, None, 'none', None);"
            "m.to_html(m.compare(t, [r])); assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ datasets and protocol fields

def _load(name: str, size: int, **data):
    """The dataset loaded at `size` px (28 too: the loaders take any size, only grids are held to IMAGE_SIZES)."""
    config = resolve({"variant": "dcgan" if name not in ("ring8", "grid25") else "mlp_gan", "dataset": name,
                      **{f"data.{k}": v for k, v in data.items()}})
    return registry.datasets.get(name).load(config.data, size, torch.device("cpu"))


def test_mnist5k_is_5000_real_labelled_digits():
    data = _load("mnist5k", 32)
    assert data.images.shape == (5000, 3, 32, 32) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[:, 0], data.images[:, 2])
    assert np.bincount(data.labels.numpy()).tolist() == [500] * 10 and data.spec.num_classes == 10
    assert 20 < data.images.float().mean() < 60, "dark background, bright strokes: real MNIST"
    assert registry.datasets.get("mnist5k").feature_family == "domain"


def test_stacked_mnist5k_stacks_three_pool_digits():
    from bench.datasets.mnist_small import load_mnist5k
    from bench.datasets.synthetic import stack_indices

    data = _load("stacked_mnist5k", 28, count=3000, seed=7)
    assert data.images.shape == (3000, 3, 28, 28) and data.spec.num_classes == 1000
    pixels, digits = load_mnist5k()
    index = stack_indices(len(pixels), 3000, 7)
    assert torch.equal(data.images[5, 1], torch.from_numpy(pixels[index[5, 1]])), "channel = its pool digit"
    d = digits[index]
    assert data.labels.tolist() == (100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]).tolist()
    assert data.info["pool_size"] == 5000 and data.info["modes_present"] > 900
    assert registry.datasets.get("stacked_mnist5k").feature_family == "domain_stacked"


def test_stacked_mnist_draws_from_fetched_train_and_test(tmp_path):
    labels = _fake_mnist(tmp_path / "mnist")
    data = _load("stacked_mnist", 16, count=50, root=str(tmp_path / "mnist"))
    assert data.images.shape == (50, 3, 16, 16) and data.info["pool_size"] == 2 * len(labels)
    # Each channel's digit k is a uniform block of brightness 40 (k + 1), so the label can be read back.
    centre = data.images[:, :, 8, 8].long()
    assert data.labels.tolist() == (100 * (centre[:, 0] // 40 - 1) + 10 * (centre[:, 1] // 40 - 1)
                                    + centre[:, 2] // 40 - 1).tolist()


def test_stacked_mnist_without_files_is_one_clear_line(bench_cli, write_grid, tmp_path):
    grid = {"name": "nomnist", "base": {"variant": "dcgan", "dataset": "stacked_mnist", "steps": 20,
                                        "data": {"root": str(tmp_path / "absent")}}}
    code, _, err = bench_cli("run", str(write_grid(grid)), "--dry-run")
    assert code == 2 and "mnist not found" in err and "bench data fetch mnist" in err


def test_mixture_info_records_radius_or_spacing_beside_std():
    ring = _load("ring8", 0)
    assert ring.info["radius"] == 1.0 and ring.info["std"] == 0.01 and ring.std == 0.01
    wide = _load("ring8", 0, radius=2.0, std=0.02)  # Unrolled GAN's ring
    assert wide.info["radius"] == 2.0 and wide.std == 0.02
    assert torch.allclose(wide.centres.norm(dim=1), torch.full((8,), 2.0))
    grid = _load("grid25", 0, spacing=1.5)
    assert grid.info["spacing"] == 1.5 and grid.info["std"] == 0.05
    assert sorted(set(grid.centres[:, 0].tolist())) == [-3.0, -1.5, 0.0, 1.5, 3.0]
    # Defaults keep the data (and their fingerprint) what they were before the options existed: the values
    # below are what ring8 and grid25 loaded at commit 30e3b83~1, the last one without radius/spacing/std.
    assert ring.info["fingerprint"] == "d6b635537330bbc20f66681c43546e9ca413a17edcef6443372f4f10cb463256"
    assert _load("grid25", 0).info["fingerprint"] == "750efec751e65eda14011985a6798cb92e567bb17ab9eda595cec152cc6416cb"


def test_hq_rule_uses_the_datasets_own_std():
    from bench.metrics.modes import mixture_scores

    wide = _load("ring8", 0, radius=2.0, std=0.02)
    x, _ = wide.reference(2500, torch.Generator().manual_seed(0))
    assert mixture_scores(x, wide.centres, wide.std)["hq_fraction"] > 0.98
    assert mixture_scores(x, wide.centres, 0.01)["hq_fraction"] < 0.7, "a std of 0.01 would misjudge these"


@pytest.mark.parametrize("bad", [{"data.std": 0.0}, {"data.radius": -1.0}, {"data.spacing": float("inf")}])
def test_mixture_sizes_must_be_positive(bad):
    from bench.errors import BenchError

    dataset = "grid25" if "data.spacing" in bad else "ring8"
    with pytest.raises(BenchError, match="must be a finite number > 0"):
        resolve({"variant": "mlp_gan", "dataset": dataset, **bad})


# ------------------------------------------------------------------ variant options the presets need

def test_uniform_latents_and_pacgan_nets():
    config = resolve({"variant": "mlp_gan", "dataset": "ring8", "z_dim": 2, "z_dist": "uniform",
                      "hidden_g": [400] * 4, "norm_g": "batch", "hidden_d": [200] * 3, "act_d": "maxout",
                      "init_std": 0.02})
    variant = registry.variants.get("mlp_gan")(config.options, _load("ring8", 0).spec)
    z = variant.sample_z(10_000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert z.shape == (10_000, 2) and z.min() >= -1 and z.max() <= 1 and abs(z.mean()) < 0.02
    assert z.var().item() == pytest.approx(1 / 3, rel=0.05), "U[-1, 1] has variance 1/3"
    G, D = variant.build()
    linears = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5 and all(m.bias is None for m in linears[:-1]) and linears[-1].bias is not None
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in G.modules()) == 4
    assert D(G(z[:7])).shape == (7,)
    assert abs(linears[1].weight.std().item() - 0.02) < 0.002
    normal = resolve({"variant": "mlp_gan", "dataset": "ring8", "z_dim": 3})
    plain = registry.variants.get("mlp_gan")(normal.options, _load("ring8", 0).spec)
    assert plain.sample_z(5000, torch.device("cpu")).abs().max() > 1.5, "normal stays the default"


@pytest.mark.parametrize("gain", [1.0, 1.4])
def test_orthogonal_init_gives_orthogonal_rows_or_columns_times_the_gain(gain):
    config = resolve({"variant": "mlp_gan", "dataset": "ring8", "z_dim": 256, "hidden_g": [128, 128],
                      "hidden_d": [128, 128], "act_g": "tanh", "act_d": "tanh", "orthogonal_gain": gain})
    G, D = registry.variants.get("mlp_gan")(config.options, _load("ring8", 0).spec).build()
    linears = [m for net in (G, D) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(128, 256), (128, 128), (2, 128), (128, 2), (128, 128), (1, 128)]
    for m in linears:
        W = m.weight.detach().double()
        gram = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W  # over the shorter side
        assert torch.allclose(gram, gain ** 2 * torch.eye(min(W.shape), dtype=torch.float64), atol=1e-5)
        assert not m.bias.any(), "biases start at zero"


def test_orthogonal_and_normal_init_are_refused_together():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="'init_std' and 'orthogonal_gain' are two inits; set one of them"):
        resolve({"variant": "mlp_gan", "dataset": "ring8", "init_std": 0.02, "orthogonal_gain": 1.4})


@pytest.mark.parametrize("key,value", [("orthogonal_gain", 1.4), ("g_objective", "minimax")])
def test_new_options_keep_todays_run_ids_at_their_defaults(key, value):
    """Keys added after runs existed enter the id only when set, so earlier runs keep their folders."""
    from bench.config.identity import config_id, run_id

    base = {"variant": "mlp_gan", "dataset": "ring8", "steps": 20}
    flat = resolve(base).flat()
    today = {k: v for k, v in flat.items() if k not in ("orthogonal_gain", "g_objective")}
    assert run_id(flat) == run_id(today) and config_id(flat) == config_id(today)
    changed = resolve({**base, key: value})
    assert changed.flat()[key] == value and changed.run_id != run_id(flat)


def test_a_preset_report_leads_with_published_vs_measured_and_records_the_mixture_geometry(bench_cli, tmp_path):
    preset = REPO / "ablations" / "reproduce" / "pacgan_ring_cpu.yaml"
    code, _, err = bench_cli("run", str(preset), "--smoke")
    assert code == 0, err
    records = [json.loads(line) for f in (tmp_path / "results" / "pacgan_ring_cpu-smoke").glob("*/metrics.jsonl")
               for line in f.read_text().splitlines()]
    finals = [r for r in records if r.get("kind") == "final" and r["name"] == "modes_covered"]
    assert finals and all(r["protocol"]["mode_radius"] == 1.0 and r["protocol"]["mode_std"] == 0.01 for r in finals)
    code, _, err = bench_cli("report", "pacgan_ring_cpu-smoke")
    assert code == 0, err
    out = tmp_path / "reports" / "pacgan_ring_cpu-smoke"
    page = (out / "index.html").read_text()
    assert page.index('id="published"') < page.index('id="headline-0"')  # the paper's numbers come first
    assert "PacGAN" in page and "Values checked against the authors&#x27; image of the table" in page
    assert "not yet checked" not in page
    assert "## Published vs measured" in (out / "report.md").read_text()
    assert "PacGAN" in (out / "tables.tex").read_text()
