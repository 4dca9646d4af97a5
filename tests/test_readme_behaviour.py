"""What the README promises about running grids and nothing else checked: `--jobs N` trains in joblib
worker processes, `--gpus`/`--per-gpu` place one stream of runs per GPU slot, the lock's heartbeat
keeps its claim fresh, of several processes taking over one stale lock exactly one wins,
`sample_every` writes a grid at those steps, and `bench status --watch` returns once every run ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from bench.launch import backends

from bench.store import locks
from bench.launch.backends import Placement
from bench.cli import _gpu_list
from bench.config.schema import resolve
from bench.errors import BenchError
from bench.store.locks import RunLock
from bench.store.runs import RunDir
from conftest import REPO, run_dirs, tiny_grid

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


# ------------------------------------------------------------------ --jobs, --gpus, --per-gpu

@pytest.mark.slow
def test_jobs_trains_the_runs_in_joblib_worker_processes(bench_cli, write_grid, tmp_path):
    code, _, err = bench_cli("run", str(write_grid({**tiny_grid(), "seeds": 2})), "--jobs", "2")
    assert code == 0 and "2 done" in err, err
    runs = run_dirs(tmp_path / "results")
    pids = {json.loads((run / "status.json").read_text())["pid"] for run in runs}
    assert len(runs) == 2 and os.getpid() not in pids  # trained by workers, not by the bench process


class InOrder:
    """joblib.Parallel run in this process, so the placement plan can be read without GPUs."""

    def __init__(self, n_jobs, return_as):
        assert return_as == "generator_unordered"
        self.n_jobs = n_jobs

    def __call__(self, calls):
        return (fn(*args, **kwargs) for fn, args, kwargs in calls)


def test_gpus_and_per_gpu_give_one_stream_per_slot(monkeypatch):
    import joblib

    streams = []
    monkeypatch.setattr(joblib, "Parallel", InOrder)
    monkeypatch.setattr(backends, "execute_stream",
                        lambda units, threads, device, retry: streams.append((units, threads, device)) or [])
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    placement = Placement(jobs=1, gpus=_gpu_list("0,2"), per_gpu=2)
    assert placement.slots == 4 and placement.threads() == 4  # 16 cores over 4 slots
    units = [[f"run{i}"] for i in range(6)]
    assert list(backends.run_local(units, placement, retry_failed=False)) == []
    assert streams == [([["run0"], ["run4"]], 4, "cuda:0"), ([["run1"], ["run5"]], 4, "cuda:2"),
                       ([["run2"]], 4, "cuda:0"), ([["run3"]], 4, "cuda:2")]


def test_one_gpu_slot_trains_in_this_process_on_that_gpu(monkeypatch):
    calls = []
    monkeypatch.setattr(backends, "execute_unit",
                        lambda unit, threads, device, progress, retry: calls.append((unit, device)) or [])
    placement = Placement(jobs=8, gpus=(1,))  # --jobs is ignored once runs are placed on GPUs
    assert placement.slots == 1
    list(backends.run_local([["a"], ["b"]], placement, retry_failed=False))
    assert calls == [(["a"], "cuda:1"), (["b"], "cuda:1")]
    assert Placement(jobs=3).slots == 3 and Placement(jobs=3).device(0) is None
    with pytest.raises(BenchError, match="expected device indices like 0,1"):
        _gpu_list("0,one")


# ------------------------------------------------------------------ the lock's heartbeat and take-over

def test_heartbeat_keeps_touching_the_lock_until_release(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    lock = RunLock(tmp_path)
    assert lock.acquire()
    path = tmp_path / "lock.json"
    old = time.time() - 1000
    os.utime(path, (old, old))
    deadline = time.time() + 5
    while path.stat().st_mtime < old + 500 and time.time() < deadline:
        time.sleep(0.02)
    assert path.stat().st_mtime > time.time() - 5, "the heartbeat did not touch lock.json"
    lock.release()
    assert not path.exists()
    time.sleep(0.2)
    beating = [t for t in threading.enumerate() if t.name == "bench-lock-heartbeat" and t.is_alive()]
    assert beating == [] and not path.exists()  # the thread stopped and recreated nothing


RACER = """
import json, sys, time
from pathlib import Path
from bench.store import locks
path, start, plan = Path(sys.argv[1]), float(sys.argv[2]), [float(t) for t in sys.argv[3].split(",")]
read, seen = locks.read_lock, []

