"""SQL for MemoryOS's tiers: pages, segments, knowledge and profiles per (user, persona).

A page with no segment is short-term; a page in a segment is mid-term. Everything of a
persona goes with it (foreign keys cascade), and a segment's pages go with the segment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from persona_mcp.embeddings.base import Vectors
from persona_mcp.store.api import Connection, Row


@dataclass(frozen=True)
class Page:
    id: str
    user_id: str
    persona_id: str
    seq: int
    user_input: str
    agent_response: str
    timestamp: float
    meta_data: dict[str, Any]
    embedding: Vectors | None
    segment_id: str | None


@dataclass(frozen=True)
class Segment:
    id: str
    user_id: str
    persona_id: str
    summary: str
    keywords: list[str]
    embedding: Vectors | None
    visits: int
    pages: int
    analyzed_pages: int
    heat: float
    created_at: float
    last_visit_at: float
    promoted_at: float | None


@dataclass(frozen=True)
class Knowledge:
    id: str
    kind: str
    text: str
    embedding: Vectors | None
    extractor: str
    created_at: float


def _vec(blob: bytes | None) -> Vectors | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f4").astype(np.float32)


def blob(vector: Vectors | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype="<f4").tobytes()


def _page(r: Row) -> Page:
    return Page(
        r["id"], r["user_id"], r["persona_id"], r["seq"], r["user_input"], r["agent_response"],
        r["timestamp"], json.loads(r["meta_data"]), _vec(r["embedding"]), r["segment_id"],
    )  # fmt: skip


def _segment(r: Row) -> Segment:
    return Segment(
        r["id"], r["user_id"], r["persona_id"], r["summary"], json.loads(r["keywords"]),
        _vec(r["embedding"]), r["visits"], r["pages"], r["analyzed_pages"], r["heat"],
        r["created_at"], r["last_visit_at"], r["promoted_at"],
    )  # fmt: skip


# -- pages ---------------------------------------------------------------------------


def insert_page(conn: Connection, page: Page, now: float) -> None:
    conn.execute(
        """INSERT INTO tier_pages (id, user_id, persona_id, seq, user_input, agent_response,
               timestamp, meta_data, embedding, segment_id, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            page.id, page.user_id, page.persona_id, page.seq, page.user_input,
            page.agent_response, page.timestamp, json.dumps(page.meta_data),
            blob(page.embedding), page.segment_id, now,
        ),
    )  # fmt: skip


def next_seq(conn: Connection, user_id: str, persona_id: str) -> int:
    row = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM tier_pages WHERE user_id = ? AND persona_id = ?",
        (user_id, persona_id),
    ).fetchone()
    return int(row[0]) + 1


def short_term(conn: Connection, user_id: str, persona_id: str) -> list[Page]:
    """The short-term pages, oldest first."""
    rows = conn.execute(
        """SELECT * FROM tier_pages WHERE user_id = ? AND persona_id = ? AND segment_id IS NULL
           ORDER BY seq""",
        (user_id, persona_id),
    ).fetchall()
    return [_page(r) for r in rows]


def move_to_segment(conn: Connection, page_id: str, segment_id: str) -> None:
    conn.execute("UPDATE tier_pages SET segment_id = ? WHERE id = ?", (segment_id, page_id))


def set_page_embedding(conn: Connection, page_id: str, vector: Vectors) -> None:
    conn.execute(
        "UPDATE tier_pages SET embedding = ? WHERE id = ? AND embedding IS NULL",
        (blob(vector), page_id),
    )


def segment_pages(conn: Connection, segment_ids: Sequence[str]) -> list[Page]:
    if not segment_ids:
        return []
    marks = ",".join("?" * len(segment_ids))
    rows = conn.execute(
        f"SELECT * FROM tier_pages WHERE segment_id IN ({marks}) ORDER BY seq",
        tuple(segment_ids),
    ).fetchall()
    return [_page(r) for r in rows]


# -- segments --------------------------------------------------------------------------


def segments(conn: Connection, user_id: str, persona_id: str) -> list[Segment]:
    rows = conn.execute(
        "SELECT * FROM tier_segments WHERE user_id = ? AND persona_id = ? ORDER BY created_at",
        (user_id, persona_id),
    ).fetchall()
    return [_segment(r) for r in rows]


def get_segment(conn: Connection, segment_id: str) -> Segment | None:
    row = conn.execute("SELECT * FROM tier_segments WHERE id = ?", (segment_id,)).fetchone()
    return _segment(row) if row else None


