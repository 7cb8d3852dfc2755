"""Visual context: what a persona sees now (a scene, what the user shows), from
`visual.update`.

Each update replaces the last for that (user, persona) and is kept as an episodic memory
of type `visual`, in the same transaction. It counts as current until the next update or
until it expires (by the injected clock); while current, `persona.status` shows it and
chat prompts carry it as a delimited data block, like recalled memories.
"""

from __future__ import annotations

from dataclasses import replace

from persona_mcp.clock import Clock
from persona_mcp.conversation.prompt import day_time
from persona_mcp.memory.service import MemoryInput, MemoryService
from persona_mcp.store import visual as repo
from persona_mcp.store.api import Connection, Database
from persona_mcp.store.memories import MemoryRow
from persona_mcp.store.personas import PersonaRow
from persona_mcp.store.visual import VisualRow


class VisualService:
    def __init__(self, db: Database, clock: Clock, memory: MemoryService) -> None:
        self._db = db
        self._clock = clock
        self._memory = memory

    async def update(
        self,
        user_id: str,
        persona: PersonaRow,
        description: str,
        tags: list[str],
        expires_in_seconds: float | None,
    ) -> VisualRow:
        self._memory.check_content(description, "description")
        now = self._clock.now()
        expires = now + expires_in_seconds if expires_in_seconds is not None else None
        row = VisualRow(user_id, persona.id, description, tags, now, expires, None)
        kept: list[VisualRow] = []

        def also(conn: Connection, memories: list[MemoryRow]) -> None:
            kept.append(replace(row, memory_id=memories[0].id))
            repo.put(conn, kept[0])

        await self._memory.store(
            user_id,
            persona,
            [
                MemoryInput(
                    content=description,
                    memory_type="visual",
                    metadata={"kind": "visual_context", "tags": tags},
                    occurred_at=now,
                    source="visual",
                )
            ],
            also=also,
        )
        return kept[0]

    async def current(self, user_id: str, persona_id: str) -> VisualRow | None:
        """The visual context now, or None when there is none or it has expired."""
        row = await self._db.read(lambda conn: repo.get(conn, user_id, persona_id))
        if row is None or (row.expires_at is not None and row.expires_at <= self._clock.now()):
            return None
        return row

    async def prompt_lines(self, user_id: str, persona: PersonaRow) -> list[str]:
        """The current visual context as lines of data for a chat prompt."""
        row = await self.current(user_id, persona.id)
        if row is None:
            return []
        tags = f" (tags: {', '.join(row.tags)})" if row.tags else ""
        return [f"[{day_time(row.updated_at)}] {row.description}{tags}"]
