"""Faults on disk and in checkpoints: each ends in one line naming the problem and the fix, and
nothing already on disk is lost. A full disk (simulated at the Nth write, and a real small tmpfs
where mounting is allowed), writes a kill interrupted, checkpoints that are truncated or another
config's, `bench sample` arguments, hostile strings in report.md, and kill -9 at random points."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bench.store import checkpoint
from bench.cli import main
from bench.report.build import Options, write_report
from bench.report.synthetic import curve_record, write_run
from bench.report.text import md_escape
from conftest import tiny_grid

SMALL = {"hidden_g": [32, 32], "hidden_d": [32, 32]}  # a tiny mlp_gan: its checkpoint is ~30 kB
TEMP_GLOBS = (".*.tmp", "ckpt/.*", "samples/.*")  # what bench/store/runs.py's atomic writers leave when killed


def _grid(**base) -> dict:
    return tiny_grid(mlp_gan=SMALL, **base)


def _error_line(err: str) -> str:
    """The one `error:` line of a command, which must not have printed a traceback."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def _runs(results: Path) -> dict[int, Path]:
    """Run folders of the one grid under `results`, by seed."""
    return {yaml.safe_load((p / "config.yaml").read_text())["seed"]: p
            for p in results.glob("*/*") if (p / "config.yaml").is_file()}


def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text()) if (run / "status.json").exists() else {"state": "queued"}


def _temporaries(run: Path) -> list[Path]:
    return [p for pattern in TEMP_GLOBS for p in run.glob(pattern)]


def _same(a, b, where: str = "") -> None:
    """Nested checkpoint contents equal exactly: tensors bit for bit, everything else by ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _records(run: Path) -> list[str]:
    """Every metric record but the wall-clock ones, in file order."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [json.dumps(r, sort_keys=True) for r in rows if r["name"] != "sec_per_step"]


def _assert_same_runs(runs: dict[int, Path], reference: dict[int, Path]) -> None:
    assert runs.keys() == reference.keys()
    for seed, run in runs.items():
        assert _status(run)["state"] == "done", _status(run)
        for name in ("latest.pt", "best.pt"):
            if (reference[seed] / "ckpt" / name).exists():
                _same(torch.load(run / "ckpt" / name, weights_only=True),
                      torch.load(reference[seed] / "ckpt" / name, weights_only=True), f"seed {seed} {name}")
        assert _records(run) == _records(reference[seed]), f"seed {seed}: records differ"
        assert _temporaries(run) == [], _temporaries(run)


# ---- a full disk

class FullDisk:
    """Stands in for bench.store.checkpoint.save_atomic: the `at`-th checkpoint write fails as torch.save
    fails on a full disk (half a temporary file, then a RuntimeError with the OSError in its chain).
    `sticky`: every write after it fails too (status.json included), until `free()`."""

    def __init__(self, real, at: int, sticky: bool = False):
        self.real, self.at, self.sticky = real, at, sticky
        self.calls, self.full = 0, False

    def free(self) -> None:
        self.at, self.full = 10**9, False

    def __call__(self, path, save):
        self.calls += 1
        if self.calls == self.at:
            self.full = self.sticky
            return self.real(path, _half_written)
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real(path, save)


def _half_written(tmp: str) -> None:
    Path(tmp).write_bytes(b"PK\x03\x04 half a checkpoint")
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:  # torch.save chains it as the context of its own error, with no errno of its own
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")


def test_full_disk_queues_the_run_stops_the_grid_and_resumes_after_space_is_freed(bench_cli, write_grid,
                                                                                 tmp_path, monkeypatch):
    grid = write_grid({**_grid(steps=40), "seeds": 3})
    assert bench_cli("run", str(grid), "--results", "straight")[0] == 0
    disk = FullDisk(checkpoint.save_atomic, at=6)  # seed 0 writes 4 checkpoints; seed 1's second fails
    monkeypatch.setattr(checkpoint, "save_atomic", disk)

    code, _, err = bench_cli("run", str(grid))
    runs = _runs(tmp_path / "results")
    stopped = f"results/tiny/{runs[1].name}/ckpt/latest.pt"
    assert code == 1, err
    assert _error_line(err) == f"error: no space left on device writing {stopped}; free space, then bench run {grid} to resume"
    assert _status(runs[0])["state"] == "done"
    status = _status(runs[1])
    assert status["state"] == "queued" and status["reason"].startswith(f"no space left on device writing {stopped}")
    assert torch.load(runs[1] / "ckpt" / "latest.pt", weights_only=True)["step"] == 10  # the last good one
    assert _temporaries(runs[1]) == [] and not (runs[1] / "error.txt").exists()
    assert "started" not in _status(runs[2]), "the grid went on after the disk filled up"

    disk.free()
    code, _, err = bench_cli("run", str(grid))  # no --retry-failed: a full disk is not the run's failure
    assert code == 0, err
    assert _status(runs[1])["start_step"] == 10
    _assert_same_runs(runs, _runs(tmp_path / "straight"))


