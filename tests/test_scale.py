"""Safe concurrency and backends: runs are claimed once, dead claims are reclaimed, engines agree."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.store.locks import RunLock
from bench.store.runs import RunDir
from conftest import tiny_grid

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _bench(tmp_path, *args, **popen):
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _count(text: str, outcome: str) -> int:
    summary = [line for line in text.splitlines() if line.startswith("tiny: ") and "runs," not in line]
    match = re.search(rf"(\d+) {outcome}", summary[-1]) if summary else None
    return int(match.group(1)) if match else 0


@pytest.mark.slow
def test_two_processes_train_every_run_exactly_once(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**tiny_grid(steps=200, log_every=50, ckpt_every=100), "seeds": 6}))
    first, second = _bench(tmp_path, "run", str(grid)), _bench(tmp_path, "run", str(grid))
    outputs = [p.communicate(timeout=300)[1] for p in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    trained = [_count(out, "done") for out in outputs]
    assert sum(trained) == 6, outputs  # each run trained by exactly one of the two processes
    runs = [p for p in (tmp_path / "results" / "tiny").iterdir() if p.is_dir()]
    assert len(runs) == 6
    for run in runs:
        assert json.loads((run / "status.json").read_text())["state"] == "done"
        assert not (run / "lock.json").exists()
        steps = [r["step"] for r in RunDir.open(run).read_metrics() if r["name"] == "loss_d"]
        assert steps == [50, 100, 150, 200]  # no window logged twice


@pytest.mark.slow
def test_killed_holder_lock_is_reclaimed_and_run_resumes(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(tiny_grid(steps=1500, log_every=50, ckpt_every=100)))
    proc = _bench(tmp_path, "run", str(grid), start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("results/tiny/*/ckpt/latest.pt")):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    (run,) = [p for p in (tmp_path / "results" / "tiny").iterdir() if p.is_dir()]
    lock = json.loads((run / "lock.json").read_text())
    assert lock["pid"] == proc.pid  # the dead holder's claim is still there

    again = _bench(tmp_path, "run", str(grid))
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0 and _count(err, "done") == 1, err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done" and status["start_step"] >= 100  # resumed, not restarted
    assert not (run / "lock.json").exists()


def test_live_claim_blocks_and_stale_claim_is_taken_over(tmp_path):
    holder = RunLock(tmp_path)
    assert holder.acquire()
    assert not RunLock(tmp_path).acquire()  # held by a live process (this one)
    holder.release()
    assert not (tmp_path / "lock.json").exists()

    # A claim from another host whose heartbeat stopped long ago is stale.
    (tmp_path / "lock.json").write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "old"}))
    old = time.time() - 3600
    os.utime(tmp_path / "lock.json", (old, old))
    taker = RunLock(tmp_path)
    assert taker.acquire()
    assert json.loads((tmp_path / "lock.json").read_text())["token"] == taker.token
    taker.release()

    # A fresh claim from another host is respected.
    (tmp_path / "lock.json").write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "new"}))
    assert not RunLock(tmp_path).acquire()


def _losses(results: Path) -> dict:
    out = {}
    for run in (results / "tiny").iterdir():
        if run.is_dir():
            out[run.name] = [(r["step"], r["name"], r["value"]) for r in RunDir.open(run).read_metrics()
                             if r["name"].startswith("loss")]
    return out


@pytest.mark.slow
def test_dask_local_cluster_matches_local_backend(tmp_path):
    pytest.importorskip("dask.distributed")
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**tiny_grid(steps=40), "seeds": 2,
                                    "grid": {"dataset": ["ring8", "digits"]}}))
    local = _bench(tmp_path, "run", str(grid), "--results", "local")
    _, err = local.communicate(timeout=300)
    assert local.returncode == 0, err
    dask = _bench(tmp_path, "run", str(grid), "--results", "dask", "--backend", "dask", "--jobs", "2")
    _, err = dask.communicate(timeout=300)
    assert dask.returncode == 0 and _count(err, "done") == 4, err
    a, b = _losses(tmp_path / "local"), _losses(tmp_path / "dask")
    assert a.keys() == b.keys() and len(a) == 4
    for rid in a:
        assert [r[:2] for r in a[rid]] == [r[:2] for r in b[rid]]
        for (_, _, x), (_, _, y) in zip(a[rid], b[rid]):
            assert x == pytest.approx(y, rel=1e-4, abs=1e-6)  # thread counts differ between the two


def _fake_run(root: Path, rid: str, status: dict | None, lock: dict | None = None, **config):
    path = root / "g" / rid
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"variant": "dcgan", "dataset": "digits", "seed": 0,
                                                      "steps": 100, **config}))
    if status:
        (path / "status.json").write_text(json.dumps(status))
    if lock:
        (path / "lock.json").write_text(json.dumps(lock))


def test_status_shows_each_state(bench_cli, tmp_path):
    import socket

    root, now = tmp_path / "results", time.time()
    live = {"host": socket.gethostname(), "pid": os.getpid(), "token": "t"}
    dead = {"host": socket.gethostname(), "pid": 2 ** 22 + 12345, "token": "t"}
    _fake_run(root, "aaaaaaaaaaaa", None, seed=1)
    _fake_run(root, "bbbbbbbbbbbb", {"state": "running", "step": 40, "start_step": 0, "started": now - 4,
                                     "updated": now}, live, seed=2)
    _fake_run(root, "cccccccccccc", {"state": "running", "step": 20, "started": now - 9, "updated": now - 8},
              dead, seed=3)
    _fake_run(root, "dddddddddddd", {"state": "done", "step": 100, "started": now - 20, "finished": now - 10},
              seed=4)
    _fake_run(root, "eeeeeeeeeeee", {"state": "failed", "reason": "RuntimeError: out of memory"}, seed=5)
    _fake_run(root, "ffffffffffff", {"state": "diverged", "step": 30, "reason": "non-finite loss at step 30"},
              seed=6)
    code, out, _ = bench_cli("status", "g")
    assert code == 0
    rows = {line[:12]: line for line in out.splitlines() if re.match(r"^[a-f]{12} ", line)}
    assert rows["aaaaaaaaaaaa"].split()[1] == "queued"
    assert rows["bbbbbbbbbbbb"].split()[1:3] == ["running", "40/100"]
    assert float(rows["bbbbbbbbbbbb"].split()[3]) == pytest.approx(10.0, rel=0.05)  # 40 steps in 4 s
    assert rows["cccccccccccc"].split()[1] == "stalled"  # its process is gone
    assert rows["dddddddddddd"].split()[1:3] == ["done", "100/100"]
    assert rows["eeeeeeeeeeee"].split()[1] == "failed"
    assert rows["ffffffffffff"].split()[1] == "diverged"
    assert "1 running, 1 stalled, 1 queued, 1 failed, 1 diverged, 1 done; ETA" in out
    assert "failed eeeeeeeeeeee: RuntimeError: out of memory" in out


@pytest.mark.slow
def test_ray_local_instance_completes_grid(tmp_path):
    pytest.importorskip("ray")
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**tiny_grid(steps=20), "seeds": 2}))
    proc = _bench(tmp_path, "run", str(grid), "--backend", "ray", "--jobs", "2")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and _count(err, "done") == 2, err
    for run in (tmp_path / "results" / "tiny").iterdir():
        if run.is_dir():
            assert json.loads((run / "status.json").read_text())["state"] == "done"
