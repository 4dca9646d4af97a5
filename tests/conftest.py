"""Shared fixtures: a CLI runner that goes through bench.cli.main exactly as the console script does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from bench.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def bench_cli(capsys, tmp_path, monkeypatch):
    """Run `bench ARGS...` in tmp_path; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_RESULTS", raising=False)

    def call(*args: str):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory):
    """One BENCH_CACHE folder for the whole session, so the digits judge is fitted once."""
    path = tmp_path_factory.getbasetemp() / "bench-cache"
    old = os.environ.get("BENCH_CACHE")
    os.environ["BENCH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("BENCH_CACHE", None)
    else:
        os.environ["BENCH_CACHE"] = old


@pytest.fixture
def write_grid(tmp_path):
    """Write a grid file from a dict (or raw text) and return its path."""

    def write(content, name: str = "grid.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return write


def tiny_grid(**base) -> dict:
    """A grid of one fast run on ring8 unless overridden; no evaluation (tests of metrics ask for it)."""
    return {"name": "tiny", "seeds": 1,
            "base": {"variant": "mlp_gan", "dataset": "ring8", "steps": 20, "batch_size": 16,
                     "log_every": 10, "ckpt_every": 10, "eval_every": -1, **base}}


def train_grid(root: Path, grid: dict) -> Path:
    """Write `grid` to root/grid.yaml and train it with `bench run` from inside root (so results/ and
    cache/ land there); returns root. For module fixtures that train once and hand out copies."""
    from bench.cli import main

    (root / "grid.yaml").write_text(yaml.safe_dump(grid))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["run", "grid.yaml"]) == 0
    finally:
        os.chdir(cwd)
    return root


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir()) if root.exists() else []


os.environ.setdefault("OMP_NUM_THREADS", "1")


def random_inception():
    """torch-fidelity's Inception with PyTorch's default random init, built without the network: the
    stand-in for real weights in offline metric tests (its state dict saved locally is the weights file)."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    mp = pytest.MonkeyPatch()
    mp.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})  # never reaches the network
    mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        mp.undo()