def test_full_disk_that_keeps_status_json_from_being_written_says_so(bench_cli, write_grid, tmp_path, monkeypatch):
    from bench.store import runs as store

    grid = write_grid({**_grid(steps=30), "seeds": 2})
    disk = FullDisk(checkpoint.save_atomic, at=2, sticky=True)
    monkeypatch.setattr(checkpoint, "save_atomic", disk)
    real_write = store.write_atomic

    def write_atomic(path, data):
        if disk.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, data)

    monkeypatch.setattr(store, "write_atomic", write_atomic)
    code, _, err = bench_cli("run", str(grid))
    run = _runs(tmp_path / "results")[0]
    assert code == 1
    line = _error_line(err)
    assert "no space left on device under results/tiny" in line and "status.json" in line and "could not" in line
    assert line.endswith(f"free space, then bench run {grid} to resume")
    assert _status(run)["state"] == "running"  # its last good status, whole: the run resumes all the same

    disk.free()
    code, _, err = bench_cli("run", str(grid))
    assert code == 0, err
    assert _status(run)["state"] == "done" and _status(run)["start_step"] == 10


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 256 kB filesystem (tmpfs), or a skip where mounting is not permitted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True)
    if res.returncode:
        pytest.skip(f"mount not permitted here: {res.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_real_full_filesystem(bench_cli, write_grid, small_tmpfs, tmp_path):
    """torch.save, the sample PNGs and metrics.jsonl on a filesystem that fills up for real."""
    # One process (runs one at a time, so the first run alone fills the disk) and z_dim 2, so one
    # checkpoint (about 110 kB) fits beside the samples and the second does not.
    grid = write_grid({**tiny_grid(steps=40, sample_every=10, z_dim=2,
                                   mlp_gan={"hidden_g": [64, 64], "hidden_d": [64, 64]}), "seeds": 3})
    code, _, err = bench_cli("run", str(grid), "--results", "disk/results", "--jobs", "1")
    assert code == 1, err
    line = _error_line(err)
    # Which write fails first depends on sizes; where it is a small one, status.json cannot be written either.
    assert line.startswith(("error: no space left on device writing disk/results/tiny/",
                            "error: no space left on device under disk/results/tiny (status.json of run")), line
    assert line.endswith(f"free space, then bench run {grid} --results disk/results to resume"), line
    runs = _runs(small_tmpfs / "results")
    started = [r for r in runs.values() if "started" in _status(r)]  # status.json parses: it is whole
    assert len(started) == 1, "the grid went on after the disk filled up"
    assert _status(started[0])["state"] in ("queued", "running") and _temporaries(started[0]) == []
    latest = torch.load(started[0] / "ckpt" / "latest.pt", weights_only=True)["step"]  # whole, too

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_tmpfs)], check=True)  # space freed
    code, _, err = bench_cli("run", str(grid), "--results", "disk/results", "--jobs", "1")
    assert code == 0, err
    assert all(_status(r)["state"] == "done" for r in runs.values())
    assert _status(started[0])["start_step"] == latest


# ---- writes a kill interrupted

def test_temporary_files_of_killed_writes_are_removed_when_the_run_resumes(bench_cli, write_grid, tmp_path):
    grid = write_grid(_grid(steps=20))
    assert bench_cli("run", str(grid))[0] == 0
    (run,) = _runs(tmp_path / "results").values()
    left = [run / "samples" / ".step-0000020.png.k3j9x_2a.png", run / "ckpt" / ".latest.pt.a8d7f6s5.pt",
            run / "ckpt" / ".best.pt.0p9o8i7u.pt", run / ".status.json.q1w2e3r4.tmp"]
    kept = [run / "notes.txt", run / "ckpt" / ".latest.pt.keep", run / "samples" / ".hidden"]
    for path in left + kept:
        path.write_bytes(b"" if path.suffix == ".png" else b"partial")
    (run / "status.json").unlink()  # queued again: the next bench run resumes it from latest.pt (step 20)

    code, _, err = bench_cli("run", str(grid))
    assert code == 0, err
    assert [p for p in left if p.exists()] == []
    assert all(p.exists() for p in kept)
    assert _status(run)["state"] == "done"


