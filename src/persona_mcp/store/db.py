"""SQLite access that never runs on the event loop.

One writer connection lives on one dedicated thread, so writes are serialized and each
`write()` is one `BEGIN IMMEDIATE` transaction: it commits before the awaiting caller
resumes (nothing is acknowledged before it is committed) or rolls back on any error.
Readers use a small pool of threads, each with its own connection; in WAL mode they
read committed data concurrently with the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from persona_mcp.store.migrations import apply_migrations

T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-32000")
    return conn


class Database:
    def __init__(self, path: Path, readers: int = 2) -> None:
        self.path = path
        self._readers = readers
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(self._readers, thread_name_prefix="sqlite-reader")
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._writer_pool, connect, self.path)
        await loop.run_in_executor(self._writer_pool, apply_migrations, self._writer)

    async def close(self) -> None:
        for pool in (self._writer_pool, self._reader_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one BEGIN IMMEDIATE transaction on the writer thread."""
        assert self._writer_pool is not None, "database is not open"
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, self._tx, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on a reader connection (a consistent snapshot for its duration)."""
        assert self._reader_pool is not None, "database is not open"
        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, self._read, fn)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._writer
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")
