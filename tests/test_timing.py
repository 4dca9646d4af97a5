"""Where a run's time goes (bench/train/timing.py), the flush hooks that the loop times (bench/train/hooks.py),
and the harness version every run records (bench/version.py)."""

from __future__ import annotations

import shutil
import time

import pytest

from bench.config.schema import resolve
from bench.launch.status import read_rows, render
from bench.store.runs import RunDir
from bench.train import hooks, loop
from bench.train.timing import PHASES, time_split
from bench.version import fingerprint, harness

KEYS = {"variant": "mlp_gan", "dataset": "ring8", "steps": 30, "batch_size": 16, "log_every": 10, "ckpt_every": 10,
        "sample_every": 10, "eval_every": 10, "eval_n": 200, "device": "cpu"}


def _run(tmp_path, seed: int = 0, **keys):
    config = resolve({**KEYS, "seed": seed, **keys})
    run = RunDir(tmp_path, "g", config.run_id)
    run.write_config(config.flat())
    return run, config


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def test_the_phases_of_a_run_add_up_to_its_wall_time(tmp_path):
    run, config = _run(tmp_path)
    state, wall = _timed(lambda: loop.train(run, config))
    seconds = run.status()["seconds"]
    assert state == "done" and list(seconds) == sorted(PHASES)  # status.json sorts its keys
    assert sum(seconds.values()) == pytest.approx(wall, rel=0.02)
    for phase in ("startup", "train", "curve_eval", "final_eval", "checkpoint", "samples", "records"):
        assert seconds[phase] > 0, phase  # every phase ran in this run and was charged to its own name


def test_pack_members_split_the_shared_time_and_keep_their_own(tmp_path):
    runs, configs = zip(*(_run(tmp_path, seed) for seed in (0, 1)))
    states, wall = _timed(lambda: loop.train_runs(list(runs), list(configs)))
    assert states == ["done", "done"]
    per_run = [r.status()["seconds"] for r in runs]
    assert sum(sum(s.values()) for s in per_run) == pytest.approx(wall, rel=0.02)
    assert per_run[0]["startup"] == pytest.approx(per_run[1]["startup"], abs=0.002)  # split evenly
    assert all(s["curve_eval"] > 0 and s["final_eval"] > 0 for s in per_run)


def test_a_resumed_run_adds_to_the_time_of_its_earlier_process(tmp_path):
    run, config = _run(tmp_path, steps=20)
    _, first = _timed(lambda: loop.train(run, config))
    longer = resolve({**KEYS, "steps": 40})
    (run.path / "ckpt" / "best.pt").unlink()
    _, second = _timed(lambda: loop.train(run, longer))  # resumes from the step-20 checkpoint
    assert run.status()["start_step"] == 20
    assert sum(run.status()["seconds"].values()) == pytest.approx(first + second, rel=0.02)


class Counter(hooks.Hook):
    """A per-flush output added without touching the loop: it keeps its own state."""

    phase = end_phase = "samples"

    def __init__(self):
        self.flushes, self.ends = [], []

    def at_flush(self, f):
        self.flushes.append((f.step, [r["name"] for r in f.records if r.get("kind") == "curve"]))
        time.sleep(0.05)

    def at_end(self, f):
        self.ends.append(f.step)


def test_a_new_hook_sees_every_flush_after_the_curve_and_is_timed_in_its_phase(tmp_path, monkeypatch):
    counters = []
    built = loop._hooks

    def with_counter(*args):
        counters.append(Counter())
        return built(*args) + [counters[-1]]

    monkeypatch.setattr(loop, "_hooks", with_counter)
    run, config = _run(tmp_path, steps=30, eval_every=-1, sample_every=0)
    loop.train(run, config)
    (counter,) = counters
    assert [step for step, _ in counter.flushes] == [10, 20, 30] and counter.ends == [30]
    assert run.status()["seconds"]["samples"] >= 0.15  # three sleeps of 0.05 s, charged to the hook's phase


def test_status_shows_the_time_split_of_a_grid(tmp_path):
    run, config = _run(tmp_path, steps=20)
    loop.train(run, config)
    text = render(read_rows([run.path]), "g")
    seconds = run.status()["seconds"]
    wall = sum(seconds.values())
    assert f"time in runs: {wall:.0f} s (startup {100 * seconds['startup'] / wall:.0f}%" in text
    assert time_split([{"seconds": {"startup": 1.0, "train": 3.0}}, {"seconds": {"train": 4.0}}]) == (
        "time in runs: 8 s (startup 12%, train 88%, curve eval 0%, final eval 0%, checkpoint 0%, samples 0%, records 0%)")
    assert time_split([{"state": "queued"}]) == ""


def test_every_run_records_the_harness_it_trained_with(tmp_path):
    run, config = _run(tmp_path, steps=10, eval_every=-1)
    loop.train(run, config)
    assert run.status()["harness"] == harness()
    assert harness().startswith("0.") and len(harness().partition("+")[2]) == 12


def test_the_fingerprint_follows_the_training_code_and_not_the_report(tmp_path):
    from bench.version import REPO

    for part in ("bench/train", "bench/report", "variants"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    before = fingerprint(tmp_path)
    with open(tmp_path / "bench/report/build.py", "a") as f:
        f.write("\n# a report change\n")
    assert fingerprint(tmp_path) == before
    with open(tmp_path / "variants/bce.py", "a") as f:
        f.write("\n# a variant change\n")
    assert fingerprint(tmp_path) != before
