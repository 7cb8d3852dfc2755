"""One server per database: an OS file lock beside the SQLite file.

Two processes on one data directory would each keep their own caches (personas, vector
shelves, configs) and silently diverge, so the first process takes an exclusive,
non-blocking `flock` on `<database>.lock` and writes who it is into it; a second process
gets `DatabaseInUse` at once, naming the holder. The OS drops the lock when the holder
exits, even by SIGKILL, so a crash never leaves a stale lock. Within one process the
lock is shared (counted), so the CLI can take it before the app opens the database.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from persona_mcp.errors import StorageUnavailable


class DatabaseInUse(StorageUnavailable):
    """Another process holds the database's lock."""


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[str, _Held] = {}
_guard = threading.Lock()


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return f"pid {info.get('pid', '?')} ({info.get('command', '?')}, started {when})"


def acquire(db_path: Path) -> Path:
    """Take the lock of the database at `db_path` (creating its folder); returns the key
    to `release`. Raises DatabaseInUse when another process holds it."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(db_path)
    key = str(path.resolve())
    with _guard:
        held = _held.get(key)
        if held is not None:
            held.count += 1
            return path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(
                f"the database {db_path} is in use by {_holder(path)}; "
                "one server per data directory (stop it, or use another --data-dir)"
            ) from None
        info = {"pid": os.getpid(), "command": " ".join(sys.argv[:2]), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[key] = _Held(fd, 1)
    return path


def release(path: Path) -> None:
    key = str(path.resolve())
    with _guard:
        held = _held.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count == 0:
            del _held[key]
            os.close(held.fd)  # closing the descriptor drops the flock