# ---- checkpoints that are truncated or another config's

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two finished runs whose nets differ in width, trained once for this module."""
    root = tmp_path_factory.mktemp("trained")
    for name, width in (("narrow", 16), ("wide", 32)):
        grid = root / f"{name}.yaml"
        grid.write_text(yaml.safe_dump({**tiny_grid(mlp_gan={"hidden_g": [width], "hidden_d": [width]}),
                                        "name": name}))
        assert main(["run", str(grid), "--results", str(root / "results")]) == 0
    return {name: next((root / "results" / name).glob("*/config.yaml")).parent for name in ("narrow", "wide")}


@pytest.fixture
def damaged_run(trained, tmp_path):
    """A copy of the narrow run that its test may damage."""
    return Path(shutil.copytree(trained["narrow"], tmp_path / "results" / "narrow" / trained["narrow"].name))


def _sample(bench_cli, run, *args):
    return bench_cli("sample", str(run), "--n", "8", "--out", "s.npz", *args)


def _eval(bench_cli, run, *args):
    return bench_cli("eval", str(run), "--metrics", "mode_scores", "--device", "cpu", *args)


@pytest.mark.parametrize("command", [_sample, _eval], ids=["sample", "eval"])
def test_checkpoint_of_another_config_is_refused_in_one_line(command, bench_cli, trained, damaged_run):
    shutil.copy(trained["wide"] / "ckpt" / "latest.pt", damaged_run / "ckpt" / "latest.pt")
    code, _, err = command(bench_cli, damaged_run)
    assert code == 2
    line = _error_line(err)
    assert f"checkpoint {damaged_run / 'ckpt' / 'latest.pt'} does not match this run's networks (size mismatch" in line
    assert line.endswith("; delete the run folder to retrain that run")


@pytest.mark.parametrize("command", [_sample, _eval], ids=["sample", "eval"])
def test_truncated_latest_checkpoint_is_refused_in_one_line(command, bench_cli, damaged_run):
    latest = damaged_run / "ckpt" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:300])
    code, _, err = command(bench_cli, damaged_run)
    assert code == 2
    assert _error_line(err) == (f"error: checkpoint {latest} is unreadable (RuntimeError); "
                                f"delete the run folder to retrain that run")


def test_truncated_or_foreign_best_checkpoint_is_refused_in_one_line(bench_cli, trained, damaged_run):
    best = damaged_run / "ckpt" / "best.pt"
    data = (trained["wide"] / "ckpt" / "latest.pt").read_bytes()
    best.write_bytes(data[:300])
    code, _, err = _eval(bench_cli, damaged_run, "--checkpoint", "best")
    assert code == 2
    assert _error_line(err) == (f"error: checkpoint {best} is unreadable (RuntimeError); "
                                f"delete it to evaluate the final checkpoint only")
    best.write_bytes(data)  # a whole checkpoint of the wide run: its G has the wrong shapes here
    code, _, err = _eval(bench_cli, damaged_run, "--checkpoint", "best")
    assert code == 2
    line = _error_line(err)
    assert f"checkpoint {best} does not match this run's networks (size mismatch" in line
    assert line.endswith("delete it to evaluate the final checkpoint only")


# ---- bench sample arguments

@pytest.mark.parametrize("args, message", [
    (["--out", "/no-such-folder-for-bench/s.npz"], "does not exist and is outside the current directory"),
    (["--out", "a/b/s.npz"], "does not exist; create it first (only the last folder"),
    (["--out", "plain.txt/s.npz"], "is not a folder"),
    (["--out", "s.png"], "the file name must end in .npz"),
    (["--n", "100000000"], "--n 100000000: at most 1,000,000 samples per file"),
    (["--seed", "12345678901234567890123"], "--seed 12345678901234567890123: must be in [0, 2^63)"),
    (["--seed", "-1"], "--seed -1: must be in [0, 2^63)"),
])
def test_sample_arguments_are_checked_before_anything_is_written(args, message, bench_cli, trained, tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, _, err = bench_cli("sample", str(trained["narrow"]), "--n", "8", "--out", "s.npz", *args)
    assert code == 2
    assert message in _error_line(err)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path("/no-such-folder-for-bench").exists()


def test_sample_makes_only_the_last_folder_and_writes_atomically(bench_cli, trained, tmp_path):
    code, _, err = bench_cli("sample", str(trained["narrow"]), "--n", "8", "--out", "new/s.npz", "--seed", str(2**63 - 1))
    assert code == 0, err
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["s.npz"]
    with np.load(tmp_path / "new" / "s.npz") as f:
        assert f["samples"].shape == (8, 2)


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if res.returncode:
        pytest.skip("root ignores permission bits and mount is not permitted here")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_sample_to_an_unwritable_folder_is_refused(bench_cli, trained, read_only_folder):
    code, _, err = bench_cli("sample", str(trained["narrow"]), "--n", "8", "--out", "ro/s.npz")
    assert code == 2
    assert "is not writable; pick another --out" in _error_line(err)


# ---- report.md

XSS = "<script>alert(1)</script>"


def test_report_markdown_escapes_every_record_and_config_string(tmp_path):
    grid = tmp_path / "results" / "hostile"
    name = "fd|`x`" + XSS
    for variant in ("dcgan", "wgan"):
        for seed in range(2):
            rec = curve_record(100, name, 1.0 + seed, f"FD|{XSS}", False, kind="final", seed=seed)
            write_run(grid, {"variant": variant, "dataset": "ring8", "seed": seed, "note": f"<img src=x onerror=alert(1)>|{variant}"},
                      "done", [rec], 100)
    write_run(grid, {"variant": "dcgan", "dataset": "ring8", "seed": 9, "note": "x"}, "failed", [], 3,
              reason=f"RuntimeError: {XSS} [click](javascript:alert(1)) | `code`")
    (grid / "grid.yaml").write_text("name: hostile\ngrid:\n  variant: [dcgan, wgan]\n")
    out = tmp_path / "report"
    write_report(grid, out, Options(formats=("md",)))
    md = (out / "report.md").read_text()
    assert "<script" not in md.lower() and "<img" not in md.lower()
    assert not re.search(r"(?<!\\)\]\(javascript:", md), "a link made from a failure reason"
    assert "&lt;script>" in md  # the reason and the label are there, escaped
    # Every row of a table keeps the columns of its header: no pipe from a value splits a cell.
    tables = [t.splitlines() for t in re.findall(r"(?m)(?:^\|.*\n?)+", md)]
    assert tables
    for rows in tables:
        assert len({row.replace("\\|", "").count("|") for row in rows}) == 1, rows


@pytest.mark.parametrize("text, escaped", [
    (XSS, "&lt;script>alert(1)&lt;/script>"),
    ("a|b `c`", "a\\|b \\`c\\`"),
    ("[x](javascript:y)", "[x\\](javascript:y)"),
    ("line\nbreak", "line break"),
    ("n<5, p<0.001, [0.1, 0.2]", "n<5, p<0.001, [0.1, 0.2]"),  # plain comparisons and intervals stay readable
    ("&amp; R&D \\", "&amp;amp; R&amp;D \\\\"),
])
def test_md_escape(text, escaped):
    assert md_escape(text) == escaped


# ---- kill -9 at random points

def _bench_run_in_fork(grid: Path, results: Path, marks: Path) -> int:
    """`bench run` in a forked copy of this process, so a kill costs no interpreter start-up. It marks
    what it is doing with files in `marks`: `eval` while a curve evaluation runs, `ckpt` while a
    checkpoint write is open (held 50 ms between writing the temporary file and renaming it), and
    appends to `written` after each latest.pt is in place."""
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        from bench.metrics.evaluator import Evaluator

        real_flush, real_save = Evaluator.at_flush, checkpoint.save_atomic

        def at_flush(self, G, step):
            if step not in self.steps:
                return real_flush(self, G, step)
            (marks / "eval").touch()
            real_flush(self, G, step)
            (marks / "eval").unlink()

        def save_atomic(path, save):
            def held(tmp):
                save(tmp)
                (marks / "ckpt").touch()
                time.sleep(0.05)
            real_save(path, held)
            (marks / "ckpt").unlink()
            if path.name == "latest.pt":
                with open(marks / "written", "a") as f:
                    f.write(".")

        Evaluator.at_flush, checkpoint.save_atomic = at_flush, save_atomic
        torch.set_num_threads(1)
        code = main(["run", str(grid), "--results", str(results), "--jobs", "1"])  # patched here, not in workers
    finally:
        os._exit(code)


def _wait_for(path: Path, pid: int, timeout: float = 120) -> bool:
    """True once `path` exists; False if the child ended first (it is then reaped)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            return True
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
        time.sleep(0.001)
    raise AssertionError(f"{path.name} never appeared")


