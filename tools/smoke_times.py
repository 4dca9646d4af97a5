"""The smoke bound: seconds of one `bench run --smoke` run on every built-in dataset, and where they went.

For each registered dataset whose data is on this machine (a dataset that needs files it cannot find is
listed as skipped), trains a grid of two seeds of one variant (dcgan on images, mlp_gan on points) with
--smoke into OUT_DIR, then prints per dataset the wall seconds of the command and each run's phases
from its status.json. The first seed pays what a dataset computes once per machine (extractor and
judge fits, the reference's features and ceilings, in the cache folder); the second is what a smoke
run costs after that. A benchmark, not a test: the seconds depend on the machine and its load.

    python tools/smoke_times.py OUT_DIR [DATASET...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench import registry
from bench.errors import BenchError
from bench.train.timing import PHASES


def available(name: str) -> str:
    """'' when the dataset can load here, else why not."""
    dataset = registry.datasets.get(name)
    try:
        dataset.check(dataset.Options(), 16)
    except BenchError as exc:
        return str(exc)
    return ""


def main(out: Path, names: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'dataset':16} {'wall s':>7}  seed: seconds (" + ", ".join(PHASES) + ")")
    for name in names or registry.datasets.names():
        why = available(name)
        if why:
            print(f"{name:16} skipped: {why}")
            continue
        variant = "mlp_gan" if registry.datasets.get(name).kind == "points" else "dcgan"
        grid = out / f"{name}.yaml"
        grid.write_text(yaml.safe_dump({"name": f"smoke_{name}", "seeds": 2,
                                        "base": {"variant": variant, "dataset": name}}))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.cli", "run", str(grid), "--smoke", "--jobs", "1",
                        "--results", str(out / "results")], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        runs = []
        folders = (out / "results" / f"smoke_{name}-smoke").glob("*/status.json")
        for status in sorted(folders, key=lambda p: yaml.safe_load((p.parent / "config.yaml").read_text())["seed"]):
            st = json.loads(status.read_text())
            seconds = st.get("seconds", {})
            runs.append((st.get("state"), sum(seconds.values()), [seconds.get(p, 0.0) for p in PHASES]))
        parts = "; ".join(f"{state} {total:.1f} s (" + ", ".join(f"{v:.1f}" for v in phases) + ")"
                          for state, total, phases in runs)
        print(f"{name:16} {wall:7.1f}  {parts}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
