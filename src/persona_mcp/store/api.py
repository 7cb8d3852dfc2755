"""What the services see of the store: a connection, a database, the store's own errors.

Two backends implement these: SQLite (`store.db`, the default: one file in the data
directory) and PostgreSQL (`store.postgres`, chosen by DATABASE_URL). The repositories
(the other modules of `store/`) are plain functions over a `Connection`; they write the
SQLite dialect, which the PostgreSQL connection translates statement by statement, and
branch on `conn.dialect` only where a statement cannot be translated (full-text search,
vector search, schema introspection). No SQL and no branch on the dialect lives outside
`store/`.

A unit of work is a function of a connection: `await db.write(fn)` runs `fn(conn)` in
one transaction that commits before the caller resumes (nothing is acknowledged before
it is committed) or rolls back on any error; `await db.read(fn)` runs it on a reader
that sees one consistent snapshot. Writes are serialized as on SQLite: on PostgreSQL
every write transaction first takes one advisory lock (`store.postgres.db`), so what a
write function reads stays true until it commits, across every instance over the same
database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol, TypeVar

from persona_mcp import errors

Dialect = Literal["sqlite", "postgresql"]
T = TypeVar("T")


class Row(Protocol):
    """A result row: by position (`row[0]`) and by column name (`row["id"]`); iterates
    its values; `keys()` are the column names (both sqlite3.Row and the PostgreSQL row)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int = ..., /) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the repositories use of a connection. Statements are written in SQLite's
    dialect with `?` or `:name` parameters."""

    dialect: Dialect

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...


class Database(Protocol):
    dialect: Dialect

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def write(self, fn: Callable[[Connection], T]) -> T: ...
    async def read(self, fn: Callable[[Connection], T]) -> T: ...


class Conflict(errors.Conflict):
    """A write broke a rule of the schema (a unique key, a reference, a check). Services
    catch it where it means something ("a persona of that name exists"); anywhere else
    it reaches the caller as a conflict, never as an internal error."""


class SQLiteConnection(sqlite3.Connection):
    """sqlite3's own connection, marked with its dialect: execute() stays C code."""

    dialect: Dialect = "sqlite"