@pytest.mark.slow
def test_random_kills_resume_to_the_same_weights_optimizers_and_records(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(_grid(steps=400, log_every=10, ckpt_every=10, eval_every=20, eval_n=500)))
    assert main(["run", str(grid), "--results", "straight", "--jobs", "1"]) == 0
    marks, killed = tmp_path / "marks", tmp_path / "killed"
    marks.mkdir()
    rng = random.Random(20240613)
    kills: list[str] = []
    while len(kills) < 12:
        for mark in marks.iterdir():
            mark.unlink()
        pid = _bench_run_in_fork(grid, killed, marks)
        # Each life writes one checkpoint first, so the run gets on; then the kill, in turn inside an
        # evaluation, inside a checkpoint write, or after a random delay.
        aim = ("eval", "ckpt", "random")[len(kills) % 3]
        alive = _wait_for(marks / "written", pid)
        if alive and aim != "random":
            alive = _wait_for(marks / aim, pid)
        elif alive:
            time.sleep(rng.uniform(0.0, 0.3))
        if not alive:
            break  # the run finished before this kill: too few kills, asserted below
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        (run,) = _runs(killed).values()
        # Where it landed: a loaded machine may deliver a kill aimed at a write after its rename.
        if (marks / "ckpt").exists() and list((run / "ckpt").glob(".*.pt")):
            kills.append("ckpt")  # its temporary file is left for the next life to remove
        else:
            kills.append("eval" if (marks / "eval").exists() else "between")
    assert len(kills) >= 10, kills
    assert kills.count("eval") >= 3 and kills.count("ckpt") >= 3, kills

    pid = _bench_run_in_fork(grid, killed, marks)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    _assert_same_runs(_runs(killed), _runs(tmp_path / "straight"))


