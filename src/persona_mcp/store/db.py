"""SQLite access that never runs on the event loop.

One writer connection lives on one dedicated thread, so writes are serialized and each
`write()` is one `BEGIN IMMEDIATE` transaction: it commits before the awaiting caller
resumes (nothing is acknowledged before it is committed) or rolls back on any error.
Readers use a small pool of threads, each with its own connection; in WAL mode they
read committed data concurrently with the writer.

The database is locked to this process while open (see `lock`). Failures of the storage
itself (disk full, read-only file, I/O error) surface as `StorageUnavailable` with a
message saying which, never as an internal error; SQLite has rolled the transaction back,
so nothing half-written stays and the next write succeeds once the cause is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from persona_mcp.errors import StorageUnavailable
from persona_mcp.store import lock
from persona_mcp.store.api import Conflict, Connection, Dialect, SQLiteConnection
from persona_mcp.store.migrations import apply_migrations

T = TypeVar("T")
log = logging.getLogger(__name__)

# The write-ahead log is copied back into the database file (a checkpoint) by a thread and
# connection of its own once writes have paused this long, rather than by whichever
# commit fills it: a commit then writes only its own pages, and neither a big one (a
# prune, a batch) nor the next waits for the copy (a passive checkpoint runs alongside
# the writer and the readers). Under writes that never pause, one starts this many
# seconds after the first commit it has not copied, which bounds the log.
CHECKPOINT_IDLE = 0.25
CHECKPOINT_EVERY = 5.0

# Primary SQLite result codes that mean "the storage cannot serve", and what to say.
_STORAGE_FAULTS = {
    sqlite3.SQLITE_FULL: "disk full",
    sqlite3.SQLITE_IOERR: "disk I/O error",
    sqlite3.SQLITE_READONLY: "the database is read-only",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
    sqlite3.SQLITE_CORRUPT: "the database file is damaged",
    sqlite3.SQLITE_NOTADB: "the file is not a database",
    sqlite3.SQLITE_BUSY: "the database is busy",
    sqlite3.SQLITE_PERM: "permission denied",
}


def storage_fault(exc: BaseException) -> StorageUnavailable | None:
    """The StorageUnavailable that a SQLite or OS error stands for, if it is one."""
    if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
        code = getattr(exc, "sqlite_errorcode", None)
        reason = _STORAGE_FAULTS.get(code & 0xFF) if isinstance(code, int) else None
        if reason is None and "disk is full" in str(exc):
            reason = "disk full"
        if reason is not None:
            return StorageUnavailable(f"storage unavailable: {reason}")
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return StorageUnavailable("storage unavailable: disk full")
        reason = (exc.strerror or str(exc)).lower()
        return StorageUnavailable(f"storage unavailable: {reason}")
    return None


def connect(path: Path) -> SQLiteConnection:
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=30.0,
        factory=SQLiteConnection,
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-32000")
    return conn


class Database:
    """The SQLite backend of `store.api.Database`."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, readers: int = 2) -> None:
        self.path = path
        self._readers = readers
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._checkpoint_pool: ThreadPoolExecutor | None = None
        self._checkpointer: SQLiteConnection | None = None
        self._writer: SQLiteConnection | None = None
        self._local = threading.local()
        self._reader_conns: list[SQLiteConnection] = []
        self._lock = threading.Lock()
        self._file_lock: Path | None = None
        self._unchecked: float | None = None  # when the first commit since a checkpoint was
        self._last_write = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        try:
            self._file_lock = lock.acquire(self.path)
        except OSError as exc:
            raise storage_fault(exc) or exc from exc
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._checkpoint_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._reader_pool = ThreadPoolExecutor(self._readers, thread_name_prefix="sqlite-reader")
        loop = asyncio.get_running_loop()
        try:
            self._writer = await loop.run_in_executor(self._writer_pool, connect, self.path)
            self._writer.execute("PRAGMA wal_autocheckpoint=0")  # see CHECKPOINT_IDLE
            await loop.run_in_executor(self._writer_pool, apply_migrations, self._writer)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise storage_fault(exc) or exc from exc

    async def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        for pool in (self._writer_pool, self._reader_pool, self._checkpoint_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file_lock is not None:
            lock.release(self._file_lock)
            self._file_lock = None

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one BEGIN IMMEDIATE transaction on the writer thread."""
        assert self._writer_pool is not None, "database is not open"
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer_pool, self._tx, fn)
        finally:
            self._last_write = time.monotonic()
            if self._idle_timer is None:
                self._idle_timer = loop.call_later(CHECKPOINT_IDLE, self._when_idle)

    def _when_idle(self) -> None:
        """Checkpoint once no write came for CHECKPOINT_IDLE."""
        self._idle_timer = None
        quiet = time.monotonic() - self._last_write
        if quiet < CHECKPOINT_IDLE:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(CHECKPOINT_IDLE - quiet, self._when_idle)
        else:
            self._start_checkpoint()

    def _start_checkpoint(self) -> None:
        if self._unchecked is not None and self._checkpoint_pool is not None:
            self._unchecked = None  # commits from now on are the next one's
            with contextlib.suppress(RuntimeError):  # closing
                self._checkpoint_pool.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._checkpointer is None:
                self._checkpointer = connect(self.path)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one tries again; the log stays valid
            log.warning("checkpoint failed: %s", exc)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` on a reader connection (a consistent snapshot for its duration)."""
        assert self._reader_pool is not None, "database is not open"
        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, self._read, fn)

    def _tx(self, fn: Callable[[Connection], T]) -> T:
        conn = self._writer
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                if self._unchecked is None:
                    self._unchecked = time.monotonic()
            except BaseException:
                if conn.in_transaction:  # SQLite may already have rolled back (disk full)
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError as exc:
            raise Conflict("the write conflicts with what is stored") from exc
        except (sqlite3.Error, OSError) as exc:
            fault = storage_fault(exc)
            if fault is None:
                raise
            raise fault from exc
        if self._unchecked is not None and time.monotonic() - self._unchecked > CHECKPOINT_EVERY:
            self._start_checkpoint()
        return result

    def _read(self, fn: Callable[[Connection], T]) -> T:
        try:
            conn: SQLiteConnection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = connect(self.path)
                self._local.conn = conn
                with self._lock:
                    self._reader_conns.append(conn)
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            fault = storage_fault(exc)
            if fault is None:
                raise
            raise fault from exc


def check_storage(path: Path) -> None:
    """Take the database's lock for this process and check that it opens and migrates
    (run before the server starts, so a bad data directory is one clear error)."""
    try:
        lock.acquire(path)
        conn = connect(path)
        try:
            apply_migrations(conn)
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        fault = storage_fault(exc)
        if fault is None:
            raise
        raise StorageUnavailable(f"{fault.message} ({path})") from exc
