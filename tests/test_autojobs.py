"""`--jobs auto` (bench/launch/autojobs.py) and the longest-first dispatch of a round (scheduler.pack_units)."""

from __future__ import annotations

import json

import pytest

from bench.config.schema import resolve
from bench.launch import autojobs, scheduler
from bench.store.runs import RunDir


@pytest.mark.parametrize("measured, chosen", [
    ({(1, 2): 10.0, (2, 1): 10.4}, (1, 2)),  # within MARGIN: fewer processes
    ({(1, 2): 10.0, (2, 1): 11.0}, (2, 1)),  # more processes clearly faster
    ({(1, 2): 10.0, (2, 1): 4.0}, (1, 2)),
    ({(1, 4): 10.0, (2, 2): 12.0, (4, 1): 12.2}, (2, 2)),  # 4x1 is not 5% over 2x2
])
def test_auto_keeps_the_fastest_layout_preferring_fewer_processes(measured, chosen):
    assert autojobs.choose(measured) == chosen


def test_layouts_fill_the_cores():
    assert autojobs.layouts(2) == [(1, 2), (2, 1)]
    assert autojobs.layouts(6) == [(1, 6), (2, 3), (3, 2), (6, 1)]


def test_auto_measures_once_and_reads_the_cache_after(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    probed = []

    def probe(processes, threads):
        probed.append((processes, threads))
        return {1: 5.0, 2: 9.0}[processes]

    first = autojobs.decide(tmp_path, cores=2, probe=probe)
    assert (first.processes, first.threads) == (2, 1) and sorted(probed) == [(1, 2), (2, 1)]
    saved = json.loads(next(tmp_path.glob("jobs-*-2cores.json")).read_text())
    assert saved["steps_per_s"] == {"1x2": 5.0, "2x1": 9.0}
    again = autojobs.decide(tmp_path, cores=2, probe=lambda p, t: pytest.fail("measured twice"))
    assert (again.processes, again.threads) == (2, 1) and "cached" in again.why


def test_a_thread_count_set_in_the_environment_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    layout = autojobs.decide(tmp_path, cores=16, probe=lambda p, t: pytest.fail("no probe"))
    assert (layout.processes, layout.threads) == (1, 2) and not list(tmp_path.iterdir())


def test_bad_jobs_value_is_one_line(bench_cli, write_grid):
    from conftest import tiny_grid

    code, _, err = bench_cli("run", str(write_grid(tiny_grid())), "--jobs", "two")
    assert code == 2 and err.strip() == "error: --jobs 'two': expected a whole number of runs at once (1 or more) or auto"


def _planned(tmp_path, steps_by_variant: dict, seeds: int = 2):
    out = []
    for variant, steps in steps_by_variant.items():
        for seed in range(seeds):
            config = resolve({"variant": variant, "dataset": "ring8", "steps": steps, "seed": seed})
            out.append(scheduler.PlannedRun(RunDir(tmp_path, "g", config.run_id), config))
    return out


def test_each_round_starts_its_longest_runs_first(tmp_path):
    planned = _planned(tmp_path, {"mlp_gan": 100, "wgan": 100})  # wgan: 5 D steps per step
    plain = scheduler.pack_units(planned, 1)
    ordered = scheduler.pack_units(planned, 1, scheduler.expected_cost(planned))
    path = lambda i: [str(planned[i].run.path)]  # noqa: E731
    assert plain == [path(0), path(2), path(1), path(3)]  # the grid's order, round by round
    assert ordered == [path(2), path(0), path(3), path(1)]  # wgan first in each round


def test_recorded_seconds_of_finished_runs_replace_the_estimate(tmp_path):
    planned = _planned(tmp_path, {"mlp_gan": 100, "wgan": 100})
    for p, seconds in zip(planned, (50.0, 0, 10.0, 0)):
        if seconds:
            p.run.write_config(p.config.flat())
            p.run.set_status("done", seconds={"train": seconds})
    cost = scheduler.expected_cost(planned)
    assert cost[str(planned[1].run.path)] == 50.0 and cost[str(planned[3].run.path)] == 10.0
    assert scheduler.pack_units(planned[1::2], 1, cost) == [[str(planned[1].run.path)], [str(planned[3].run.path)]]
