"""The figures `/metrics` reads from the database."""

from __future__ import annotations

from dataclasses import dataclass

from persona_mcp.store.api import Connection


@dataclass(frozen=True)
class Figures:
    memories: int
    users: int
    job_runs: dict[tuple[str, str], int]


def figures(conn: Connection) -> Figures:
    runs: dict[tuple[str, str], int] = {}
    for trigger, count in conn.execute("SELECT trigger, count(*) FROM decay_runs GROUP BY 1"):
        runs[("decay", trigger)] = int(count)
    for trigger, count in conn.execute("SELECT trigger, count(*) FROM prune_runs GROUP BY 1"):
        runs[("prune", trigger)] = int(count)
    return Figures(
        memories=int(conn.execute("SELECT count(*) FROM memory_scores").fetchone()[0]),
        users=int(conn.execute("SELECT count(*) FROM user_state").fetchone()[0]),
        job_runs=runs,
    )


def database_bytes(conn: Connection) -> int:
    """The size of the database on the server (PostgreSQL)."""
    return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
