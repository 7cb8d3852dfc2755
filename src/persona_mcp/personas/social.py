"""The social service: relationships and moods, kept in SQLite with a write-through copy.

Both tables are small (a row per pair, a row per persona), so reads such as
`persona.status` and the continue score need no database round trip; the copy changes
only after the database has committed. The rules live in `relationships` and `mood`.
Changes are announced to the other instances on the same database as `social` of their
user (see `fleet`); theirs reload that user's rows here (`reload_user`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from persona_mcp import nlp
from persona_mcp.clock import Clock
from persona_mcp.errors import InvalidParams, NotFound
from persona_mcp.fleet import Fleet, Solo
from persona_mcp.personas import mood as mood_rules
from persona_mcp.personas import relationships as rel_rules
from persona_mcp.personas.interest import topic_interest
from persona_mcp.personas.mood import MoodValues
from persona_mcp.personas.relationships import USER, RelationshipValues
from persona_mcp.personas.service import PersonaService, read_settled
from persona_mcp.store import social as repo
from persona_mcp.store.api import Connection, Database
from persona_mcp.store.personas import PersonaRow
from persona_mcp.store.social import (
    MoodChangeRow,
    MoodRow,
    RelationshipChangeRow,
    RelationshipRow,
)

Pair = tuple[str, str, str]  # user, persona, other


@dataclass
class SocialWrites:
    """What one exchange (or chatroom turn) changes, written in the caller's transaction."""

    relationships: list[tuple[RelationshipRow, list[RelationshipChangeRow]]] = field(
        default_factory=list
    )
    moods: list[tuple[MoodRow, MoodChangeRow]] = field(default_factory=list)


