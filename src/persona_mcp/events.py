"""Events: what changed, pushed to the connections that asked for it.

Services publish after a change has committed; doors subscribe for their connection.
An event reaches only subscriptions of the same user (and of the same persona when the
subscription names one). It is serialized once, as the JSON-RPC notification whose
method is the topic, however many subscribers receive it. Each subscription has a
bounded queue: a slow consumer loses events (counted in `lost`), it never holds up the
publisher or the other subscribers.

    bus = EventBus()
    sub = bus.subscribe("alice", {"memory.changed"}, persona_id=None)
    bus.publish("alice", "memory.changed", {"persona_id": p, "memory_ids": ids, ...})
    event = await sub.next()          # or: async for event in sub
    sub.close()

With several instances over one database (see `fleet`), the bus has a `relay`: every
event published here is also handed to it once, and the other instances deliver it to
their own subscribers through `deliver`, which never relays again. An event for every
user (`publish_all`, the decay pass's) travels with user `*`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson

Topic = Literal["persona.state", "memory.changed", "conversation.turn", "simulation.turn"]
TOPICS: frozenset[str] = frozenset(get_args(Topic))
MemoryChange = Literal["stored", "updated", "deleted", "pruned", "restored", "decayed"]
QUEUE_SIZE = 1024
EVERY_USER = "*"  # the user of an event for everyone subscribed (only ever relayed)


@dataclass
class Event:
    topic: str
    user_id: str
    persona_id: str | None
    params: dict[str, Any]
    _text: str | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The JSON-RPC notification, serialized once for every subscriber."""
        if self._text is None:
            self._text = orjson.dumps(
                {"jsonrpc": "2.0", "method": self.topic, "params": self.params}
            ).decode()
        return self._text


class Subscription:
    """One consumer's interest: topics, an optional persona, and a bounded queue."""

    def __init__(
        self, bus: EventBus, sub_id: int, user_id: str, topics: set[str], persona_id: str | None
    ) -> None:
        self.id = sub_id
        self.user_id = user_id
        self.topics = topics
        self.persona_id = persona_id
        self.delivered = 0
        self.lost = 0
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self.closed = False

    def wants(self, event: Event) -> bool:
        if event.topic not in self.topics or event.user_id != self.user_id:
            return False
        return self.persona_id is None or event.persona_id in (None, self.persona_id)

    def offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
            self.delivered += 1
        except asyncio.QueueFull:
            self.lost += 1

    async def next(self) -> Event | None:
        """The next event, or None once the subscription is closed."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self.next()) is not None:
            yield event

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._drop(self)
            with contextlib.suppress(asyncio.QueueFull):  # then `closed` ends the drain
                self._queue.put_nowait(None)


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[str, dict[int, Subscription]] = {}
        self._ids = itertools.count(1)
        self.published = 0
        self.relayed = 0  # events that came from other instances
        # Set by the fleet when other instances share the database: sends an event to them.
        self.relay: Callable[[Event], None] | None = None

    def subscribe(
        self, user_id: str, topics: Iterable[str], persona_id: str | None = None
    ) -> Subscription:
        unknown = set(topics) - TOPICS
        if unknown:
            raise ValueError(f"unknown topics: {', '.join(sorted(unknown))}")
        sub = Subscription(self, next(self._ids), user_id, set(topics), persona_id)
        self._subs.setdefault(user_id, {})[sub.id] = sub
        return sub

    def _drop(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.user_id)
        if subs is not None:
            subs.pop(sub.id, None)
            if not subs:
                del self._subs[sub.user_id]

    def has_subscribers(self, user_id: str) -> bool:
        """Whether an event for this user may reach anyone (on another instance too)."""
        return self.relay is not None or bool(self._subs.get(user_id))

    def subscribed_users(self) -> list[str]:
        return list(self._subs)

    def publish(
        self, user_id: str, topic: Topic, params: dict[str, Any], persona_id: str | None = None
    ) -> None:
        """Offer an event to every interested subscription of `user_id` (never blocks)."""
        if self.relay is None and not self._subs.get(user_id):
            return
        event = Event(topic, user_id, persona_id or params.get("persona_id"), params)
        self.published += 1
        if self.relay is not None:
            self.relay(event)
        self._offer(event)

    def publish_all(self, topic: Topic, params: dict[str, Any]) -> None:
        """An event for every subscribed user, here and on the other instances."""
        persona_id = params.get("persona_id")
        for user in self.subscribed_users():
            self.published += 1
            self._offer(Event(topic, user, persona_id, params))
        if self.relay is not None:
            self.relay(Event(topic, EVERY_USER, persona_id, params))

    def deliver(self, event: Event) -> None:
        """An event another instance published: offered here only, never relayed."""
        self.relayed += 1
        if event.user_id == EVERY_USER:
            for user in self.subscribed_users():
                self._offer(Event(event.topic, user, event.persona_id, event.params))
        else:
            self._offer(event)

    def _offer(self, event: Event) -> None:
        for sub in list(self._subs.get(event.user_id, {}).values()):
            if sub.wants(event):
                sub.offer(event)

    def memory_changed(
        self, user_id: str, persona_id: str, memory_ids: list[str], change: MemoryChange
    ) -> None:
        if memory_ids or change == "decayed":
            self.publish(
                user_id,
                "memory.changed",
                {"persona_id": persona_id, "memory_ids": memory_ids, "change": change},
            )

    def stats(self) -> dict[str, int]:
        subs = [s for group in self._subs.values() for s in group.values()]
        return {
            "subscriptions": len(subs),
            "published": self.published,
            "relayed": self.relayed,
            "lost": sum(s.lost for s in subs),
        }
