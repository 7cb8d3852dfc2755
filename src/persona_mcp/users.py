"""Users as a whole: create one (their own Aria and Kira), or remove everything of one.

A user comes into being on first use (any door); `create` does the same on purpose and
says whether the user is new. `delete` stops the user's chatrooms, removes every row
that belongs to the user in one transaction (personas, conversations, memories and
their graph, archives, settings, sessions, tokens) and then what the services hold of
them in memory, so nothing of the user is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from persona_mcp.errors import NotFound
from persona_mcp.memory.pruning import PruningService
from persona_mcp.memory.service import MemoryService
from persona_mcp.personas.service import PersonaService
from persona_mcp.personas.social import SocialService
from persona_mcp.simulation.chatroom import ChatroomService
from persona_mcp.store import users as repo
from persona_mcp.store.api import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deleted:
    user_id: str
    removed: dict[str, int]  # rows removed, by table
    persona_ids: list[str]  # the personas that went


class UserService:
    def __init__(
        self,
        db: Database,
        personas: PersonaService,
        memory: MemoryService,
        pruning: PruningService,
        social: SocialService,
        simulations: ChatroomService,
    ) -> None:
        self._db = db
        self._personas = personas
        self._memory = memory
        self._pruning = pruning
        self._social = social
        self._simulations = simulations

    async def create(self, user_id: str) -> bool:
        """Make sure the user exists (with their own Aria and Kira); True when new."""
        existed = self._personas.seeded(user_id) or await self._db.read(
            lambda conn: repo.exists(conn, user_id)
        )
        await self._personas.ensure_user(user_id)
        return not existed

    async def delete(self, user_id: str) -> Deleted:
        """Remove everything of a user; NotFound when the server holds nothing of them."""
        if not self._personas.seeded(user_id) and not await self._db.read(
            lambda conn: repo.exists(conn, user_id)
        ):
            raise NotFound(f"No user {user_id!r}", {"user_id": user_id})
        await self._simulations.stop_user(user_id)
        removed = await self._db.write(lambda conn: repo.delete(conn, user_id))
        persona_ids = self._personas.forget_user(user_id)
        for persona_id in persona_ids:
            self._social.forget(persona_id)
        self._memory.forget_user(user_id)
        self._pruning.forget_user(user_id)
        log.info("user deleted: %d rows in %d tables", sum(removed.values()), len(removed))
        return Deleted(user_id, removed, persona_ids)
