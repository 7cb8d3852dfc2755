"""Visual context rows: one per (user, persona), replaced by each update."""

from __future__ import annotations

import json
from dataclasses import dataclass

from persona_mcp.store.api import Connection


@dataclass(frozen=True)
class VisualRow:
    user_id: str
    persona_id: str
    description: str
    tags: list[str]
    updated_at: float
    expires_at: float | None
    memory_id: str | None


def put(conn: Connection, row: VisualRow) -> None:
    conn.execute(
        """INSERT INTO visual_context (user_id, persona_id, description, tags, updated_at,
               expires_at, memory_id) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (user_id, persona_id) DO UPDATE SET description = excluded.description,
               tags = excluded.tags, updated_at = excluded.updated_at,
               expires_at = excluded.expires_at, memory_id = excluded.memory_id""",
        (row.user_id, row.persona_id, row.description, json.dumps(row.tags, ensure_ascii=False),
         row.updated_at, row.expires_at, row.memory_id),
    )  # fmt: skip


def get(conn: Connection, user_id: str, persona_id: str) -> VisualRow | None:
    r = conn.execute(
        "SELECT * FROM visual_context WHERE user_id = ? AND persona_id = ?", (user_id, persona_id)
    ).fetchone()
    if r is None:
        return None
    return VisualRow(
        r["user_id"], r["persona_id"], r["description"], json.loads(r["tags"]), r["updated_at"],
        r["expires_at"], r["memory_id"],
    )  # fmt: skip
