"""PostgreSQL access that never runs on the event loop (the backend DATABASE_URL selects).

The same unit-of-work contract as SQLite's `store.db.Database`:

- `await write(fn)`: `fn(conn)` runs on this instance's one writer thread, in one
  transaction that commits before the caller resumes, or rolls back on any error. Its
  first statement takes a transaction-scoped advisory lock (`WRITE_LOCK`), so write
  transactions are serialized across every instance over the database, as SQLite's
  BEGIN IMMEDIATE serializes them across connections: what `fn` reads (a count checked
  against a cap, the next sequence number) stays true until it commits, under READ
  COMMITTED, with no serialization failures to retry. Writes scale like SQLite's (one
  at a time); reads scale with the pool.
- `await read(fn)`: `fn(conn)` runs on a reader thread with a pooled connection, in one
  REPEATABLE READ, READ ONLY transaction (one snapshot for its duration).

Integrity violations surface as `store.api.Conflict`; a server that cannot be reached,
a connection lost, disk full or a read-only server as `StorageUnavailable` (the next
call reconnects). Statements are written in SQLite's dialect and translated by
`dialect.translate`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from persona_mcp.errors import StorageUnavailable
from persona_mcp.store.api import Conflict, Connection, Cursor, Dialect
from persona_mcp.store.postgres import adapt
from persona_mcp.store.postgres.dialect import translate
from persona_mcp.store.postgres.migrations import apply_migrations

T = TypeVar("T")
log = logging.getLogger(__name__)

WRITE_LOCK = 0x70657273_6D637031  # pg_advisory_xact_lock key of write transactions
CONNECT_TIMEOUT = 10.0


class PgConnection:
    """A psycopg connection seen through `store.api.Connection`: SQLite-dialect
    statements, translated (cached), with results in binary format."""

    dialect: Dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Any = None, /) -> Cursor:
        statement = translate(sql)
        cursor = self.raw.cursor()
        cursor.execute(statement.sql, statement.args(parameters), binary=True)
        return _Cursor(cursor)

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        statement = translate(sql)
        cursor = self.raw.cursor()
        rows = [statement.args(p) for p in parameters]
        if rows:
            cursor.executemany(statement.sql, rows)
        return _Cursor(cursor)


class _Cursor:
    """psycopg's cursor as sqlite3's behaves: fetching from a statement without
    results gives nothing rather than an error."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def fetchmany(self, size: int = 1, /) -> list[Any]:
        return self._cursor.fetchmany(size) if self._cursor.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        if self._cursor.description is None:
            return iter(())
        return iter(self._cursor)


def storage_fault(exc: BaseException) -> StorageUnavailable | None:
    """The StorageUnavailable that a psycopg error stands for, if it is one."""
    if isinstance(exc, pg_errors.DiskFull):
        return StorageUnavailable("storage unavailable: disk full")
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return StorageUnavailable("storage unavailable: the database is read-only")
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return StorageUnavailable("storage unavailable: permission denied")
    if isinstance(exc, PoolTimeout):
        return StorageUnavailable("storage unavailable: the database server is unreachable")
    if isinstance(exc, psycopg.OperationalError):
        return StorageUnavailable("storage unavailable: the database server is unreachable")
    return None


def _translated(exc: BaseException) -> BaseException:
    if isinstance(exc, psycopg.IntegrityError):
        return Conflict("the write conflicts with what is stored")
    return storage_fault(exc) or exc


class PgDatabase:
    """The PostgreSQL backend of `store.api.Database`."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, readers: int = 4) -> None:
        self.url = url
        self._readers = readers
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._writer: psycopg.Connection[Any] | None = None
        self._vector_oid: int | None = None
        self._lock = threading.Lock()

    # -- connections ----------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=int(CONNECT_TIMEOUT),
            row_factory=adapt.row_factory,
            cursor_factory=psycopg.RawCursor,
        )
        adapt.configure(conn, self._vector_oid)
        return conn

    def _configure_reader(self, conn: psycopg.Connection[Any]) -> None:
        conn.row_factory = adapt.row_factory
        adapt.configure(conn, self._vector_oid)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True

    def _migrate(self) -> None:
        with psycopg.connect(
            self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)
        ) as conn:
            applied = apply_migrations(conn)
            if applied:
                log.info("postgresql migrations applied: %s", ", ".join(applied))
            info = psycopg.types.TypeInfo.fetch(conn, "vector")
            self._vector_oid = info.oid if info is not None else None

    async def open(self) -> None:
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="pg-writer")
        self._reader_pool = ThreadPoolExecutor(self._readers, thread_name_prefix="pg-reader")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer_pool, self._migrate)
            self._writer = await loop.run_in_executor(self._writer_pool, self._connect)
            self._pool = ConnectionPool(
                self.url,
                min_size=1,
                max_size=self._readers,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": int(CONNECT_TIMEOUT),
                    "cursor_factory": psycopg.RawCursor,
                },
                configure=self._configure_reader,
                timeout=CONNECT_TIMEOUT,
                open=False,
                name="persona-mcp-readers",
            )
            await loop.run_in_executor(
                self._reader_pool,
                lambda: self._pool.open(wait=True, timeout=CONNECT_TIMEOUT),  # type: ignore[union-attr]
            )
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            await self.close()
            raise (storage_fault(exc) or exc) from exc

    async def close(self) -> None:
        for pool in (self._writer_pool, self._reader_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writer_pool = self._reader_pool = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- units of work --------------------------------------------------------------

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one transaction on the writer thread, under the write lock."""
        assert self._writer_pool is not None, "database is not open"
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, self._tx, fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` on a reader connection (one snapshot for its duration)."""
        assert self._reader_pool is not None, "database is not open"
        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, self._read, fn)

    def _tx(self, fn: Callable[[Connection], T]) -> T:
        try:
            if self._writer is None or self._writer.broken or self._writer.closed:
                if self._writer is not None:
                    self._writer.close()
                self._writer = None
                self._writer = self._connect()
            conn = self._writer
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock($1)", (WRITE_LOCK,))
                return fn(PgConnection(conn))
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise _translated(exc) from exc

    def _read(self, fn: Callable[[Connection], T]) -> T:
        assert self._pool is not None, "database is not open"
        try:
            with self._pool.connection() as conn, conn.transaction():
                return fn(PgConnection(conn))
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise _translated(exc) from exc


def check_storage(url: str) -> None:
    """Check that the server answers and the schema migrates (before a server starts)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)) as conn:
            apply_migrations(conn)
    except psycopg.Error as exc:
        fault = storage_fault(exc) or StorageUnavailable(f"storage unavailable: {exc}")
        raise fault from exc
