"""Background jobs once per interval across instances on PostgreSQL: the SQL.

A job's run happens inside one transaction that holds `pg_try_advisory_xact_lock` of the
job's key, so two instances never run it at once, and reads the shared `job_runs` record
to see whether another instance ran it within this interval already; the run is recorded
in the same transaction, so it counts only if the instance lived to commit it (one
killed mid-run leaves the interval to the next instance's timer).

On SQLite one process holds the database (see `lock`), so a job always runs there and
nothing is recorded: no table is needed.
"""

from __future__ import annotations

import zlib
from typing import Any

KEEP_RUNS = 1000  # rows kept per job, newest first; older ones are trimmed as runs land
_NAMESPACE = 0x5E50  # the high half of every job's advisory lock key ("persona-mcp")


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for a job name (crc32 beside a namespace)."""
    return (_NAMESPACE << 32) | zlib.crc32(name.encode())


async def try_lock(conn: Any, name: str) -> bool:
    """Take the job's transaction-scoped advisory lock, if no one holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (lock_key(name),))
    row = await cur.fetchone()
    return bool(row[0])


async def last_run(conn: Any, name: str) -> float | None:
    cur = await conn.execute("SELECT max(ran_at) FROM job_runs WHERE name = %s", (name,))
    row = await cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


async def record(conn: Any, name: str, ran_at: float, instance: str, seconds: float) -> None:
    await conn.execute(
        "INSERT INTO job_runs (name, ran_at, instance, seconds) VALUES (%s, %s, %s, %s)",
        (name, ran_at, instance, seconds),
    )
    await conn.execute(
        """DELETE FROM job_runs WHERE name = %s AND ran_at < (
               SELECT ran_at FROM job_runs WHERE name = %s
               ORDER BY ran_at DESC OFFSET %s LIMIT 1)""",
        (name, name, KEEP_RUNS),
    )


async def runs(conn: Any, name: str) -> list[tuple[float, str]]:
    """Every recorded run of a job, oldest first: (ran_at, instance)."""
    cur = await conn.execute(
        "SELECT ran_at, instance FROM job_runs WHERE name = %s ORDER BY ran_at", (name,)
    )
    return [(float(r[0]), str(r[1])) for r in await cur.fetchall()]
