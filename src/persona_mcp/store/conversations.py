"""Conversation and message rows. Plain functions over a connection."""

from __future__ import annotations

from dataclasses import dataclass

from persona_mcp.store.api import Connection, Row


@dataclass(frozen=True)
class ConversationRow:
    id: str
    user_id: str
    persona_id: str
    title: str | None
    status: str
    started_at: float
    updated_at: float
    ended_at: float | None
    turn_count: int
    summary: str
    summary_upto: int
    summary_source: str | None
    last_continue_score: float | None


@dataclass(frozen=True)
class MessageRow:
    seq: int
    turn_number: int
    role: str
    content: str
    created_at: float
    model: str | None


def _conversation(row: Row) -> ConversationRow:
    return ConversationRow(**{k: row[k] for k in row.keys()})  # noqa: SIM118 (Row iterates values)


def _message(row: Row) -> MessageRow:
    return MessageRow(
        seq=row["seq"],
        turn_number=row["turn_number"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        model=row["model"],
    )


def get(conn: Connection, conversation_id: str) -> ConversationRow | None:
    row = conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    return _conversation(row) if row else None


def current(conn: Connection, user_id: str, persona_id: str) -> ConversationRow | None:
    row = conn.execute(
        """SELECT * FROM conversations WHERE user_id = ? AND persona_id = ? AND status = 'active'
           ORDER BY updated_at DESC LIMIT 1""",
        (user_id, persona_id),
    ).fetchone()
    return _conversation(row) if row else None


def insert(conn: Connection, c: ConversationRow) -> None:
    conn.execute(
        """INSERT INTO conversations (id, user_id, persona_id, title, status, started_at,
               updated_at, ended_at, turn_count, summary, summary_upto, summary_source,
               last_continue_score)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            c.id,
            c.user_id,
            c.persona_id,
            c.title,
            c.status,
            c.started_at,
            c.updated_at,
            c.ended_at,
            c.turn_count,
            c.summary,
            c.summary_upto,
            c.summary_source,
            c.last_continue_score,
        ),
    )


def end(conn: Connection, conversation_id: str, now: float, summary: str, source: str) -> None:
    conn.execute(
        """UPDATE conversations SET status = 'ended', ended_at = ?, updated_at = ?, summary = ?,
               summary_upto = (SELECT count(*) FROM messages WHERE conversation_id = ?),
               summary_source = ?
           WHERE id = ?""",
        (now, now, summary, conversation_id, source, conversation_id),
    )


def message_count(conn: Connection, conversation_id: str) -> int:
    row = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM messages WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()
    return int(row[0])


def recent_messages(conn: Connection, conversation_id: str, limit: int) -> list[MessageRow]:
    rows = conn.execute(
        """SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?""",
        (conversation_id, limit),
    ).fetchall()
    return [_message(r) for r in reversed(rows)]


def messages_between(
    conn: Connection, conversation_id: str, first_seq: int, last_seq: int
) -> list[MessageRow]:
    rows = conn.execute(
        """SELECT * FROM messages WHERE conversation_id = ? AND seq BETWEEN ? AND ?
           ORDER BY seq""",
        (conversation_id, first_seq, last_seq),
    ).fetchall()
    return [_message(r) for r in rows]


def append_exchange(
    conn: Connection,
    conversation_id: str,
    user_text: str,
    reply: str,
    now: float,
    *,
    model: str,
    tokens_used: int,
    processing_time: float,
    continue_score: float,
    response_type: str,
) -> int:
    """Add the user's message and the reply as the next turn; returns its turn number."""
    turn = (
        conn.execute(
            "SELECT turn_count FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()[0]
        + 1
    )
    seq = message_count(conn, conversation_id)
    conn.executemany(
        """INSERT INTO messages (conversation_id, seq, turn_number, role, content, created_at,
               model, tokens_used, processing_time, continue_score, response_type)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (conversation_id, seq + 1, turn, "user", user_text, now, None, None, None, None, None),
            (
                conversation_id,
                seq + 2,
                turn,
                "assistant",
                reply,
                now,
                model,
                tokens_used,
                processing_time,
                continue_score,
                response_type,
            ),
        ],
    )
    conn.execute(
        """UPDATE conversations SET turn_count = ?, updated_at = ?, last_continue_score = ?
           WHERE id = ?""",
        (turn, now, continue_score, conversation_id),
    )
    return int(turn)


def set_summary(
    conn: Connection, conversation_id: str, summary: str, upto: int, source: str
) -> None:
    conn.execute(
        """UPDATE conversations SET summary = ?, summary_upto = ?, summary_source = ?
           WHERE id = ? AND summary_upto < ?""",
        (summary, upto, source, conversation_id, upto),
    )