# ---- SIGTERM to a launcher with worker processes


def _descendants(pid: int) -> set[int]:
    """Every live process under `pid`, from /proc (the workers and joblib's helpers)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped; only its parent's reaping is left


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_sigterm_stops_the_worker_processes_and_leaves_the_runs_resumable(tmp_path):
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(_grid(steps=1_000_000, log_every=50, ckpt_every=50)
                                                       | {"seeds": 2}))
    launcher = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "grid.yaml", "--jobs", "2"],
                                cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.time() + 120
        while len([r for r in _runs(tmp_path / "results").values() if (r / "ckpt" / "latest.pt").exists()]) < 2:
            assert launcher.poll() is None and time.time() < deadline, "both runs never checkpointed"
            time.sleep(0.2)
        workers = _descendants(launcher.pid)
        assert workers
        launcher.send_signal(signal.SIGTERM)
        _, err = launcher.communicate(timeout=60)  # orphaned workers would hold stderr open: a timeout
        assert launcher.returncode == 143 and "Traceback" not in err, err
        assert err.strip().endswith("resume from their last checkpoint with: bench run grid.yaml --jobs 2"), err
        deadline = time.time() + 10
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "worker processes outlived the launcher"
    finally:  # a failure must not leave the launcher or its workers training a million steps
        if launcher.poll() is None:
            launcher.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    # Each run keeps a checkpoint, and with its process gone `bench status` calls it stalled: the next
    # `bench run` resumes it.
    assert all(_status(r)["step"] >= 50 for r in _runs(tmp_path / "results").values())
    status = subprocess.run([sys.executable, "-m", "bench.cli", "status", "tiny"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert status.returncode == 0 and "\n2 stalled" in status.stdout, status.stdout + status.stderr


def test_sigterm_is_an_interrupt_only_while_a_launcher_waits_on_its_workers():
    """Inside, SIGTERM raises Terminated (the launcher then stops its workers); after, the handler is
    what it was, so a process forked later (a report's figure pool) still dies of SIGTERM as before."""
    from bench.errors import Terminated
    from bench.launch.backends import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is before
