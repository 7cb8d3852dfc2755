"""Relationship, mood and simulation rows. Plain functions over a connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson

from persona_mcp.store.api import Connection, Row


@dataclass(frozen=True)
class RelationshipRow:
    user_id: str
    persona_id: str
    other_id: str
    affinity: float
    trust: float
    familiarity: float
    interaction_count: int
    first_interaction: float | None
    last_interaction: float | None


@dataclass(frozen=True)
class RelationshipChangeRow:
    at: float
    affinity_delta: float
    trust_delta: float
    familiarity_delta: float
    reason: str


@dataclass(frozen=True)
class MoodRow:
    user_id: str
    persona_id: str
    valence: float
    arousal: float
    updated_at: float


@dataclass(frozen=True)
class MoodChangeRow:
    at: float
    valence: float
    arousal: float
    intensity: float
    label: str
    reason: str


SimulationStatus = Literal["running", "completed", "stopped"]


@dataclass(frozen=True)
class SimulationRow:
    id: str
    user_id: str
    topic: str
    personas: list[str]
    remaining: list[str]
    max_turns: int
    seed: int
    status: SimulationStatus
    turns: int
    end_reason: str | None
    started_at: float
    ended_at: float | None


@dataclass(frozen=True)
class TurnRow:
    simulation_id: str
    turn: int
    speaker_id: str
    speaker: str
    text: str
    continue_score: float
    model: str
    at: float


# -- relationships -----------------------------------------------------------------------


def _relationship(row: Row) -> RelationshipRow:
    return RelationshipRow(**{k: row[k] for k in row.keys()})  # noqa: SIM118 (Row iterates values)


def load_relationships(conn: Connection, user_id: str | None = None) -> list[RelationshipRow]:
    """Every relationship, or one user's."""
    where, args = ("", ()) if user_id is None else (" WHERE user_id = ?", (user_id,))
    return [_relationship(r) for r in conn.execute(f"SELECT * FROM relationships{where}", args)]


def upsert_relationship(
    conn: Connection, rel: RelationshipRow, changes: list[RelationshipChangeRow]
) -> None:
    conn.execute(
        """INSERT INTO relationships (user_id, persona_id, other_id, affinity, trust,
               familiarity, interaction_count, first_interaction, last_interaction)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (user_id, persona_id, other_id) DO UPDATE SET
               affinity = excluded.affinity, trust = excluded.trust,
               familiarity = excluded.familiarity,
               interaction_count = excluded.interaction_count,
               first_interaction = excluded.first_interaction,
               last_interaction = excluded.last_interaction""",
        (
            rel.user_id,
            rel.persona_id,
            rel.other_id,
            rel.affinity,
            rel.trust,
            rel.familiarity,
            rel.interaction_count,
            rel.first_interaction,
            rel.last_interaction,
        ),
    )
    conn.executemany(
        """INSERT INTO relationship_history (user_id, persona_id, other_id, at,
               affinity_delta, trust_delta, familiarity_delta, reason)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (
                rel.user_id,
                rel.persona_id,
                rel.other_id,
                c.at,
                c.affinity_delta,
                c.trust_delta,
                c.familiarity_delta,
                c.reason,
            )
            for c in changes
        ],
    )


def relationship_history(
    conn: Connection, user_id: str, persona_id: str, other_id: str, limit: int
) -> list[RelationshipChangeRow]:
    """The most recent changes, newest first."""
    rows = conn.execute(
        """SELECT at, affinity_delta, trust_delta, familiarity_delta, reason
           FROM relationship_history WHERE user_id = ? AND persona_id = ? AND other_id = ?
           ORDER BY id DESC LIMIT ?""",
        (user_id, persona_id, other_id, limit),
    )
    return [RelationshipChangeRow(*r) for r in rows]


# -- moods ---------------------------------------------------------------------------------


def load_moods(conn: Connection, user_id: str | None = None) -> list[MoodRow]:
    where, args = ("", ()) if user_id is None else (" WHERE user_id = ?", (user_id,))
    sql = f"SELECT user_id, persona_id, valence, arousal, updated_at FROM moods{where}"
    return [MoodRow(*r) for r in conn.execute(sql, args)]


def upsert_mood(conn: Connection, mood: MoodRow, change: MoodChangeRow) -> None:
    conn.execute(
        """INSERT INTO moods (user_id, persona_id, valence, arousal, updated_at)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (user_id, persona_id) DO UPDATE SET valence = excluded.valence,
               arousal = excluded.arousal, updated_at = excluded.updated_at""",
        (mood.user_id, mood.persona_id, mood.valence, mood.arousal, mood.updated_at),
    )
    conn.execute(
        """INSERT INTO mood_history (user_id, persona_id, at, valence, arousal, intensity,
               label, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            mood.user_id,
            mood.persona_id,
            change.at,
            change.valence,
            change.arousal,
            change.intensity,
            change.label,
            change.reason,
        ),
    )


