"""Sessions: one per connection (or per user on stateless transports), each with an
active persona. The session row records the connection; the user's last active persona
is remembered across sessions and restarts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from persona_mcp.clock import Clock
from persona_mcp.errors import NotFound
from persona_mcp.personas.service import PersonaService
from persona_mcp.store import sessions as repo
from persona_mcp.store.api import Connection, Database
from persona_mcp.store.personas import PersonaRow

TOUCH_EVERY_SECONDS = 60.0  # last_active_at is written at most this often per session


@dataclass
class Session:
    id: str
    user_id: str
    transport: str
    active_persona_id: str | None
    last_touched: float
    persisted: bool = True


class SessionService:
    def __init__(self, db: Database, clock: Clock, personas: PersonaService) -> None:
        self._db = db
        self._clock = clock
        self._personas = personas
        self.open_sessions: dict[str, Session] = {}

    async def open(self, user_id: str, transport: str) -> Session:
        await self._personas.ensure_user(user_id)
        await self._personas.caught_up()  # the active persona as switched on any instance
        now = self._clock.now()
        session = Session(
            id=str(uuid.uuid4()),
            user_id=user_id,
            transport=transport,
            active_persona_id=self._personas.active_for_user(user_id),
            last_touched=now,
        )
        await self._db.write(
            lambda conn: repo.insert(
                conn, session.id, user_id, transport, session.active_persona_id, now
            )
        )
        self.open_sessions[session.id] = session
        return session

    def ephemeral(self, user_id: str, transport: str) -> Session:
        """A session for a stateless request: its active persona is the user's."""
        return Session(
            id=f"user:{user_id}",
            user_id=user_id,
            transport=transport,
            active_persona_id=self._personas.active_for_user(user_id),
            last_touched=self._clock.now(),
            persisted=False,
        )

    async def close(self, session: Session) -> None:
        self.open_sessions.pop(session.id, None)
        if not session.persisted:
            return
        now = self._clock.now()
        await self._db.write(lambda conn: repo.close(conn, session.id, now))

    async def touch(self, session: Session) -> None:
        """Record activity, rate-limited so that cheap requests stay cheap."""
        now = self._clock.now()
        if not session.persisted or now - session.last_touched < TOUCH_EVERY_SECONDS:
            return
        session.last_touched = now
        await self._db.write(lambda conn: repo.touch(conn, session.id, now))

    def active_persona(self, session: Session) -> PersonaRow:
        if not session.persisted:  # a stateless request's: the user's, as it is now
            session.active_persona_id = self._personas.active_for_user(session.user_id)
        if session.active_persona_id:
            try:
                return self._personas.resolve(session.user_id, session.active_persona_id)
            except NotFound:
                session.active_persona_id = None  # deleted since
        return self._personas.default_for(session.user_id)

    def persona(self, session: Session, ref: str | None) -> PersonaRow:
        """The persona a request names (id or name), else the session's active one."""
        return self._personas.resolve(session.user_id, ref) if ref else self.active_persona(session)

    async def switch(self, session: Session, ref: str) -> tuple[PersonaRow, str | None]:
        persona = self._personas.resolve(session.user_id, ref)
        previous = session.active_persona_id

        def write(conn: Connection) -> None:
            if session.persisted:
                repo.set_active(conn, session.id, persona.id)
            self._personas.write_active(conn, session.user_id, persona.id)

        await self._db.write(write)
        self._personas.active_committed(session.user_id, persona.id)
        session.active_persona_id = persona.id
        return persona, previous

    def forget_idle(self, timeout_hours: float) -> None:
        """Drop this instance's sessions with no activity for `timeout_hours`."""
        cutoff = self._clock.now() - timeout_hours * 3600.0
        for session in list(self.open_sessions.values()):
            if session.last_touched < cutoff:
                self.open_sessions.pop(session.id, None)

    async def close_idle(self, timeout_hours: float) -> int:
        """Close sessions with no activity for `timeout_hours` (the cleanup job): this
        instance's, and every idle session row of the database."""
        cutoff = self._clock.now() - timeout_hours * 3600.0
        now = self._clock.now()
        self.forget_idle(timeout_hours)

        return await self._db.write(lambda conn: repo.close_idle(conn, cutoff, now))
