"""The services' write-through copies against the record: a copy read again (all of it,
or one user's part) while a change lands on another connection keeps that change.

The read is held after it ran, its snapshot taken, while the change commits and enters
the copy; then it is let go. Without a second read, its older rows would replace the
copy and the change would vanish from it, though it is in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from persona_mcp.clock import ManualClock
from persona_mcp.config import Settings
from persona_mcp.personas.relationships import USER
from persona_mcp.personas.service import PersonaService
from persona_mcp.personas.social import SocialService
from persona_mcp.store.api import Connection, Database, Dialect
from persona_mcp.store.backends import open_store

T = TypeVar("T")
WAIT = 10.0  # seconds: the bound on waiting for the held read to have run


class HeldReads:
    """The store, whose next read (once `hold()` is called) is held after it ran until
    `release()`; every other call goes straight through."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.dialect: Dialect = db.dialect
        self._holding = False
        self.read_ran = asyncio.Event()
        self._released = asyncio.Event()

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def write(self, fn: Callable[[Connection], T]) -> T:
        return await self._db.write(fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        rows = await self._db.read(fn)
        if self._holding:
            self._holding = False
            self.read_ran.set()
            await self._released.wait()
        return rows

    def hold(self) -> None:
        self._holding = True

    def release(self) -> None:
        self._released.set()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[HeldReads]:
    db = HeldReads(open_store(settings))
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def while_reading(
    store: HeldReads, reading: Awaitable[None], change: Callable[[], Awaitable[Any]]
) -> None:
    """Make `change` once `reading`'s read has taken its snapshot, then let it finish."""
    store.hold()
    task = asyncio.ensure_future(reading)
    await asyncio.wait_for(store.read_ran.wait(), WAIT)
    await change()
    store.release()
    await task


async def juno(personas: PersonaService) -> None:
    await personas.create(
        "alice",
        name="Juno",
        description="A gardener who talks to bees.",
        personality_traits=["patient"],
        backstory="",
        topic_preferences={"gardening": 0.9},
        model=None,
    )


@pytest.mark.parametrize("reading", ["load", "reload_user"])
async def test_a_persona_created_while_the_personas_are_read_again_stays_listed(
    store: HeldReads, reading: str
) -> None:
    personas = PersonaService(store, ManualClock())
    await personas.load()
    await personas.ensure_user("alice")
    read = personas.load() if reading == "load" else personas.reload_user("alice")
    await while_reading(store, read, lambda: juno(personas))
    assert personas.resolve("alice", "Juno").name == "Juno"
    assert [p.name for p in personas.visible("alice")] == ["Aria", "Kira", "Juno"]
    assert personas.seeded("alice")


@pytest.mark.parametrize("reading", ["load", "reload_user"])
async def test_an_exchange_made_while_the_relationships_are_read_again_is_kept(
    store: HeldReads, reading: str
) -> None:
    clock = ManualClock()
    personas = PersonaService(store, clock)
    social = SocialService(store, clock, personas)
    await personas.load()
    await personas.ensure_user("alice")
    await social.load()
    aria = personas.resolve("alice", "Aria")
    read = social.load() if reading == "load" else social.reload_user("alice")

    async def exchange() -> None:
        await social.after_exchange("alice", aria, "I love your stories, thank you!")

    await while_reading(store, read, exchange)
    kept = social.relationship("alice", aria.id, USER)
    assert kept is not None and kept.interaction_count == 1
