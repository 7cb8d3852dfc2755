"""The figures `/metrics` reads from the database."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Figures:
    memories: int
    users: int
    job_runs: dict[tuple[str, str], int]


def figures(conn: sqlite3.Connection) -> Figures:
    runs: dict[tuple[str, str], int] = {}
    for trigger, count in conn.execute("SELECT trigger, count(*) FROM decay_runs GROUP BY 1"):
        runs[("decay", trigger)] = int(count)
    for trigger, count in conn.execute("SELECT trigger, count(*) FROM prune_runs GROUP BY 1"):
        runs[("prune", trigger)] = int(count)
    return Figures(
        memories=int(conn.execute("SELECT count(*) FROM memories").fetchone()[0]),
        users=int(conn.execute("SELECT count(*) FROM user_state").fetchone()[0]),
        job_runs=runs,
    )
