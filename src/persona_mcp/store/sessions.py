"""Session rows: one per connection, with its active persona. Plain functions over a
connection."""

from __future__ import annotations

from persona_mcp.store.api import Connection


def insert(
    conn: Connection,
    session_id: str,
    user_id: str,
    transport: str,
    active_persona_id: str | None,
    now: float,
) -> None:
    conn.execute(
        """INSERT INTO sessions (id, user_id, transport, active_persona_id, created_at,
               last_active_at) VALUES (?, ?, ?, ?, ?, ?)""",
        (session_id, user_id, transport, active_persona_id, now, now),
    )


def close(conn: Connection, session_id: str, now: float) -> None:
    conn.execute(
        "UPDATE sessions SET closed_at = ?, last_active_at = ? WHERE id = ?",
        (now, now, session_id),
    )


def touch(conn: Connection, session_id: str, now: float) -> None:
    conn.execute(
        "UPDATE sessions SET last_active_at = ? WHERE id = ? AND closed_at IS NULL",
        (now, session_id),
    )


def set_active(conn: Connection, session_id: str, persona_id: str) -> None:
    conn.execute("UPDATE sessions SET active_persona_id = ? WHERE id = ?", (persona_id, session_id))


def close_idle(conn: Connection, cutoff: float, now: float) -> int:
    """Close the open sessions last active before `cutoff`; returns how many."""
    cur = conn.execute(
        "UPDATE sessions SET closed_at = ? WHERE closed_at IS NULL AND last_active_at < ?",
        (now, cutoff),
    )
    return cur.rowcount
