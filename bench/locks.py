"""Run claims that make concurrent `bench run`s safe: an atomic lock file with a heartbeat.

A run is claimed by creating `lock.json` with O_EXCL (atomic on local and NFSv3+ filesystems).
The holder touches it every HEARTBEAT_S; a lock whose holder is a dead process on this host, or
whose heartbeat is older than STALE_S, is taken over. Take-over renames the stale file to a unique
name first, so of two processes reclaiming at once exactly one wins; the loser puts back a lock
it did not mean to move.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

HEARTBEAT_S = float(os.environ.get("BENCH_LOCK_HEARTBEAT_S", 10))
STALE_S = float(os.environ.get("BENCH_LOCK_STALE_S", 60))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0 or -1, 0) asks about process groups, not a holder
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(path: Path) -> Optional[dict]:
    """The claim in `path` with its age, None when there is none. A file whose content cannot be
    read (a kill between creating and writing it) is a claim of unknown holder: `unreadable`."""
    try:
        age = time.time() - path.stat().st_mtime
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return {"unreadable": True, "age_s": 0.0}
    try:
        info = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("pid", -1), int) or isinstance(info.get("pid"), bool):
        return {"unreadable": True, "age_s": age}
    return {**info, "age_s": age}


def is_stale(info: dict) -> bool:
    """A holder that is a dead process on this host, or a heartbeat older than STALE_S. An unreadable
    claim has no holder to ask, so only its age counts."""
    if not info.get("unreadable") and info.get("host") == socket.gethostname() and not _pid_alive(info.get("pid", -1)):
        return True
    return info.get("age_s", 0.0) > STALE_S


class RunLock:
    """Context-free claim of one run folder; `acquire()` then `release()`."""

    def __init__(self, run_path: Path):
        self.path = Path(run_path) / "lock.json"
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def acquire(self) -> bool:
        """True if this process now holds the run; False if a live holder has it."""
        for _ in range(3):
            if self._create():
                self._start_heartbeat()
                return True
            info = read_lock(self.path)
            if info is None:
                continue  # released between our attempts: try again
            if not is_stale(info):
                return False
            self._take_over(info)
        return False

    def _create(self) -> bool:
        record = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token, "claimed": time.time()}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        return True

    def _take_over(self, stale: dict) -> None:
        aside = self.path.with_name(f".lock.{self.token}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else moved it first
        moved = read_lock(aside) or {}
        if moved.get("token") != stale.get("token"):
            try:  # we moved a fresh claim made after our read: put it back unless one exists
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        def beat():
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    os.utime(self.path)
                except FileNotFoundError:
                    return

        self._thread = threading.Thread(target=beat, name="bench-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        info = read_lock(self.path)
        if info and info.get("token") == self.token:
            self.path.unlink(missing_ok=True)