def read_then_wait(p):
    # The n-th read of a lock file (the stale claim, then the claim a take-over re-reads under its
    # guard before deleting it) returns its content, then waits until start + plan[n]: the racers'
    # order between two file operations.
    info = read(p)
    seen.append(info)
    if len(seen) <= len(plan):
        time.sleep(max(0.0, start + plan[len(seen) - 1] - time.time()))
    return info

locks.read_lock = read_then_wait
lock = locks.RunLock(path)
time.sleep(max(0.0, start - time.time()))
print(json.dumps({"won": lock.acquire(), "token": lock.token, "saw": seen[0] and seen[0].get("token")}), flush=True)
time.sleep(2.5)  # a winner, alive, keeps its claim while the others try; no one releases
"""


def race(tmp_path, plans: list[str]) -> list[dict]:
    """One racer per plan against a claim whose holder stopped an hour ago; what each one says it got."""
    path = tmp_path / "lock.json"
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "dead", "claimed": 0}))
    old = time.time() - 3600
    os.utime(path, (old, old))
    start = time.time() + 1.0
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), str(start), plan], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for plan in plans]
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        outcomes.append(json.loads(out))
    assert all(o["saw"] == "dead" for o in outcomes)  # every racer acted on the stale claim it read
    return outcomes


@pytest.mark.parametrize("plans", [["0.1", "0.1"], ["0.1", "0.5"]], ids=["at-once", "one-after-the-other"])
def test_of_two_processes_taking_over_one_stale_lock_exactly_one_wins(tmp_path, plans):
    """Both have read the stale claim; they move at once, or the second after the first has its fresh
    claim (where a take-over that deleted whatever lock.json held, without re-reading it under the
    guard file, would delete the winner's fresh claim and let both win)."""
    outcomes = race(tmp_path, plans)
    winners = [o["token"] for o in outcomes if o["won"]]
    assert len(winners) == 1, outcomes
    assert json.loads((tmp_path / "lock.json").read_text())["token"] == winners[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock.json"]  # no stale copy left aside


def test_a_third_process_cannot_claim_while_a_fresh_claim_is_put_back(tmp_path):
    # A takes over at 0.1 s; B starts its take-over at 0.6 s and is held, guard in hand, before it reads
    # lock.json again until 1.6 s; C acts on its stale read at 1.1 s. (Before take-overs were guarded,
    # B had moved A's claim aside by then, C created a claim of its own and two processes held the run.)
    outcomes = race(tmp_path, ["0.1", "0.6,1.6", "1.1"])
    assert sum(o["won"] for o in outcomes) == 1, outcomes


# ------------------------------------------------------------------ sample_every

@pytest.mark.parametrize("sample_every,steps", [(10, [10, 20, 30]), (0, [30])])
def test_sample_every_writes_a_grid_at_those_steps(tmp_path, sample_every, steps):
    from bench.train import loop

    config = resolve({"variant": "dcgan", "dataset": "digits", "image_size": 8, "dcgan.width": 8, "steps": 30,
                      "batch_size": 8, "log_every": 5, "ckpt_every": 30, "eval_every": -1, "device": "cpu",
                      "sample_every": sample_every})
    run = RunDir(tmp_path, "s", config.run_id)
    run.write_config(config.flat())
    assert loop.train(run, config) == "done"
    assert sorted(p.name for p in run.samples_dir.iterdir()) == [f"step-{s:07d}.png" for s in steps]


# ------------------------------------------------------------------ bench status --watch

def test_status_watch_returns_once_every_run_has_ended(tmp_path):
    root = tmp_path / "results"
    runs, claims = [], []
    for seed in (0, 1):
        config = resolve({**tiny_grid()["base"], "seed": seed})
        run = RunDir(root, "g", config.run_id)
        run.write_config(config.flat())
        runs.append(run)
    runs[0].set_status("running", step=10, started=time.time())
    claims.append(RunLock(runs[0].path))
    assert claims[0].acquire()  # held by this live process: the run reads as running, not stalled
    watch = subprocess.Popen([sys.executable, "-m", "bench.cli", "status", "g", "--watch", "--results", str(root)],
                             cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        assert watch.poll() is None, watch.communicate()  # one run running, one queued: still watching
        runs[0].set_status("done", step=20, finished=time.time())
        claims[0].release()
        time.sleep(2.5)
        assert watch.poll() is None  # the queued run has not ended yet
        runs[1].set_status("failed", reason="RuntimeError: planted")
        out, err = watch.communicate(timeout=15)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert "1 failed, 1 done" in out.split("\n\n")[-1]  # the last table printed shows the end
