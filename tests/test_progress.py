"""Progress that tells the truth: a resumed run's step bar starts at its checkpoint, its rate counts only
the steps trained in this process over wall time, the ETAs include evaluation, and `bench status NAME`
lists configurations in the grid file's order."""

from __future__ import annotations

import pytest
import yaml

from bench.launch import scheduler
from bench.config.schema import load_grid
from bench.config.grid import resolve_all
from bench.train.loop import train
from bench.launch.progress import GridProgress, StepBar
from bench.launch.status import RunRow, eta_text
from conftest import tiny_grid


class FakeBar:
    """What StepBar uses of a tqdm bar."""

    def __init__(self, n: int = 0):
        self.n = self.initial = n
        self.desc = self.postfix = ""
        self.closed = False

    def set_description_str(self, desc):
        self.desc = desc

    def set_postfix_str(self, postfix, refresh=True):
        self.postfix = postfix

    def refresh(self):
        pass

    def close(self):
        self.closed = True


def _planned(tmp_path, grid: dict):
    path = tmp_path / f"{grid['name']}.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    configs, _ = resolve_all(load_grid(path))
    planned = scheduler.plan(tmp_path / "results", grid["name"], configs)
    for p in planned:
        scheduler.prepare(p)
    return planned


def test_a_resumed_runs_bar_starts_at_its_checkpoint_step(tmp_path):
    (p,) = _planned(tmp_path, tiny_grid(steps=20, log_every=10, ckpt_every=10))

    def stop_at_10(done, total):
        if done == 10:
            raise KeyboardInterrupt  # as a kill right after the first checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(p.run, p.config, stop_at_10)
    assert p.run.checkpoint_file.exists()

    progress = GridProgress([p], 1)
    progress.tty = True  # the step bar exists on a terminal only
    bar = progress.steps_for([str(p.run.path)])
    assert bar.bar.n == 10 and "resuming at step 10" in bar.desc + bar.bar.desc  # before the loop reports
    calls = []
    train(p.run, p.config, lambda done, total: calls.append((done, total)) or bar(done, total))
    assert calls == [(10, 20), (20, 20)]  # the start (no sync: the checkpoint's step) and the flush
    assert bar.bar.initial == 10 and bar.start == 10 and bar.done == 20
    assert "training from step 10" in bar.bar.desc


def test_rate_is_steps_trained_here_over_wall_time_with_evaluation():
    now = [100.0]
    bar = StepBar(FakeBar(4000), "abc", 4000, clock=lambda: now[0])
    assert "resuming at step 4000" in bar.bar.desc and bar.rate() is None
    now[0] = 130.0  # setup (data, compile) is not training
    bar(4000, 10000)
    now[0] = 230.0
    bar(4100, 10000)
    assert bar.rate() == pytest.approx(1.0)  # 100 steps in 100 s, not 4100 / 130
    assert bar.bar.n == 4100 and bar.bar.postfix == "1.0 steps/s, ETA 98.3 min"
    now[0] = 430.0  # a flush with an evaluation: 100 steps, then 100 s evaluating
    bar(4200, 10000)
    assert bar.rate() == pytest.approx(200 / 300)
    bar(10000, 10000)
    assert bar.bar.closed


def _row(state, step, steps, **status):
    return RunRow("r" + str(step), {"steps": steps}, {"state": state, "step": step, **status}, None)


def test_status_eta_uses_wall_time_per_step_including_evaluation():
    # 200 steps in 400 s of wall time: 100 s of it training, 300 s evaluating at flushes and at the end.
    done = _row("done", 200, 200, start_step=0, started=1000.0, finished=1400.0)
    assert done.rate == pytest.approx(0.5)
    assert eta_text([done, _row("queued", 0, 200)]) == "; ETA 6.7 min for 200 steps at 0.5 steps/s"
    resumed = _row("done", 200, 200, start_step=150, started=1000.0, finished=1100.0)
    assert resumed.rate == pytest.approx(0.5)  # the 50 steps trained since the resume


def test_progress_line_eta_includes_evaluation(tmp_path, capsys):
    planned = _planned(tmp_path, {**tiny_grid(steps=100), "seeds": 2})
    first, second = planned
    # Planted: the first run trained 100 steps in 400 s of wall time, evaluations included.
    first.run.set_status("done", step=100, start_step=0, steps=100, started=1000.0, finished=1400.0)
    progress = GridProgress(planned, 1)
    progress.run_done(first.run.id, "done", 10.0)
    line = capsys.readouterr().err.strip()
    # The second run's 100 steps at 4 s a step, not at the 10 s the first run's process took per run.
    assert line.startswith("[1/2] ") and line.endswith("(10.0s, 10.0 steps/s; ETA 6.7 min)")


LR_GRID = """\
name: lrs
seeds: 1
base: {variant: mlp_gan, dataset: ring8, steps: 2, batch_size: 8, log_every: 1, ckpt_every: 2, eval_every: -1}
grid:
  lr_g: [0.0005, 0.0001, 0.0003, 0.0002, 0.0004]
"""


def test_status_of_a_grid_name_lists_configurations_in_grid_order(tmp_path, bench_cli):
    (tmp_path / "lrs.yaml").write_text(LR_GRID)
    configs, _ = resolve_all(load_grid(tmp_path / "lrs.yaml"))
    planned = scheduler.plan(tmp_path / "results", "lrs", configs)
    for p in planned:
        scheduler.prepare(p)
    (tmp_path / "results" / "lrs" / "grid.yaml").write_text(LR_GRID)
    by_id = [p.config.flat()["lr_g"] for p in sorted(planned, key=lambda p: p.run.id)]
    grid_order = [0.0005, 0.0001, 0.0003, 0.0002, 0.0004]
    assert by_id != grid_order  # else this test could not tell the orders apart

    def listed():
        code, out, err = bench_cli("status", "lrs")
        assert code == 0, err
        return [float(line.split("lr_g=")[1].split()[0]) for line in out.splitlines() if "lr_g=" in line]

    assert listed() == grid_order
    (tmp_path / "results" / "lrs" / "grid.yaml").unlink()
    assert listed() == by_id  # no grid file: run-id order, as before
