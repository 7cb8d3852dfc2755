"""A user as a whole: whether one exists, and removing everything that belongs to one.

Every table that holds a user's rows has a `user_id` column (the `config` table keys its
rows by `scope`, which is the user id); rows without one (messages, the full-text index)
go with their parents through foreign keys and triggers. The list of tables is read from
the schema, so a table a later migration adds is covered without a change here.
"""

from __future__ import annotations

from persona_mcp.store.api import Connection

# Deleted first: their foreign-key cascades take most of the rest along, in order.
_FIRST = ("personas",)


def user_tables(conn: Connection) -> list[str]:
    """The tables with a `user_id` column, in the order they are cleared."""
    if conn.dialect == "postgresql":
        with_user = [
            r[0]
            for r in conn.execute(
                """SELECT table_name FROM information_schema.columns
                   WHERE table_schema = current_schema() AND column_name = 'user_id'
                   ORDER BY table_name"""
            )
        ]
    else:
        names = [
            r[0]
            for r in conn.execute(
                """SELECT name FROM sqlite_master WHERE type = 'table'
                   AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%_fts%' ORDER BY name"""
            )
        ]
        with_user = [
            name
            for name in names
            if any(col[1] == "user_id" for col in conn.execute(f"PRAGMA table_info('{name}')"))
        ]
    return [*(t for t in _FIRST if t in with_user), *(t for t in with_user if t not in _FIRST)]


def exists(conn: Connection, user_id: str) -> bool:
    """Whether the server holds anything of this user (seeded, personas, or a token)."""
    return any(
        conn.execute(f"SELECT 1 FROM {table} WHERE user_id = ? LIMIT 1", (user_id,)).fetchone()
        for table in ("user_state", "personas", "tokens")
    )


def delete(conn: Connection, user_id: str) -> dict[str, int]:
    """Remove every row of a user (tokens included); returns rows removed per table."""
    # Rows of one user reference each other (an archived memory its prune run): checking
    # foreign keys at commit, when all of them are gone, lets the order not matter.
    conn.execute("PRAGMA defer_foreign_keys = ON")
    tables = user_tables(conn)
    removed: dict[str, int] = {}
    for table in tables:  # counted first: the cascades of the first deletes hide the rest
        count = conn.execute(f"SELECT count(*) FROM {table} WHERE user_id = ?", (user_id,))
        if n := int(count.fetchone()[0]):
            removed[table] = n
    for table in tables:
        conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
    config = conn.execute("DELETE FROM config WHERE scope = ?", (user_id,)).rowcount
    if config:
        removed["config"] = config
    return removed
