"""Personas: create, change, delete, resolve by id or name, and their interaction state.

SQLite is the record. The service keeps a write-through copy of the (small) persona and
state tables so that reads such as `persona.list` need no database round trip; the copy
is loaded at start and changed only after the database has committed. With other
instances on the same database (PostgreSQL, see `fleet`) each change is announced as
`personas` of its user, and a change announced by another instance reloads that user's
rows here (`reload_user`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from persona_mcp.clock import Clock, to_datetime
from persona_mcp.errors import Conflict, InvalidParams, NotFound, RateLimited
from persona_mcp.events import EventBus
from persona_mcp.fleet import Fleet, Solo
from persona_mcp.models.persona import InteractionState, Persona
from persona_mcp.personas import state as rules
from persona_mcp.personas.defaults import DEFAULT_PERSONAS
from persona_mcp.store import personas as repo
from persona_mcp.store.api import Conflict as StoreConflict
from persona_mcp.store.api import Connection, Database, Row
from persona_mcp.store.personas import PersonaRow, StateRow

T = TypeVar("T")

CARD_HIDDEN = {"character_book", "extensions", "name", "description"}


def card_view(card: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a persona shows of the card it came from: the spec and the card's own fields
    (the lorebook is in its memories; name and description are the persona's)."""
    if not card:
        return None
    data = card.get("data") or {}
    return {"spec": card.get("spec"), **{k: v for k, v in data.items() if k not in CARD_HIDDEN}}


class SocialView(Protocol):
    """What the persona service asks of relationships and moods (personas.social)."""

    def continue_terms(self, persona_id: str, user_id: str) -> tuple[float, float]:
        """The continue score's relationship term in [0, 1] and mood term in [-1, 1]."""
        ...

    def mood_word(self, persona_id: str, user_id: str) -> str | None:
        """The emotional mood's label, or None while it is at rest."""
        ...

    def mood_stamp(self, persona_id: str, user_id: str) -> object:
        """The stored mood as one immutable value, replaced whenever the mood changes:
        what a cache of anything the mood goes into compares, by identity."""
        ...


async def read_settled(db: Database, fn: Callable[[Connection], T], gen: Callable[[], int]) -> T:
    """Read rows that are to replace part of a write-through copy. `gen()` moves with every
    change the copy takes; one taken while reading (a persona created on another
    connection, say) may have committed after the read's snapshot and be in the copy
    already, and the rows read would drop it: then read again."""
    while True:
        before = gen()
        rows = await db.read(fn)
        if gen() == before:
            return rows


# Far enough ahead that every recovery has run its course (see personas/state.py).
_SETTLED_AT = 1e12


@dataclass(frozen=True)
class _Shown:
    """A persona's model as a user last saw it, with what it was made from: valid while
    the row, state and mood are these same objects (a write replaces them)."""

    row: PersonaRow
    state: StateRow | None
    mood: object
    since: float
    model: Persona


