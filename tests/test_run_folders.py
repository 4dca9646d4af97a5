"""Run folders: data identity in the run id, one validated reader, damaged files reported per run.

Each damaged-file case is what a kill, a full disk or a stray editor leaves in one run folder: the
run is listed as damaged (its file and the fix), the grid's other runs still train, and nothing on
disk is rewritten.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bench.config.schema import load_grid
from bench.config.grid import resolve_all
from bench.store.locks import RunLock, is_stale, read_lock
from bench.store.runs import Damaged, RunDir
from conftest import tiny_grid, train_grid


def _images(folder: Path, seed: int, n: int = 6) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _folder_grid(tmp_path: Path) -> Path:
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({"name": "g", "seeds": 1, "base": {
        "variant": "mlp_gan", "dataset": "imagefolder", "image_size": 8, "steps": 2, "batch_size": 4,
        "log_every": 1, "ckpt_every": 2, "eval_every": -1}}))
    return grid


def _ids(grid: Path, root: Path) -> list[str]:
    configs, _ = resolve_all(load_grid(grid), {"data.root": str(root)})
    return [c.run_id for c in configs]


def test_same_images_at_two_paths_share_run_ids_and_different_images_do_not(tmp_path, bench_cache, bench_cli):
    grid = _folder_grid(tmp_path)
    a = _images(tmp_path / "a", seed=0)
    moved = tmp_path / "elsewhere" / "a"
    shutil.copytree(a, moved)
    other = _images(tmp_path / "other", seed=1)
    assert _ids(grid, a) == _ids(grid, moved)
    assert _ids(grid, a) != _ids(grid, other)

    code, _, err = bench_cli("run", str(grid), "--set", f"data.root={a}")
    assert code == 0, err
    rid = _ids(grid, a)[0]
    assert json.loads((tmp_path / "results/g" / rid / "status.json").read_text())["state"] == "done"
    # The same images moved: the finished run is reused, and it now reads them where they are.
    code, out, _ = bench_cli("run", str(grid), "--set", f"data.root={moved}", "--dry-run")
    assert code == 0 and f"{rid}  done" in out
    # Different images under the flag that used to be ignored: a new run, queued, never "done".
    code, out, _ = bench_cli("run", str(grid), "--set", f"data.root={other}", "--dry-run")
    assert code == 0 and "done" not in out.split("\n", 2)[2] and _ids(grid, other)[0] in out
    # Same path, new content: the planned id changes too.
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(a / "0.png")
    assert _ids(grid, a) != [rid]


def test_files_changed_between_planning_and_training_are_refused(tmp_path, bench_cache):
    from bench.launch import scheduler

    grid = _folder_grid(tmp_path)
    a = _images(tmp_path / "a", seed=0)
    configs, _ = resolve_all(load_grid(grid), {"data.root": str(a)})
    planned = scheduler.plan(tmp_path / "results", "g", configs)[0]
    scheduler.prepare(planned)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(a / "3.png")
    rid, outcome, _ = scheduler.execute_run(str(planned.run.path))
    status = planned.run.status()
    assert outcome == "failed" and "changed since run" in status["reason"] and "new runs" in status["reason"]
    assert not planned.run.checkpoint_file.exists()


@pytest.fixture(scope="module")
def trained_pair_source(tmp_path_factory) -> Path:
    """Two finished tiny runs, trained once for the module; each test works on its own copy."""
    return train_grid(tmp_path_factory.mktemp("pair"), {**tiny_grid(), "seeds": 2})


def _trained_pair(tmp_path: Path, source: Path) -> tuple[Path, list[Path]]:
    shutil.copy(source / "grid.yaml", tmp_path / "grid.yaml")
    shutil.copytree(source / "results", tmp_path / "results")
    return tmp_path / "grid.yaml", sorted(p for p in (tmp_path / "results/tiny").iterdir() if p.is_dir())


DAMAGE = {
    "status.json not UTF-8": ("status.json", b"\xff\xfe{\x00garbage"),
    "config.yaml not UTF-8": ("config.yaml", b"variant: \xff\xfe\x80"),
    "config.yaml a list": ("config.yaml", b"- variant\n- dataset\n"),
    "status.json step is text": ("status.json", json.dumps({"state": "done", "step": "x"}).encode()),
    "status.json threads is text": ("status.json", json.dumps({"state": "done", "threads": "two"}).encode()),
    "status.json seconds not phases": ("status.json", json.dumps({"state": "done", "seconds": {"train": -1}}).encode()),
    "status.json unknown state": ("status.json", json.dumps({"state": "exploded"}).encode()),
    "metrics.jsonl random bytes": ("metrics.jsonl", bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))),
    "metrics.jsonl text that is not records": ("metrics.jsonl", b"hello\nworld\n{\"a\": 1}\n"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_file_is_reported_for_its_run_and_the_rest_goes_on(tmp_path, bench_cli, trained_pair_source, case):
    name, content = DAMAGE[case]
    grid, (bad, good) = _trained_pair(tmp_path, trained_pair_source)
    (bad / name).write_bytes(content)
    (good / "status.json").unlink()  # the other run must train again, despite its neighbour
    (good / "metrics.jsonl").unlink()
    (good / "ckpt" / "latest.pt").unlink()
    before = {p.name: p.read_bytes() for p in bad.iterdir() if p.is_file()}

    with pytest.raises(Damaged, match=name):
        r = RunDir.open(bad)
        r.read_config(), r.status(), r.read_metrics()

    # one reader, one verdict: listings read metrics.jsonl through the same checks as the report
    code, out, err = bench_cli("status", str(grid))
    assert code == 0, err
    assert (f"{bad.name}  damaged" in out and f"damaged {bad.name}: " in out and name in out
            and "delete the run folder" in out)

    code, _, err = bench_cli("run", str(grid))
    assert code == 1 and "Traceback" not in err
    assert f"damaged {bad.name}: " in err and name in err
    assert json.loads((good / "status.json").read_text())["state"] == "done"  # the healthy run trained
    assert {p.name: p.read_bytes() for p in bad.iterdir() if p.is_file()} == before  # nothing rewritten

    code, _, err = bench_cli("report", "tiny")
    assert code == 0 and "Traceback" not in err, err
    page = (tmp_path / "reports/tiny/index.html").read_text()
    assert f"Damaged run {bad.name}, left out of this report: " in page and name in page
    assert f"Damaged run {bad.name}" in (tmp_path / "reports/tiny/report.md").read_text()


def test_partial_last_metrics_line_is_a_kill_not_damage(tmp_path):
    run = RunDir(tmp_path, "g", "abc")
    run.append_metrics([{"step": 1, "name": "loss_d", "value": 0.5}])
    with open(run.metrics_file, "a") as f:
        f.write('{"step": 2, "name": "lo')
    assert [r["step"] for r in run.read_metrics()] == [1]
    with open(run.metrics_file, "a") as f:
        f.write('\n{"step": 3, "name": "loss_d", "value": 1}\n')  # a torn line in the middle is damage
    with pytest.raises(Damaged, match="1 of 3 lines"):
        run.read_metrics()


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe", b"[1, 2]", b'{"pid": "x"}'])
def test_an_unreadable_lock_blocks_only_until_it_is_stale(tmp_path, content, monkeypatch):
    lock_file = tmp_path / "lock.json"
    lock_file.write_bytes(content)
    info = read_lock(lock_file)
    assert info["unreadable"] and not is_stale(info)  # maybe a claim being written right now
    assert not RunLock(tmp_path).acquire()
    old = time.time() - 3600
    os.utime(lock_file, (old, old))
    assert is_stale(read_lock(lock_file))
    lock = RunLock(tmp_path)
    assert lock.acquire()  # taken over: the run is no longer blocked for ever
    assert json.loads(lock_file.read_text())["token"] == lock.token
    lock.release()
    assert not lock_file.exists()


def test_an_empty_lock_left_by_a_kill_is_taken_over_by_the_next_run(tmp_path, bench_cli):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(tiny_grid()))
    code, out, _ = bench_cli("run", str(grid), "--dry-run")
    rid = out.splitlines()[2].split()[0]
    run_path = tmp_path / "results/tiny" / rid
    run_path.mkdir(parents=True)
    (run_path / "lock.json").write_bytes(b"")
    code, _, err = bench_cli("run", str(grid))
    # A fresh unreadable claim may be one being written: not taken yet, and the exit code says so.
    assert code == 1 and "cannot be read" in err and "again to take them over" in err
    old = time.time() - 3600
    os.utime(run_path / "lock.json", (old, old))
    code, out, err = bench_cli("status", "tiny")
    code, _, err = bench_cli("run", str(grid))
    assert code == 0, err
    assert json.loads((run_path / "status.json").read_text())["state"] == "done"


def test_a_claim_whose_holder_stopped_makes_run_exit_1_and_says_a_rerun_takes_it(tmp_path, bench_cli, monkeypatch):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(tiny_grid()))
    # Another host's process claimed the run and stopped: its heartbeat goes stale while we look.
    real_acquire = RunLock.acquire

    def claimed_elsewhere(self):
        self.path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "t"}))
        return False

    monkeypatch.setattr(RunLock, "acquire", claimed_elsewhere)
    monkeypatch.setattr("bench.store.locks.STALE_S", -1.0)
    code, _, err = bench_cli("run", str(grid))
    assert code == 1
    assert "1 run(s) are claimed by processes that stopped" in err and "again to take them over" in err
    monkeypatch.setattr(RunLock, "acquire", real_acquire)
    code, _, err = bench_cli("run", str(grid))
    assert code == 0, err


def test_report_cache_is_data_not_code(tmp_path, bench_cli, trained_pair_source):
    _trained_pair(tmp_path, trained_pair_source)
    assert bench_cli("report", "tiny")[0] == 0
    cache = tmp_path / "reports/tiny/.cache/grid"
    names = sorted(p.name for p in cache.iterdir())
    assert names == ["columns.parquet", "manifest.json", "records.parquet", "rest.json", "runs.parquet"]
    assert not list((tmp_path / "reports").rglob("*.pkl"))
    from bench.report.load import load_grid, load_grid_cached

    fresh = load_grid(tmp_path / "results/tiny")
    cached, _ = load_grid_cached(tmp_path / "results/tiny", cache)
    import pandas.testing as pdt

    for name in ("runs", "records", "columns"):
        pdt.assert_frame_equal(getattr(cached, name).drop(columns="path", errors="ignore"),
                               getattr(fresh, name).drop(columns="path", errors="ignore"),
                               check_dtype=False, check_categorical=False)
    assert (cached.protocols, cached.varying, cached.configs) == (fresh.protocols, fresh.varying, fresh.configs)
    # An edited cache file fails its digest and is rebuilt from the run folders, not trusted.
    (cache / "rest.json").write_text(json.dumps({"name": "evil"}))
    again, _ = load_grid_cached(tmp_path / "results/tiny", cache)
    assert again.name == "tiny"


def test_outputs_are_readable_by_others_like_any_file(tmp_path):
    from bench.store.runs import save_atomic, write_atomic

    write_atomic(tmp_path / "a.md", "x")
    save_atomic(tmp_path / "b.png", lambda tmp: Path(tmp).write_bytes(b"png"))
    expected = 0o666 & ~_current_umask()
    assert (tmp_path / "a.md").stat().st_mode & 0o777 == expected
    assert (tmp_path / "b.png").stat().st_mode & 0o777 == expected


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
