"""Every ablation grid in ablations/ says which question it answers and expands cleanly, on the
built-in data and with the one real-data override its header names (.ci/run trains each with --smoke)."""

from __future__ import annotations

import pytest
from PIL import Image

from conftest import REPO

GRIDS = sorted((REPO / "ablations").glob("*.yaml"))


def test_the_mission_grids_exist():
    names = {g.stem for g in GRIDS}
    assert {"label_smoothing", "noisy_labels", "g_steps", "wasserstein", "mlp_vs_dcgan", "cgan", "seeds",
            "smoke"} <= names


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: g.stem)
def test_grid_has_a_question_and_expands(bench_cli, grid, tmp_path):
    assert grid.read_text().startswith("# "), "the first line says which question the grid answers"
    code, out, err = bench_cli("run", str(grid), "--dry-run")
    assert code == 0, err
    assert " queued " in out and "failed" not in out
    if grid.stem != "smoke":
        dogs = tmp_path / "dogs"
        breed = dogs / "Images" / "n02085620-Chihuahua"
        breed.mkdir(parents=True)
        Image.new("RGB", (80, 64)).save(breed / "n02085620_1.jpg")
        code, out, err = bench_cli("run", str(grid), "--dry-run", "--set", "dataset=stanford_dogs",
                                   "--set", "image_size=64", "--set", f"data.root={dogs}")
        assert code == 0, err
