"""Persona, persona-state and user-state rows. Plain functions over a connection."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from persona_mcp.store.api import Connection, Row


@dataclass(frozen=True)
class PersonaRow:
    id: str
    user_id: str
    name: str
    description: str
    personality_traits: list[str]
    backstory: str
    topic_preferences: dict[str, float]
    model: str | None
    builtin: bool
    rest_energy: float
    rest_time: float
    rest_priority: str
    created_at: float
    updated_at: float
    card: dict[str, Any] | None = None  # the Character Card `data` it was imported from


@dataclass(frozen=True)
class StateRow:
    persona_id: str
    user_id: str
    social_energy: float
    available_time: float
    interaction_fatigue: float
    current_priority: str
    last_interaction: float | None
    mood: str


def _persona(row: Row) -> PersonaRow:
    defaults = json.loads(row["defaults"])
    return PersonaRow(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        description=row["description"],
        personality_traits=json.loads(row["personality_traits"]),
        backstory=row["backstory"],
        topic_preferences=json.loads(row["topic_preferences"]),
        model=row["model"],
        builtin=bool(row["builtin"]),
        rest_energy=float(defaults.get("social_energy", 80.0)),
        rest_time=float(defaults.get("available_time", 90.0)),
        rest_priority=str(defaults.get("current_priority", "normal")),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        card=json.loads(row["card"]) if row["card"] else None,
    )


def _of_user(user_id: str | None) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if user_id is None else (" WHERE user_id = ?", (user_id,))


def load_personas(conn: Connection, user_id: str | None = None) -> list[PersonaRow]:
    """Every persona, or one user's."""
    where, args = _of_user(user_id)
    rows = conn.execute(f"SELECT * FROM personas{where} ORDER BY created_at, rowid", args)
    return [_persona(r) for r in rows.fetchall()]


def load_states(conn: Connection, user_id: str | None = None) -> list[StateRow]:
    where, args = _of_user(user_id)
    rows = conn.execute(f"SELECT * FROM persona_states{where}", args).fetchall()
    return [
        StateRow(
            persona_id=r["persona_id"],
            user_id=r["user_id"],
            social_energy=r["social_energy"],
            available_time=r["available_time"],
            interaction_fatigue=r["interaction_fatigue"],
            current_priority=r["current_priority"],
            last_interaction=r["last_interaction"],
            mood=r["mood"],
        )
        for r in rows
    ]


def insert_persona(conn: Connection, p: PersonaRow) -> None:
    conn.execute(
        """INSERT INTO personas (id, user_id, name, description, personality_traits, backstory,
               topic_preferences, model, builtin, defaults, created_at, updated_at, card)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            p.id,
            p.user_id,
            p.name,
            p.description,
            json.dumps(p.personality_traits),
            p.backstory,
            json.dumps(p.topic_preferences),
            p.model,
            int(p.builtin),
            json.dumps(
                {
                    "social_energy": p.rest_energy,
                    "available_time": p.rest_time,
                    "current_priority": p.rest_priority,
                }
            ),
            p.created_at,
            p.updated_at,
            json.dumps(p.card, ensure_ascii=False) if p.card is not None else None,
        ),
    )


def update_persona(conn: Connection, p: PersonaRow) -> None:
    conn.execute(
        """UPDATE personas SET name = ?, description = ?, personality_traits = ?, backstory = ?,
               topic_preferences = ?, model = ?, updated_at = ? WHERE id = ?""",
        (
            p.name,
            p.description,
            json.dumps(p.personality_traits),
            p.backstory,
            json.dumps(p.topic_preferences),
            p.model,
            p.updated_at,
            p.id,
        ),
    )


def delete_persona(conn: Connection, persona_id: str) -> None:
    # Conversations, messages, states, memories and archived memories go with it through
    # ON DELETE CASCADE; the records of its prune and decay runs are removed here.
    conn.execute("DELETE FROM personas WHERE id = ?", (persona_id,))
    conn.execute("DELETE FROM prune_runs WHERE persona_id = ?", (persona_id,))
    conn.execute("DELETE FROM decay_runs WHERE persona_id = ?", (persona_id,))


def upsert_state(conn: Connection, s: StateRow, now: float) -> None:
    conn.execute(
        """INSERT INTO persona_states (persona_id, user_id, social_energy, available_time,
               interaction_fatigue, current_priority, last_interaction, mood, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (persona_id, user_id) DO UPDATE SET
               social_energy = excluded.social_energy,
               available_time = excluded.available_time,
               interaction_fatigue = excluded.interaction_fatigue,
               current_priority = excluded.current_priority,
               last_interaction = excluded.last_interaction,
               mood = excluded.mood,
               updated_at = excluded.updated_at""",
        (
            s.persona_id,
            s.user_id,
            s.social_energy,
            s.available_time,
            s.interaction_fatigue,
            s.current_priority,
            s.last_interaction,
            s.mood,
            now,
        ),
    )


def user_state(conn: Connection, user_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM user_state WHERE user_id = ?", (user_id,)).fetchone()
    return dict(row) if row else None


def set_user_state(
    conn: Connection,
    user_id: str,
    now: float,
    *,
    active_persona_id: str | None = None,
    seeded: bool = False,
) -> None:
    conn.execute(
        """INSERT INTO user_state (user_id, active_persona_id, seeded_at, updated_at)
           VALUES (?, ?, ?, ?)
           ON CONFLICT (user_id) DO UPDATE SET
               active_persona_id =
                   coalesce(excluded.active_persona_id, user_state.active_persona_id),
               seeded_at = coalesce(excluded.seeded_at, user_state.seeded_at),
               updated_at = excluded.updated_at""",
        (user_id, active_persona_id, now if seeded else None, now),
    )


def count_for_user(conn: Connection, user_id: str) -> int:
    return int(
        conn.execute("SELECT count(*) FROM personas WHERE user_id = ?", (user_id,)).fetchone()[0]
    )


def user_states(conn: Connection) -> list[Row]:
    """Every user's state row (seeded_at, active_persona_id)."""
    return conn.execute("SELECT * FROM user_state").fetchall()


def name_taken(conn: Connection, user_id: str, name: str) -> bool:
    """Whether the user has a persona of this name (names compare without case)."""
    return (
        conn.execute(
            "SELECT 1 FROM personas WHERE user_id = ? AND lower(name) = lower(?)",
            (user_id, name),
        ).fetchone()
        is not None
    )


def counts_for_user(conn: Connection, user_id: str) -> dict[str, int]:
    """How many personas, conversations, memories and messages a user holds."""

    def one(sql: str) -> int:
        return int(conn.execute(sql, (user_id,)).fetchone()[0])

    return {
        "personas": one("SELECT count(*) FROM personas WHERE user_id = ?"),
        "conversations": one("SELECT count(*) FROM conversations WHERE user_id = ?"),
        "memories": one("SELECT count(*) FROM memory_scores WHERE user_id = ?"),
        "messages": one(
            """SELECT count(*) FROM messages JOIN conversations c
               ON c.id = messages.conversation_id WHERE c.user_id = ?"""
        ),
    }
