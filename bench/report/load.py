"""Run folders to tidy pandas tables: one row per run, one row per recorded value.

A configuration is a run's resolved config without its seed (and without keys that do not change
results, bench.config.identity.NOT_HASHED): seeds of one configuration are the samples the statistics pool.
A metric column is keyed by (name, label, kind, protocol); the protocol key leaves out only the
fields that identify the run rather than the measurement (training seed, step), so two protocols
never share a column while the seeds of one protocol do.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.config.identity import NOT_CONFIG, config_id
from bench.store.runs import FINISHED, Damaged, RunDir, save_atomic, write_atomic

RUN_FIELDS = ("seed", "step")  # in a record's protocol, but they name the run, not the method


@dataclass
class GridData:
    """Everything a report needs from one results/<grid>/ folder."""

    name: str
    path: Path
    runs: pd.DataFrame  # run_id, state, reason, status_step, seed, config_id, config, cfg.<key>...
    records: pd.DataFrame  # run_id, step, name, value, kind, label, protocol, std, std_kind, higher_is_better
    columns: pd.DataFrame = None  # column, name, label, kind, protocol, higher_is_better (eval columns)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)  # protocol key -> its fields
    varying: list[str] = field(default_factory=list)  # config keys that differ between configurations
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # config id -> config without seed
    grid_text: str = ""
    # run folders whose files could not be read (bench/store/runs.py Damaged): run id -> the file, problem and fix.
    # They are in no table: a report lists them instead of dropping them in silence.
    damaged: dict[str, str] = field(default_factory=dict)


def find_grids(targets: Iterable[str], results: Path) -> list[Path]:
    """Grid folders named by the arguments: a grid name under `results`, a grid folder, or a results folder."""
    targets = list(targets)
    if not targets:
        if not results.is_dir():
            raise BenchError(f"no results folder {results}; train a grid with 'bench run GRID_FILE' first")
        found = [p for p in sorted(results.iterdir()) if _is_grid(p)]
        if not found:
            raise BenchError(f"no grids under {results}; train one with 'bench run GRID_FILE' or pass RESULTS_DIR")
        return found
    out: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            target = grid_file_name(path)  # as bench status takes a grid file: its results/<name>
        if not path.is_dir() and (results / target).is_dir():
            path = results / target
        if _is_grid(path):
            out.append(path)
        elif path.is_dir() and any(_is_grid(p) for p in path.iterdir()):
            out.extend(p for p in sorted(path.iterdir()) if _is_grid(p))
        else:
            names = ", ".join(sorted(p.name for p in results.iterdir() if _is_grid(p))) if results.is_dir() else ""
            raise BenchError(f"{target!r} is neither a grid under {results} nor a results or grid folder; "
                             f"grids: {names or '(none)'}")
    return _one_per_name(out)


def _one_per_name(grids: list[Path]) -> list[Path]:
    """Each grid folder once; two different folders with one name would share reports/<name>/, the
    second report replacing the first, so they are refused."""
    seen: dict[str, Path] = {}
    for grid in dict(((g.resolve(), g) for g in grids)).values():
        other = seen.setdefault(grid.name, grid)
        if other is not grid:
            raise BenchError(f"{other} and {grid} are both grids named {grid.name!r} and would share one report "
                             f"folder; report them one at a time, each with its own --out")
    return list(seen.values())


def grid_file_name(path: Path) -> str:
    """The grid a grid file trains into: its `name:`, else the file's stem (as bench run names it).
    Read here with yaml alone, so a report never loads the training stack."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BenchError(f"{path}: cannot read the grid file ({str(exc).splitlines()[0]}); pass the grid's name") from None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else path.stem


def _is_grid(path: Path) -> bool:
    return path.is_dir() and ((path / "grid.yaml").is_file() or any((p / "config.yaml").is_file() for p in path.iterdir()))


def load_grid(path: Path) -> GridData:
    """Read every run folder of one grid, through the run store's validated reader, into tables."""
    path = Path(path)
    run_dirs = sorted(p for p in path.iterdir() if (p / "config.yaml").is_file())
    if not run_dirs:
        raise BenchError(f"{path} holds no run folders (results/<grid>/<run id>/config.yaml); nothing to report")
    kept, configs, statuses, objs, owners, damaged = [], [], [], [], [], {}
    protocols: dict[str, dict] = {}
    for run_dir in run_dirs:
        run = RunDir(path.parent, path.name, run_dir.name)
        try:
            config, status, records = run.read_config(), run.status(), run.read_metrics()
        except Damaged as exc:
            damaged[run.id] = str(exc)
            continue
        kept.append(run_dir)
        configs.append(config)
        statuses.append(status)
        got = _with_protocol_keys(records, protocols)
        objs.extend(got)
        owners.extend([run_dir.name] * len(got))
    if not kept:
        raise BenchError(f"every run folder under {path} is damaged, e.g. {next(iter(damaged.values()))}")
    runs = _runs_table(kept, configs, statuses)
    records = _records_table(objs, owners, runs["run_id"])
    records, table = _key_columns(records)
    grid_file = path / "grid.yaml"
    by_id = {config_id(c): {k: v for k, v in c.items() if k not in NOT_CONFIG} for c in configs}
    return GridData(path.name, path, runs, records, table, protocols, _varying(configs), by_id,
                    grid_file.read_text(encoding="utf-8", errors="replace") if grid_file.is_file() else "",
                    damaged)


