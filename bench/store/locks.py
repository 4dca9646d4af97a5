"""Run claims that make concurrent `bench run`s safe: an atomic lock file with a heartbeat.

A run is claimed by creating `lock.json` with O_EXCL (atomic on local and NFSv3+ filesystems).
The holder touches it every HEARTBEAT_S; a lock whose holder is a dead process on this host, or
whose heartbeat is older than STALE_S, is taken over. Take-overs hold a guard file (O_EXCL) while
they re-read and delete the stale claim, so a fresh claim is never touched; then creators race with
O_EXCL again and exactly one wins, however many processes reclaim at once.
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
        for _ in range(5):
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
        """Remove the stale claim so that creators race for the run again, one take-over at a time.

        Take-overs are serialised by a guard file made with O_EXCL: only its holder may delete
        lock.json, and only after reading it again and finding the same stale claim. A fresh claim is
        never moved or deleted, so no third process can slip in while one is being put back."""
        guard = self.path.with_name(".lock.takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:  # a guard left by a process killed mid-take-over would block every later one
                if time.time() - guard.stat().st_mtime > STALE_S:
                    guard.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return  # someone else is taking over: the caller tries to create again
        os.close(fd)
        try:
            now = read_lock(self.path)
            if now is not None and now.get("token") == stale.get("token") and is_stale(now):
                self.path.unlink(missing_ok=True)
        finally:
            guard.unlink(missing_ok=True)

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