def mood_history(
    conn: Connection, user_id: str, persona_id: str, limit: int
) -> list[MoodChangeRow]:
    """The most recent mood changes, newest first."""
    rows = conn.execute(
        """SELECT at, valence, arousal, intensity, label, reason FROM mood_history
           WHERE user_id = ? AND persona_id = ? ORDER BY id DESC LIMIT ?""",
        (user_id, persona_id, limit),
    )
    return [MoodChangeRow(*r) for r in rows]


# -- simulations ---------------------------------------------------------------------------


def _simulation(row: Row) -> SimulationRow:
    values = {k: row[k] for k in row.keys()}  # noqa: SIM118 (Row iterates values)
    values["personas"] = orjson.loads(values["personas"])
    values["remaining"] = orjson.loads(values["remaining"])
    return SimulationRow(**values)


def insert_simulation(conn: Connection, sim: SimulationRow) -> None:
    conn.execute(
        """INSERT INTO simulations (id, user_id, topic, personas, remaining, max_turns, seed,
               status, turns, end_reason, started_at, ended_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            sim.id,
            sim.user_id,
            sim.topic,
            orjson.dumps(sim.personas).decode(),
            orjson.dumps(sim.remaining).decode(),
            sim.max_turns,
            sim.seed,
            sim.status,
            sim.turns,
            sim.end_reason,
            sim.started_at,
            sim.ended_at,
        ),
    )


def get_simulation(conn: Connection, simulation_id: str) -> SimulationRow | None:
    row = conn.execute("SELECT * FROM simulations WHERE id = ?", (simulation_id,)).fetchone()
    return _simulation(row) if row else None


def list_simulations(conn: Connection, user_id: str, limit: int) -> list[SimulationRow]:
    rows = conn.execute(
        "SELECT * FROM simulations WHERE user_id = ? ORDER BY started_at DESC LIMIT ?",
        (user_id, limit),
    )
    return [_simulation(r) for r in rows]


def append_turn(conn: Connection, turn: TurnRow, remaining: list[str]) -> None:
    conn.execute(
        """INSERT INTO simulation_turns (simulation_id, turn, speaker_id, speaker, text,
               continue_score, model, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            turn.simulation_id,
            turn.turn,
            turn.speaker_id,
            turn.speaker,
            turn.text,
            turn.continue_score,
            turn.model,
            turn.at,
        ),
    )
    conn.execute(
        "UPDATE simulations SET turns = ?, remaining = ? WHERE id = ?",
        (turn.turn, orjson.dumps(remaining).decode(), turn.simulation_id),
    )


def set_remaining(conn: Connection, simulation_id: str, remaining: list[str]) -> None:
    conn.execute(
        "UPDATE simulations SET remaining = ? WHERE id = ?",
        (orjson.dumps(remaining).decode(), simulation_id),
    )


def finish_simulation(
    conn: Connection, simulation_id: str, status: SimulationStatus, reason: str, now: float
) -> None:
    conn.execute(
        "UPDATE simulations SET status = ?, end_reason = ?, ended_at = ? WHERE id = ?",
        (status, reason, now, simulation_id),
    )


def interrupted_simulations(conn: Connection, now: float) -> int:
    """Mark runs left `running` by a previous process as stopped; returns how many."""
    cur = conn.execute(
        """UPDATE simulations SET status = 'stopped', end_reason = 'server restarted',
               ended_at = ? WHERE status = 'running'""",
        (now,),
    )
    return cur.rowcount


def transcript(conn: Connection, simulation_id: str) -> list[TurnRow]:
    rows = conn.execute(
        """SELECT simulation_id, turn, speaker_id, speaker, text, continue_score, model, at
           FROM simulation_turns WHERE simulation_id = ? ORDER BY turn""",
        (simulation_id,),
    )
    return [TurnRow(*r) for r in rows]