KIND_ORDER = {"final": 0, "best": 1, "curve": 2}  # the final checkpoint leads (docs/protocols.md §0.3)
# Used only where a record does not say which way is better.
HIGHER_IS_BETTER = {"modes_covered": True, "hq_fraction": True, "precision": True, "recall": True,
                    "f_score": True, "density": True, "coverage": True, "accuracy": True,
                    "fd": False, "fid": False, "kid": False, "kl_modes": False, "jsd_modes": False,
                    "msssim_gap": False, "ndb_over_k": False, "ndb_jsd": False}


def _key_columns(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Number every (name, label, kind, protocol) of the evaluation records; training records get -1."""
    keys = ["name", "label", "kind", "protocol"]
    is_eval = records["kind"] != "train"
    ev = records.loc[is_eval, keys + ["higher_is_better"]]
    table = ev.groupby(keys, sort=False, dropna=False)["higher_is_better"].first().reset_index()
    table["higher_is_better"] = [h if h is not None and h == h else HIGHER_IS_BETTER.get(n)
                                 for n, h in zip(table["name"], table["higher_is_better"])]
    table["rank"] = table["kind"].map(KIND_ORDER).fillna(len(KIND_ORDER))
    table = table.sort_values(["rank", "name", "label", "protocol"], kind="stable").reset_index(drop=True)
    table["column"] = np.arange(len(table))
    code = ev[keys].merge(table[keys + ["column"]], on=keys, how="left")["column"].to_numpy()
    column = np.full(len(records), -1, dtype=np.int64)
    column[is_eval.to_numpy()] = code
    records["column"] = column
    return records, table.drop(columns="rank")


CACHE_VERSION = "4"  # bump when the tables built here, or the reader's verdicts, change
_FRAMES = ("runs", "records", "columns")
_RUN_FILES = ("config.yaml", "status.json", "metrics.jsonl")  # what load_grid reads of each run folder


def signature(path: Path) -> str:
    """SHA-256 over the content of every file load_grid reads (and their names): equal means the
    tables would be equal. Size and modification time would miss a file edited in place to the same
    size with its old time put back; hashing the bytes costs a fraction of parsing them."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    for entry in sorted(os.scandir(path), key=lambda d: d.name):
        names = _RUN_FILES if entry.is_dir() else ((None,) if entry.name == "grid.yaml" else ())
        for name in names:
            try:
                with open(os.path.join(entry.path, name) if name else entry.path, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            h.update(f"{entry.name}/{name}:{digest};".encode())
    return h.hexdigest()


def load_grid_cached(path: Path, cache_dir: Path | None) -> tuple[GridData, str]:
    """load_grid, reusing the tables cached in `cache_dir` when no run file changed since.

    Parsing a thousand metrics.jsonl files is most of a report's time. The cache holds data only,
    never code: the tables as Parquet, the rest as JSON, and a manifest with the run files'
    signature and the SHA-256 of each cached file, checked before anything is read back, so a
    torn or edited cache is rebuilt rather than trusted. Returns the data and the signature."""
    sig = signature(Path(path))
    if cache_dir is not None:
        cached = _read_cache(Path(cache_dir), sig)
        if cached is not None:
            cached.path = Path(path)
            return cached, sig
    data = load_grid(path)
    if cache_dir is not None:
        _write_cache(Path(cache_dir), sig, data)
    return data, sig


def _write_cache(folder: Path, sig: str, data: GridData) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    try:
        for name in _FRAMES:
            target = folder / f"{name}.parquet"
            save_atomic(target, lambda tmp, f=getattr(data, name): f.to_parquet(tmp, index=False))
            digests[target.name] = _sha256(target)
    except (ValueError, TypeError, ImportError, OSError) as exc:  # e.g. a column mixing text and numbers
        print(f"report cache not written ({type(exc).__name__}); the next report reads the runs again",
              file=sys.stderr)
        return
    rest = {"name": data.name, "protocols": data.protocols, "varying": data.varying, "configs": data.configs,
            "grid_text": data.grid_text, "damaged": data.damaged}
    write_atomic(folder / "rest.json", json.dumps(rest, default=str))
    digests["rest.json"] = _sha256(folder / "rest.json")
    write_atomic(folder / "manifest.json", json.dumps({"version": CACHE_VERSION, "signature": sig, "sha256": digests}))


def _read_cache(folder: Path, sig: str) -> GridData | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("version") != CACHE_VERSION or manifest.get("signature") != sig:
            return None
        digests = manifest["sha256"]
        if any(_sha256(folder / name) != digests.get(name) for name in (*(f"{n}.parquet" for n in _FRAMES), "rest.json")):
            return None
        frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in _FRAMES}
        rest = json.loads((folder / "rest.json").read_text(encoding="utf-8"))
        return GridData(rest["name"], folder, frames["runs"], frames["records"], frames["columns"], rest["protocols"],
                        rest["varying"], rest["configs"], rest["grid_text"], rest["damaged"])
    except Exception:  # noqa: BLE001 - any unreadable cache is just rebuilt from the run folders
        return None


def _sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _with_protocol_keys(objs: list[dict], protocols: dict[str, dict]) -> list[dict]:
    """One run's records with each protocol replaced by its key (the same protocol, the same key)."""
    last: dict[Any, tuple[dict, str]] = {}  # a column's previous protocol in this run, usually equal
    for o in objs:
        proto = o.get("protocol")
        if not isinstance(proto, dict):
            o["protocol"] = ""
            continue
        slot = (o.get("name"), o.get("label"), o.get("kind"))
        seen = last.get(slot)
        if seen is not None and seen[0] == proto:  # dict equality: cheap, and exact, so nothing merges
            o["protocol"] = seen[1]
        else:
            key = _protocol_key(proto, protocols)
            last[slot] = (proto, key)
            o["protocol"] = key
    return objs


def _protocol_key(proto: dict, protocols: dict[str, dict]) -> str:
    """Canonical JSON of the protocol minus the fields that name the run (seed, step)."""
    kept = {k: v for k, v in proto.items() if k not in RUN_FIELDS}
    key = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    protocols.setdefault(key, kept)
    return key


_RECORD_KEYS = ["step", "name", "value", "kind", "label", "protocol", "std", "std_kind", "higher_is_better"]


def _records_table(objs: list[dict], owners: list[str], run_ids: pd.Series) -> pd.DataFrame:
    """Dicts to columns in one pandas call; values may be null (NaN) or the strings 'inf' / '-inf'."""
    df = pd.DataFrame.from_records(objs, columns=_RECORD_KEYS) if objs else pd.DataFrame(columns=_RECORD_KEYS)
    df.insert(0, "run_id", pd.Categorical(owners, categories=run_ids))
    df = df[df["name"].notna() & df["step"].notna()]
    for col in ("value", "std"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["step"] = df["step"].astype(np.int64)
    for col in ("name", "kind", "label", "protocol"):
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    df["higher_is_better"] = df["higher_is_better"].astype(object).where(df["higher_is_better"].notna(), None)
    return df.reset_index(drop=True)


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _varying(configs: list[dict]) -> list[str]:
    """Config keys (seed and NOT_HASHED aside) with more than one value among the runs that have them."""
    seen: dict[str, set] = {}
    for cfg in configs:
        for k, v in cfg.items():
            if k not in NOT_CONFIG:
                seen.setdefault(k, set()).add(_canon(v))
    order = list(dict.fromkeys(k for cfg in configs for k in cfg))
    return [k for k in order if len(seen.get(k, ())) > 1]


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else _canon(value)


def _runs_table(run_dirs: list[Path], configs: list[dict], statuses: list[dict]) -> pd.DataFrame:
    varying = _varying(configs)
    rows = []
    for run_dir, cfg, st in zip(run_dirs, configs, statuses):
        label = ", ".join(f"{k}={_short(cfg[k])}" for k in varying if k in cfg) or "all runs"
        row = {"run_id": run_dir.name, "path": str(run_dir), "state": str(st.get("state", "queued")),
               "reason": str(st.get("reason", "") or ""), "status_step": st.get("step"),
               "threads": st.get("threads"),  # validated by RunDir.status
               "harness": st.get("harness"),  # the code it trained with (bench/version.py)
               "seed": cfg.get("seed"), "config_id": config_id(cfg), "config": label}
        row.update({f"seconds.{p}": float(v) for p, v in (st.get("seconds") or {}).items()})
        row.update({f"cfg.{k}": _plain(v) for k, v in cfg.items()})
        rows.append(row)
    runs = pd.DataFrame(rows)
    runs["finished"] = runs["state"].isin(FINISHED)
    return runs


def _short(value: Any) -> str:
    return value if isinstance(value, str) else _canon(value)


def tidy(data: GridData) -> pd.DataFrame:
    """The one long table every other output derives from: record, protocol fields and full config."""
    rec = data.records
    cfg_cols = ["run_id", "config_id", "config", "seed", "state"] + [c for c in data.runs.columns if c.startswith("cfg.")]
    out = rec.merge(data.runs[cfg_cols], on="run_id", how="left", sort=False)
    if data.protocols:
        fields = sorted({k for p in data.protocols.values() for k in p})
        proto = pd.DataFrame([{**{f"protocol.{k}": _plain(p.get(k)) for k in fields}, "protocol": key}
                              for key, p in data.protocols.items()])
        out = out.merge(proto, on="protocol", how="left", sort=False)
    return out.drop(columns=["protocol"])


def sample_files(run_path: str | Path) -> list[Path]:
    """The PNGs a run wrote under samples/, step grids first in step order, then any other figure."""
    folder = Path(run_path) / "samples"
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.png"))
    return [f for f in files if f.name.startswith("step-")] + [f for f in files if not f.name.startswith("step-")]