class PersonaService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        max_per_user: int = 100,
        events: EventBus | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.social: SocialView | None = None  # set by the App once the social service exists
        self._db = db
        self._fleet = fleet or Solo()
        self._gen = 0  # moves with every change made here (see `read_settled`)
        self._clock = clock
        self._max_per_user = max_per_user
        self._events = events or EventBus()
        self._by_id: dict[str, PersonaRow] = {}
        self._states: dict[tuple[str, str], StateRow] = {}
        self._seeded: set[str] = set()
        self._active: dict[str, str | None] = {}
        self._shown: dict[tuple[str, str], _Shown] = {}

    async def load(self) -> None:
        """Read every user's personas, states and user state into the copy (at start, after
        `state.load`, after changes from other instances may have been missed)."""

        def read(
            conn: Connection,
        ) -> tuple[list[PersonaRow], list[StateRow], list[Row]]:
            users = repo.user_states(conn)
            return repo.load_personas(conn), repo.load_states(conn), users

        personas, states, users = await read_settled(self._db, read, lambda: self._gen)
        self._by_id = {p.id: p for p in personas}
        self._states = {(s.persona_id, s.user_id): s for s in states}
        self._seeded = {u["user_id"] for u in users if u["seeded_at"] is not None}
        self._active = {u["user_id"]: u["active_persona_id"] for u in users}

    async def reload_user(self, user_id: str) -> None:
        """Read one user's personas, states and user state again (another instance
        changed them, or another task seeded them)."""

        def read(
            conn: Connection,
        ) -> tuple[list[PersonaRow], list[StateRow], dict[str, Any] | None]:
            return (
                repo.load_personas(conn, user_id),
                repo.load_states(conn, user_id),
                repo.user_state(conn, user_id),
            )

        personas, states, user = await read_settled(self._db, read, lambda: self._gen)
        for pid in [p.id for p in self._by_id.values() if p.user_id == user_id]:
            del self._by_id[pid]
        self._by_id.update({p.id: p for p in personas})
        self._states = {k: v for k, v in self._states.items() if k[1] != user_id}
        self._states.update({(st.persona_id, st.user_id): st for st in states})
        if user is not None and user["seeded_at"] is not None:
            self._seeded.add(user_id)
        else:
            self._seeded.discard(user_id)
        self._active[user_id] = user["active_persona_id"] if user is not None else None

    def _changed(self, user_id: str) -> None:
        self._gen += 1
        self._fleet.touch("personas", user_id)

    # -- users ---------------------------------------------------------------------

    async def caught_up(self) -> None:
        """Return once what other instances committed until now is in the copy (before
        reading it outside a request: a session's opening)."""
        if self._fleet.shared:
            await self._fleet.sync()

    async def ensure_user(self, user_id: str) -> None:
        """Give a user their own Aria and Kira the first time they are seen."""
        if user_id in self._seeded:
            return
        now = self._clock.now()
        rows = [
            PersonaRow(
                id=str(uuid.uuid4()),
                user_id=user_id,
                name=seed.name,
                description=seed.description,
                personality_traits=list(seed.personality_traits),
                backstory=seed.backstory,
                topic_preferences=dict(seed.topic_preferences),
                model=None,
                builtin=True,
                rest_energy=seed.social_energy,
                rest_time=seed.available_time,
                rest_priority=seed.current_priority,
                created_at=now + i * 1e-6,
                updated_at=now,
            )
            for i, seed in enumerate(DEFAULT_PERSONAS)
        ]

        def write(conn: Connection) -> list[PersonaRow]:
            existing = repo.user_state(conn, user_id)
            if existing and existing["seeded_at"] is not None:
                return []  # another task seeded first
            for row in rows:
                if not repo.name_taken(conn, user_id, row.name):
                    repo.insert_persona(conn, row)
            repo.set_user_state(conn, user_id, now, seeded=True)
            return rows

        created = await self._db.write(write)
        if not created:  # seeded meanwhile, by another task or another instance
            await self.reload_user(user_id)
            return
        for row in created:
            self._by_id[row.id] = row
        self._seeded.add(user_id)
        self._active.setdefault(user_id, None)
        self._changed(user_id)

    def forget_user(self, user_id: str) -> list[str]:
        """Drop a deleted user from the copy (the database rows are gone); returns the ids
        of the personas they had. Their next call seeds Aria and Kira anew."""
        ids = [p.id for p in self._by_id.values() if p.user_id == user_id]
        for persona_id in ids:
            del self._by_id[persona_id]
        self._states = {k: v for k, v in self._states.items() if k[1] != user_id}
        self._seeded.discard(user_id)
        self._active.pop(user_id, None)
        self._changed(user_id)
        return ids

    def seeded(self, user_id: str) -> bool:
        """Whether the user has been seen (and given their Aria and Kira)."""
        return user_id in self._seeded

    def active_for_user(self, user_id: str) -> str | None:
        """The persona this user last switched to (any door), if it still exists."""
        pid = self._active.get(user_id)
        return pid if pid in self._by_id else None

    def write_active(self, conn: Connection, user_id: str, persona_id: str) -> None:
        """Remember the user's active persona (inside the caller's transaction)."""
        repo.set_user_state(conn, user_id, self._clock.now(), active_persona_id=persona_id)

    def active_committed(self, user_id: str, persona_id: str) -> None:
        self._active[user_id] = persona_id
        self._changed(user_id)

    # -- reading -------------------------------------------------------------------

    def users(self) -> list[str]:
        """Every user who has personas (server-wide jobs only)."""
        return sorted({p.user_id for p in self._by_id.values()})

    def visible(self, user_id: str) -> list[PersonaRow]:
        return sorted(
            (p for p in self._by_id.values() if p.user_id == user_id),
            key=lambda p: (not p.builtin, p.created_at),
        )

    def resolve(self, user_id: str, ref: str) -> PersonaRow:
        """A persona of this user by id, or by name (case-insensitive)."""
        row = self._by_id.get(ref)
        if row is not None and row.user_id == user_id:
            return row
        wanted = ref.strip().lower()
        for p in self._by_id.values():
            if p.user_id == user_id and p.name.lower() == wanted:
                return p
        raise NotFound(f"No persona with id or name {ref!r}", {"persona_id": ref})

    def default_for(self, user_id: str) -> PersonaRow:
        """The persona used when a caller names none and has not switched."""
        active = self.active_for_user(user_id)
        if active is not None:
            return self._by_id[active]
        personas = self.visible(user_id)
        if not personas:
            raise NotFound("This user has no personas; create one with persona.create")
        return personas[0]

    def state(self, persona: PersonaRow, user_id: str) -> rules.StateValues:
        """The interaction state now, recovery since the last exchange included."""
        stored = self._states.get((persona.id, user_id))
        values = rules.StateValues(
            social_energy=stored.social_energy if stored else persona.rest_energy,
            available_time=stored.available_time if stored else persona.rest_time,
            interaction_fatigue=stored.interaction_fatigue if stored else 0.0,
            current_priority=stored.current_priority if stored else persona.rest_priority,
            last_interaction=stored.last_interaction if stored else None,
            rest_energy=persona.rest_energy,
            rest_time=persona.rest_time,
        )
        return rules.recovered(values, self._clock.now())

    def social_terms(self, persona: PersonaRow, user_id: str) -> tuple[float, float]:
        """The continue score's relationship and mood terms (neutral without the social
        service)."""
        if self.social is None:
            return 0.5, 0.0
        return self.social.continue_terms(persona.id, user_id)

    def mood(
        self, persona: PersonaRow, user_id: str, current: rules.StateValues | None = None
    ) -> str:
        """One word: tiredness first, then the emotional mood when it is not at rest.
        `current`: the state now, when the caller has it already."""
        stored = self._states.get((persona.id, user_id))
        if current is None:
            current = self.state(persona, user_id)
        # A stored mood reflects the last exchange's tone; rest may have lifted tiredness.
        base = rules.mood(current)
        if base not in {"exhausted", "tired"} and self.social is not None:
            word = self.social.mood_word(persona.id, user_id)
            if word is not None:
                return word
        if (
            stored
            and base in {"cheerful", "content"}
            and stored.mood in {"concerned", "thoughtful"}
        ):
            return stored.mood
        return base

    def to_model(self, persona: PersonaRow, user_id: str) -> Persona:
        """The persona as this user sees it now. Once a persona has settled (recovered,
        its emotional mood calm) it no longer changes with time, so its model is kept
        and reused until a write replaces its row, state or mood: `persona.list` stays
        the cheapest call, and a read after any write sees that write."""
        key = (persona.id, user_id)
        stored = self._states.get(key)
        mood = self.social.mood_stamp(persona.id, user_id) if self.social is not None else None
        now = self._clock.now()
        shown = self._shown.get(key)
        if (
            shown is not None
            and shown.row is persona
            and shown.state is stored
            and shown.mood is mood
            and now >= shown.since  # a clock set back may find it unsettled again
        ):
            return shown.model
        s = self.state(persona, user_id)
        model = Persona(
            id=persona.id,
            name=persona.name,
            description=persona.description,
            personality_traits=persona.personality_traits,
            backstory=persona.backstory,
            topic_preferences=persona.topic_preferences,
            model=persona.model,
            builtin=persona.builtin,
            created_at=to_datetime(persona.created_at),
            updated_at=to_datetime(persona.updated_at),
            interaction_state=InteractionState(
                social_energy=round(s.social_energy, 2),
                available_time=round(s.available_time, 2),
                interaction_fatigue=round(s.interaction_fatigue, 2),
                current_priority=s.current_priority,
                last_interaction=to_datetime(s.last_interaction),
            ),
            mood=self.mood(persona, user_id, s),
            card=card_view(persona.card),
        )
        # Settled: recovery has nothing left to do, and the emotional mood is calm (it
        # only decays toward rest, so it stays calm).
        if rules.recovered(s, _SETTLED_AT) == s and (
            self.social is None or self.social.mood_word(persona.id, user_id) is None
        ):
            self._shown[key] = _Shown(persona, stored, mood, now, model)
        return model

    # -- changing ------------------------------------------------------------------

    def _check_name(self, user_id: str, name: str, exclude: str | None = None) -> str:
        name = name.strip()
        if not name:
            raise InvalidParams.field("name", "must not be empty")
        for p in self._by_id.values():
            if p.user_id == user_id and p.id != exclude and p.name.lower() == name.lower():
                raise Conflict(f"A persona named {name!r} already exists", {"persona_id": p.id})
        return name

    async def create(
        self,
        user_id: str,
        *,
        name: str,
        description: str,
        personality_traits: list[str],
        backstory: str,
        topic_preferences: dict[str, float],
        model: str | None,
        social_energy: float = 80.0,
        available_time: float = 90.0,
        card: dict[str, Any] | None = None,
        also: Callable[[Connection, PersonaRow], None] | None = None,
    ) -> PersonaRow:
        """A new persona of the user; `also` writes more in the same transaction."""
        now = self._clock.now()
        row = PersonaRow(
            id=str(uuid.uuid4()),
            user_id=user_id,
            name=self._check_name(user_id, name),
            description=description,
            personality_traits=personality_traits,
            backstory=backstory,
            topic_preferences=topic_preferences,
            model=model,
            builtin=False,
            rest_energy=social_energy,
            rest_time=available_time,
            rest_priority="normal",
            created_at=now,
            updated_at=now,
            card=card,
        )

        def write(conn: Connection) -> None:
            # Counted inside the transaction, so concurrent creates cannot pass the cap.
            if repo.count_for_user(conn, user_id) >= self._max_per_user:
                raise RateLimited(
                    f"This user already has {self._max_per_user} personas, the limit "
                    "(MAX_PERSONAS_PER_USER); delete one first",
                    {"limit": "MAX_PERSONAS_PER_USER", "max": self._max_per_user},
                )
            repo.insert_persona(conn, row)
            if also is not None:
                also(conn, row)

        try:
            await self._db.write(write)
        except StoreConflict as exc:
            raise Conflict(f"A persona named {row.name!r} already exists") from exc
        self._by_id[row.id] = row
        self._changed(user_id)
        return row

    async def update(self, user_id: str, ref: str, **changes: object) -> PersonaRow:
        current = self.resolve(user_id, ref)
        if "name" in changes:
            changes["name"] = self._check_name(user_id, str(changes["name"]), exclude=current.id)
        updated = replace(current, **changes, updated_at=self._clock.now())  # type: ignore[arg-type]
        try:
            await self._db.write(lambda conn: repo.update_persona(conn, updated))
        except StoreConflict as exc:
            raise Conflict(f"A persona named {updated.name!r} already exists") from exc
        self._by_id[updated.id] = updated
        self._changed(user_id)
        return updated

    async def delete(self, user_id: str, ref: str) -> PersonaRow:
        row = self.resolve(user_id, ref)
        await self._db.write(lambda conn: repo.delete_persona(conn, row.id))
        self._by_id.pop(row.id, None)
        self._shown = {k: v for k, v in self._shown.items() if k[0] != row.id}
        for key in [k for k in self._states if k[0] == row.id]:
            del self._states[key]
        for uid, pid in list(self._active.items()):
            if pid == row.id:
                self._active[uid] = None
        self._changed(user_id)
        return row

    def exchange_state(
        self, persona: PersonaRow, user_id: str, message: str, interest: float, valence: float
    ) -> StateRow:
        """The state row an exchange leaves behind (written by the caller's transaction)."""
        now = self._clock.now()
        after = rules.after_exchange(self.state(persona, user_id), message, interest, now)
        return StateRow(
            persona_id=persona.id,
            user_id=user_id,
            social_energy=after.social_energy,
            available_time=after.available_time,
            interaction_fatigue=after.interaction_fatigue,
            current_priority=after.current_priority,
            last_interaction=after.last_interaction,
            mood=rules.mood(after, valence),
        )

    def write_state(self, conn: Connection, row: StateRow) -> None:
        repo.upsert_state(conn, row, self._clock.now())

    def state_committed(self, row: StateRow) -> None:
        """Call after the transaction holding `write_state` has committed."""
        persona = self._by_id.get(row.persona_id)
        if persona is not None:
            self._states[(row.persona_id, row.user_id)] = row
            self._changed(row.user_id)
            if self._events.has_subscribers(row.user_id):
                model = self.to_model(persona, row.user_id)
                self._events.publish(
                    row.user_id,
                    "persona.state",
                    {
                        "persona_id": persona.id,
                        "interaction_state": model.interaction_state.model_dump(mode="json"),
                        "mood": model.mood,
                    },
                )