def save_segment(conn: Connection, s: Segment) -> None:
    conn.execute(
        """INSERT INTO tier_segments (id, user_id, persona_id, summary, keywords, embedding,
               visits, pages, analyzed_pages, heat, created_at, last_visit_at, promoted_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET summary = excluded.summary,
               keywords = excluded.keywords, embedding = excluded.embedding,
               visits = excluded.visits, pages = excluded.pages,
               analyzed_pages = excluded.analyzed_pages, heat = excluded.heat,
               last_visit_at = excluded.last_visit_at, promoted_at = excluded.promoted_at""",
        (
            s.id, s.user_id, s.persona_id, s.summary, json.dumps(s.keywords), blob(s.embedding),
            s.visits, s.pages, s.analyzed_pages, s.heat, s.created_at, s.last_visit_at,
            s.promoted_at,
        ),
    )  # fmt: skip


def delete_segments(conn: Connection, segment_ids: Sequence[str]) -> None:
    conn.executemany("DELETE FROM tier_segments WHERE id = ?", [(i,) for i in segment_ids])


# -- long-term ---------------------------------------------------------------------------


def knowledge(
    conn: Connection, user_id: str, persona_id: str, kind: str | None = None
) -> list[Knowledge]:
    sql = "SELECT * FROM tier_knowledge WHERE user_id = ? AND persona_id = ?"
    args: tuple[Any, ...] = (user_id, persona_id)
    if kind:
        sql += " AND kind = ?"
        args += (kind,)
    rows = conn.execute(sql + " ORDER BY created_at, rowid", args).fetchall()
    return [
        Knowledge(
            r["id"], r["kind"], r["text"], _vec(r["embedding"]), r["extractor"], r["created_at"]
        )
        for r in rows
    ]


def add_knowledge(
    conn: Connection,
    item_id: str,
    user_id: str,
    persona_id: str,
    kind: str,
    text: str,
    embedding: Vectors | None,
    segment_id: str | None,
    extractor: str,
    now: float,
) -> bool:
    """Add one entry unless the same text is already known; True when added."""
    cur = conn.execute(
        """INSERT OR IGNORE INTO tier_knowledge (id, user_id, persona_id, kind, text, embedding,
               source_segment_id, extractor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (item_id, user_id, persona_id, kind, text, blob(embedding), segment_id, extractor, now),
    )
    return cur.rowcount > 0


def trim_knowledge(conn: Connection, user_id: str, persona_id: str, kind: str, keep: int) -> None:
    """Keep the newest `keep` entries of one kind (LONG_TERM_KNOWLEDGE_CAPACITY)."""
    conn.execute(
        """DELETE FROM tier_knowledge WHERE id IN (
               SELECT id FROM tier_knowledge WHERE user_id = ? AND persona_id = ? AND kind = ?
               ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?)""",
        (user_id, persona_id, kind, keep),
    )


def profile(conn: Connection, user_id: str, persona_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT profile, extractor, updated_at FROM tier_profiles WHERE user_id = ? "
        "AND persona_id = ?",
        (user_id, persona_id),
    ).fetchone()
    if row is None:
        return None
    return {**json.loads(row[0]), "extractor": row[1], "updated_at": row[2]}


def save_profile(
    conn: Connection,
    user_id: str,
    persona_id: str,
    data: dict[str, Any],
    extractor: str,
    now: float,
) -> None:
    conn.execute(
        """INSERT INTO tier_profiles (user_id, persona_id, profile, extractor, updated_at)
           VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, persona_id) DO UPDATE SET
           profile = excluded.profile, extractor = excluded.extractor,
           updated_at = excluded.updated_at""",
        (user_id, persona_id, json.dumps(data), extractor, now),
    )


def counts(conn: Connection, user_id: str, persona_id: str) -> dict[str, int]:
    def one(sql: str) -> int:
        return int(conn.execute(sql, (user_id, persona_id)).fetchone()[0])

    where = "WHERE user_id = ? AND persona_id = ?"
    return {
        "short_term_pages": one(f"SELECT count(*) FROM tier_pages {where} AND segment_id IS NULL"),
        "mid_term_pages": one(
            f"SELECT count(*) FROM tier_pages {where} AND segment_id IS NOT NULL"
        ),
        "mid_term_segments": one(f"SELECT count(*) FROM tier_segments {where}"),
        "user_knowledge": one(f"SELECT count(*) FROM tier_knowledge {where} AND kind = 'user'"),
        "assistant_knowledge": one(
            f"SELECT count(*) FROM tier_knowledge {where} AND kind = 'assistant'"
        ),
    }
