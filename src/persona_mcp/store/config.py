"""Persisted runtime configuration: JSON values by (scope, key)."""

from __future__ import annotations

import json
from typing import Any

from persona_mcp.store.api import Connection

SERVER = "server"  # scope of server-wide policies (decay); other scopes are user ids


def get(conn: Connection, scope: str, key: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT value FROM config WHERE scope = ? AND key = ?", (scope, key)
    ).fetchone()
    return json.loads(row[0]) if row else None


def put(conn: Connection, scope: str, key: str, value: dict[str, Any], now: float) -> None:
    conn.execute(
        """INSERT INTO config (scope, key, value, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value,
               updated_at = excluded.updated_at""",
        (scope, key, json.dumps(value), now),
    )
