"""Copying a whole store to another backend (`persona-mcp migrate-store`): the SQL.

The tables are `portable.SECTIONS` (every user's data, in dependency order) and the
server's own tables that move with it (`SERVER_TABLES`); what `portable.EXCLUDED` leaves
out otherwise (sessions, the migrations record, the full-text index) stays behind, the
target building its own. Rows keep every stored column, surrogate keys included, so
nothing that refers to them changes; generated columns (PostgreSQL's tsvector) and
hidden ones are left for the target to compute. Embeddings are bytes on both sides
(the PostgreSQL connection turns them into pgvector values and back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from persona_mcp.store.api import Connection
from persona_mcp.store.portable import SECTIONS

# Tables of the server, not of a user, that a moved server keeps: its tokens (hashes
# only) and its facts.
SERVER_TABLES: tuple[tuple[str, str], ...] = (("tokens", "created_at, id"), ("meta", "key"))


def tables() -> list[tuple[str, str]]:
    """(table, ORDER BY) of everything copied, parents before children."""
    return [(s.table, s.order) for s in SECTIONS] + list(SERVER_TABLES)


def columns(conn: Connection, table: str) -> list[str]:
    """The columns a row of `table` is written with: stored, not generated or hidden."""
    if conn.dialect == "sqlite":
        rows = conn.execute(f"PRAGMA table_xinfo({table})").fetchall()
        return [r["name"] for r in rows if r["hidden"] == 0]
    rows = conn.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = ?
             AND is_generated = 'NEVER' AND coalesce(identity_generation, '') <> 'ALWAYS'
           ORDER BY ordinal_position""",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def count(conn: Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def batch(
    conn: Connection, table: str, names: Sequence[str], order: str, offset: int, limit: int
) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        f"SELECT {', '.join(names)} FROM {table} ORDER BY {order} LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    return [tuple(r) for r in rows]


def insert(
    conn: Connection, table: str, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if rows:
        marks = ", ".join("?" * len(names))
        conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows)


def clear(conn: Connection) -> None:
    """Remove every copied row (children first), for a forced copy into a used store."""
    conn.execute("DELETE FROM sessions")
    for table, _ in reversed(tables()):
        conn.execute(f"DELETE FROM {table}")


def finish(conn: Connection, table: str) -> None:
    """After explicit ids were written: PostgreSQL's identity columns go on from the
    largest (SQLite's rowids do so by themselves)."""
    if conn.dialect == "sqlite":
        return
    for (column,) in conn.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = ?
             AND identity_generation = 'BY DEFAULT'""",
        (table,),
    ).fetchall():
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?), "
            f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)",
            (table, column),
        )