class SocialService:
    def __init__(
        self, db: Database, clock: Clock, personas: PersonaService, fleet: Fleet | None = None
    ) -> None:
        self._db = db
        self._fleet = fleet or Solo()
        self._gen = 0  # moves with every change made here (see `read_settled`)
        self._clock = clock
        self._personas = personas
        self._rels: dict[Pair, RelationshipValues] = {}
        self._moods: dict[tuple[str, str], MoodValues] = {}

    async def load(self) -> None:
        rels, moods = await read_settled(
            self._db,
            lambda conn: (repo.load_relationships(conn), repo.load_moods(conn)),
            lambda: self._gen,
        )
        self._rels, self._moods = self._copies(rels, moods)

    async def reload_user(self, user_id: str) -> None:
        """Read one user's relationships and moods again (another instance changed them);
        again while a change made here lands meanwhile."""
        rels, moods = await read_settled(
            self._db,
            lambda conn: (
                repo.load_relationships(conn, user_id),
                repo.load_moods(conn, user_id),
            ),
            lambda: self._gen,
        )
        new_rels, new_moods = self._copies(rels, moods)
        self._rels = {k: v for k, v in self._rels.items() if k[0] != user_id} | new_rels
        self._moods = {k: v for k, v in self._moods.items() if k[0] != user_id} | new_moods

    @staticmethod
    def _copies(
        rels: list[RelationshipRow], moods: list[MoodRow]
    ) -> tuple[dict[Pair, RelationshipValues], dict[tuple[str, str], MoodValues]]:
        return {
            (r.user_id, r.persona_id, r.other_id): RelationshipValues(
                affinity=r.affinity,
                trust=r.trust,
                familiarity=r.familiarity,
                interaction_count=r.interaction_count,
                first_interaction=r.first_interaction,
                last_interaction=r.last_interaction,
            )
            for r in rels
        }, {
            (m.user_id, m.persona_id): MoodValues(m.valence, m.arousal, m.updated_at) for m in moods
        }

    # -- reading -------------------------------------------------------------------------

    def other_id(self, user_id: str, ref: str) -> str:
        """`"user"`, or a persona's id from its id or name."""
        if ref.strip().lower() == USER:
            return USER
        return self._personas.resolve(user_id, ref).id

    def personas_name(self, user_id: str, persona_id: str) -> str:
        return self._personas.resolve(user_id, persona_id).name

    def relationship(
        self, user_id: str, persona_id: str, other_id: str
    ) -> RelationshipValues | None:
        """The relationship now (familiarity faded by absence), or None if they never met."""
        stored = self._rels.get((user_id, persona_id, other_id))
        return rel_rules.faded(stored, self._clock.now()) if stored else None

    def relationships(self, user_id: str, persona_id: str) -> list[tuple[str, RelationshipValues]]:
        now = self._clock.now()
        return sorted(
            (
                (other, rel_rules.faded(values, now))
                for (uid, pid, other), values in self._rels.items()
                if uid == user_id and pid == persona_id and self._known(user_id, other)
            ),
            key=lambda kv: -(kv[1].last_interaction or 0.0),
        )

    def _known(self, user_id: str, other: str) -> bool:
        if other == USER:
            return True
        try:
            self._personas.resolve(user_id, other)
        except NotFound:  # deleted since: its rows left with it
            return False
        return True

    async def history(
        self, user_id: str, persona_id: str, other_id: str, limit: int = 20
    ) -> list[RelationshipChangeRow]:
        return await self._db.read(
            lambda conn: repo.relationship_history(conn, user_id, persona_id, other_id, limit)
        )

    def mood(self, user_id: str, persona_id: str) -> MoodValues:
        """The mood now, restored toward rest by the time since it last moved."""
        stored = self._moods.get((user_id, persona_id))
        if stored is None:
            return MoodValues()
        return mood_rules.restored(stored, self._clock.now())

    async def mood_history(
        self, user_id: str, persona_id: str, limit: int = 20
    ) -> list[MoodChangeRow]:
        return await self._db.read(lambda conn: repo.mood_history(conn, user_id, persona_id, limit))

    # -- what PersonaService asks (see personas.service.SocialView) ----------------------

    def continue_terms(self, persona_id: str, user_id: str) -> tuple[float, float]:
        """The continue score's relationship (with the user) and mood terms."""
        return (
            rel_rules.warmth(self.relationship(user_id, persona_id, USER)),
            mood_rules.score_term(self.mood(user_id, persona_id)),
        )

    def mood_word(self, persona_id: str, user_id: str) -> str | None:
        current = self.mood(user_id, persona_id)
        return None if current.intensity < mood_rules.CALM_BELOW else current.label

    def mood_stamp(self, persona_id: str, user_id: str) -> object:
        return self._moods.get((user_id, persona_id))  # MoodValues are replaced, not changed

    # -- changing ------------------------------------------------------------------------

    def plan(
        self,
        writes: SocialWrites,
        user_id: str,
        persona_id: str,
        other_id: str,
        *,
        valence: float,
        interest: float,
        words: int,
        where: str = "",
        reason: str | None = None,
    ) -> None:
        """Add one exchange's effect on `persona_id`'s view of `other_id` and on its mood."""
        now = self._clock.now()
        key = (user_id, persona_id, other_id)
        planned = {(r.user_id, r.persona_id, r.other_id): r for r, _ in writes.relationships}
        before_row = planned.get(key)
        before = (
            RelationshipValues(
                before_row.affinity,
                before_row.trust,
                before_row.familiarity,
                before_row.interaction_count,
                before_row.first_interaction,
                before_row.last_interaction,
            )
            if before_row
            else self._rels.get(key, RelationshipValues())
        )
        after, changes = rel_rules.after_exchange(
            before, valence=valence, interest=interest, words=words, now=now, where=where
        )
        writes.relationships = [w for w in writes.relationships if w[0] is not before_row]
        writes.relationships.append(
            (
                RelationshipRow(
                    user_id,
                    persona_id,
                    other_id,
                    after.affinity,
                    after.trust,
                    after.familiarity,
                    after.interaction_count,
                    after.first_interaction,
                    after.last_interaction,
                ),
                [
                    RelationshipChangeRow(
                        now, c.affinity, c.trust, c.familiarity, reason or c.reason
                    )
                    for c in changes
                ],
            )
        )
        mood_key = (user_id, persona_id)
        planned_moods = {(m.user_id, m.persona_id): m for m, _ in writes.moods}
        prior = planned_moods.get(mood_key)
        base = (
            MoodValues(prior.valence, prior.arousal, prior.updated_at)
            if prior
            else self.mood(user_id, persona_id)
        )
        moved = mood_rules.after_exchange(base, valence=valence, interest=interest, now=now)
        writes.moods = [m for m in writes.moods if m[0] is not prior]
        writes.moods.append(
            (
                MoodRow(user_id, persona_id, moved.valence, moved.arousal, now),
                MoodChangeRow(
                    now,
                    moved.valence,
                    moved.arousal,
                    moved.intensity,
                    moved.label,
                    reason or changes[-1].reason,
                ),
            )
        )

    def write(self, conn: Connection, writes: SocialWrites) -> None:
        for row, changes in writes.relationships:
            repo.upsert_relationship(conn, row, changes)
        for mood, change in writes.moods:
            repo.upsert_mood(conn, mood, change)

    def committed(self, writes: SocialWrites) -> None:
        for r, _ in writes.relationships:
            self._rels[(r.user_id, r.persona_id, r.other_id)] = RelationshipValues(
                r.affinity,
                r.trust,
                r.familiarity,
                r.interaction_count,
                r.first_interaction,
                r.last_interaction,
            )
        for m, _ in writes.moods:
            self._moods[(m.user_id, m.persona_id)] = MoodValues(m.valence, m.arousal, m.updated_at)
        users = {r.user_id for r, _ in writes.relationships} | {m.user_id for m, _ in writes.moods}
        if users:
            self._gen += 1
        for user_id in users:
            self._fleet.touch("social", user_id)

    def forget(self, persona_id: str) -> None:
        """Drop a deleted persona from the copy (the database cascade removed its rows)."""
        self._rels = {k: v for k, v in self._rels.items() if persona_id not in (k[1], k[2])}
        self._moods = {k: v for k, v in self._moods.items() if k[1] != persona_id}
        self._gen += 1

    async def after_exchange(self, user_id: str, persona: PersonaRow, message: str) -> None:
        """A user↔persona exchange: the persona's view of the user and its mood move by
        the tone of the message, its interest in the topic, its length and frequency."""
        interest, _ = topic_interest(message, persona.topic_preferences)
        writes = SocialWrites()
        self.plan(
            writes,
            user_id,
            persona.id,
            USER,
            valence=nlp.sentiment(message),
            interest=interest,
            words=len(message.split()),
        )
        await self._db.write(lambda conn: self.write(conn, writes))
        self.committed(writes)

    def compatibility(
        self, a: PersonaRow, b: PersonaRow
    ) -> tuple[float, list[rel_rules.CompatibilityPart]]:
        if a.id == b.id:
            raise InvalidParams.field("other_id", "must name a different persona")
        return rel_rules.compatibility(
            a.personality_traits,
            a.topic_preferences,
            a.rest_energy,
            b.personality_traits,
            b.topic_preferences,
            b.rest_energy,
        )
