"""The README's first screen, run as printed: every `bench` line of its code blocks, in order, in a
fresh folder holding the repository's ablations/ and a folder of the user's own samples.

The default suite adds small settings to the `bench run` lines (fewer steps, smaller images, fewer
evaluation samples: later --set values win) so it stays quick; `-m slow` runs them exactly as printed."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from conftest import REPO

SMALL = ["--set", "steps=20", "--set", "image_size=8", "--set", "batch_size=8", "--set", "eval_n=100",
         "--set", "log_every=10", "--set", "ckpt_every=20"]


def readme_commands() -> list[list[str]]:
    """Each `bench ...` line of the README's bash blocks as argv, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["bench"]:
                out.append(words[1:])
    return out


def test_the_first_screen_has_the_commands_it_promises():
    firsts = [" ".join(c[:2]) for c in readme_commands()]
    assert firsts == ["run ablations/smoke.yaml", "report smoke", "run ablations/wasserstein.yaml",
                      "report ablations/wasserstein.yaml", "data export", "score my_samples/"]


def _my_samples(folder, side: int) -> None:
    """The user's own samples: 64 PNG images (noise) of one square size."""
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(64):
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.mark.parametrize("exact", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["small", "as-printed"])
def test_the_first_screen_runs_as_printed(bench_cli, bench_cache, tmp_path, exact):
    shutil.copytree(REPO / "ablations", tmp_path / "ablations")
    _my_samples(tmp_path / "my_samples", 32 if exact else 8)
    for argv in readme_commands():
        small = [] if exact or argv[0] != "run" else SMALL
        code, out, err = bench_cli(*argv, *small)
        assert code == 0, f"bench {' '.join(argv)}: {err}"
    html = (tmp_path / "reports" / "smoke" / "index.html").read_text(encoding="utf-8")
    assert "Pipeline check (its grid file says so): not meaningful." in html
    page = (tmp_path / "reports" / "wasserstein" / "index.html").read_text(encoding="utf-8")
    assert "Trained with overrides of the grid file: variant=[dcgan,wgan_gp] seeds=3 steps=200" in page
    assert len(list((tmp_path / "real").glob("*.png"))) == 5000
    assert re.search(r"^fd +FD@64/set/mnist5k-", out, flags=re.M), out  # the score table, last command
