"""The other instances over the same database: what this one tells them, and hears.

On SQLite there are none (one process holds the database, see `store.lock`): `Solo`
does nothing. On PostgreSQL any number of `persona-mcp serve` processes share the
record, and each keeps write-through copies of small tables (personas, their states,
relationships, moods, configs). `Peers` keeps those copies right across instances:

- after a write commits, the service calls `touch(kind, user_id)`; the registry awaits
  `flush()` before any reply leaves, so the NOTIFY is sent before anything is
  acknowledged, and every other instance reloads what that kind of change covers (a
  user's personas, say);
- `sync()` runs before every request: it sends a NOTIFY to this instance itself and
  waits for it to come back. PostgreSQL delivers notifications in commit order, so once
  it is back, every change committed before the request arrived has been applied here:
  a persona created through A is listed by B at once. Concurrent requests share one
  round trip;
- events (`events.EventBus.relay`) are sent the same way, and each instance delivers
  the events of the others to its own subscribers, once;
- after the listening connection was lost and comes back, what was sent meanwhile is
  gone, so everything is reloaded (`on_resync`).

A payload is JSON: `{"o": origin, "k": kind, "u": user}` for a change,
`{"o": origin, "e": event}` for an event, `{"o": origin, "b": n}` for a barrier.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import orjson

from persona_mcp.events import Event

log = logging.getLogger(__name__)

# What a change touched: a user's personas (rows, states, active persona, seeding), their
# relationships and moods, one of their configs, or the server's decay config.
ChangeKind = Literal["personas", "social", "config", "decay"]
Handler = Callable[[str], Awaitable[None]]
SYNC_TIMEOUT_SECONDS = 5.0


class Fleet(Protocol):
    instance_id: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    shared: bool

    def touch(self, kind: ChangeKind, user_id: str) -> None:
        """A committed write changed this: the other instances are told (see `flush`)."""
        ...

    async def flush(self) -> None:
        """Return once every change touched so far has been told to the other instances
        (the registry calls it before a reply leaves)."""
        ...

    def relay(self, event: Event) -> None:
        """Send an event published here to the other instances (never waits)."""
        ...

    async def sync(self) -> None:
        """Return once every change committed elsewhere before this call is applied here."""
        ...

    def on_change(self, kind: ChangeKind, handler: Handler) -> None:
        """Run `handler(user_id)` when another instance reports a change of `kind`."""
        ...

    def on_resync(self, handler: Callable[[], Awaitable[None]]) -> None:
        """Run `handler()` when changes may have been missed (reload everything)."""
        ...

    def status(self) -> dict[str, Any]: ...


class Solo:
    """The only instance: nothing to tell, nothing to wait for."""

    shared = False

    def __init__(self) -> None:
        self.instance_id = uuid.uuid4().hex[:12]

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def touch(self, kind: ChangeKind, user_id: str) -> None:
        return None

    async def flush(self) -> None:
        return None

    def relay(self, event: Event) -> None:
        return None

    async def sync(self) -> None:
        return None

    def on_change(self, kind: ChangeKind, handler: Handler) -> None:
        return None

    def on_resync(self, handler: Callable[[], Awaitable[None]]) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "shared": False}


class Wire(Protocol):
    """How payloads travel (store.notify over PostgreSQL)."""

    async def send(self, payloads: list[str]) -> None: ...

    async def fetch(self, ref: str) -> str | None: ...


class Peers:
    """Several instances over one PostgreSQL database (see the module docstring)."""

    shared = True

    def __init__(self, url: str, bus_deliver: Callable[[Event], None]) -> None:
        from persona_mcp.store import notify  # psycopg is needed only with PostgreSQL

        self.instance_id = uuid.uuid4().hex[:12]
        self._deliver = bus_deliver
        self._sender = notify.Sender(url)
        self._listener = notify.Listener(url, self._heard, self._resync)
        self._handlers: dict[str, list[Handler]] = {}
        self._resyncs: list[Callable[[], Awaitable[None]]] = []
        self._outbox: list[tuple[str, asyncio.Future[None] | None]] = []
        self._wake = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[None] | None = None  # the batch being sent
        self._barrier = 0  # the last barrier number sent
        self._joining: asyncio.Future[None] | None = None  # the next barrier, not yet sent
        self._waiting: dict[int, asyncio.Future[None]] = {}  # sent, not yet back
        self._applying: set[asyncio.Task[None]] = set()
        self.counts = {"sent": 0, "heard": 0, "events_in": 0, "syncs": 0, "resyncs": 0}

    # -- lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._listener.start()
        self._pump_task = asyncio.create_task(self._pump(), name="fleet sender")

    async def close(self) -> None:
        await self._listener.close()
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
        await asyncio.gather(*self._applying, return_exceptions=True)
        await self._sender.close()
        for fut in [*self._waiting.values(), self._joining]:
            if fut is not None and not fut.done():
                fut.set_result(None)

    # -- telling -------------------------------------------------------------------------

    def _post(self, message: dict[str, Any]) -> None:
        self._outbox.append((orjson.dumps({"o": self.instance_id, **message}).decode(), None))
        self._wake.set()

    def touch(self, kind: ChangeKind, user_id: str) -> None:
        text = orjson.dumps({"o": self.instance_id, "k": kind, "u": user_id}).decode()
        if not any(t == text for t, _ in self._outbox):  # one is enough per batch
            self._outbox.append((text, None))
            self._wake.set()

    async def flush(self) -> None:
        if not self._outbox:
            if self._inflight is not None:  # what was taken is being sent now
                await asyncio.shield(self._inflight)
            return
        fut = asyncio.get_running_loop().create_future()
        self._outbox.append(("", fut))
        self._wake.set()
        await fut

    def relay(self, event: Event) -> None:
        self._post({"e": [event.topic, event.user_id, event.persona_id, event.params]})

    async def sync(self) -> None:
        if not self._listener.connected.is_set():
            return  # reconnecting: the resync that follows reloads everything
        if self._joining is None:
            self._joining = asyncio.get_running_loop().create_future()
            self._wake.set()
        fut = self._joining
        self.counts["syncs"] += 1
        try:
            await asyncio.wait_for(asyncio.shield(fut), SYNC_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("fleet: no barrier back in %.0f s; serving anyway", SYNC_TIMEOUT_SECONDS)

    async def _pump(self) -> None:
        """Send what is queued, in batches: changes and events first, then a barrier that
        every sync() called before this batch was taken waits for."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox = self._outbox, []
            payloads = [text for text, _ in batch if text]
            joining, self._joining = self._joining, None
            if joining is not None:
                self._barrier += 1
                self._waiting[self._barrier] = joining
                payloads.append(orjson.dumps({"o": self.instance_id, "b": self._barrier}).decode())
            inflight = self._inflight = asyncio.get_running_loop().create_future()
            try:
                await self._sender.send(payloads)
                self.counts["sent"] += len(payloads)
            except Exception:
                # Told nobody: the others reload everything when their listener sees a
                # gap, but not for this; the reply still goes (the write has committed).
                log.exception("fleet: could not notify the other instances")
                if joining is not None:
                    self._waiting.pop(self._barrier, None)
                    if not joining.done():
                        joining.set_result(None)
            finally:
                for _, fut in batch:
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                inflight.set_result(None)
                self._inflight = None

    # -- hearing -------------------------------------------------------------------------

    def on_change(self, kind: ChangeKind, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def on_resync(self, handler: Callable[[], Awaitable[None]]) -> None:
        self._resyncs.append(handler)

    def _heard(self, text: str) -> None:
        self.counts["heard"] += 1
        if text.startswith("@"):
            self._spawn(self._fetch_parked(text))
            return
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            log.warning("fleet: ignored a payload that is not JSON: %.80r", text)
            return
        if message.get("o") == self.instance_id:
            if "b" in message:
                self._barrier_back(int(message["b"]))
            return  # our own change or event: already applied here
        if "e" in message:
            topic, user_id, persona_id, params = message["e"]
            self.counts["events_in"] += 1
            self._deliver(Event(topic, user_id, persona_id, params))
        elif "k" in message:
            for handler in self._handlers.get(message["k"], []):
                self._spawn(handler(message["u"]))

    def _barrier_back(self, number: int) -> None:
        """Notifications arrive in order: by now every change before it is being applied;
        the barrier resolves once those reloads have finished."""
        pending = list(self._applying)
        done = [n for n in self._waiting if n <= number]
        futures = [self._waiting.pop(n) for n in done]

        async def release() -> None:
            await asyncio.gather(*pending, return_exceptions=True)
            for fut in futures:
                if not fut.done():
                    fut.set_result(None)

        if pending:
            self._spawn(release())
        else:
            for fut in futures:
                if not fut.done():
                    fut.set_result(None)

    async def _fetch_parked(self, ref: str) -> None:
        text = await self._sender.fetch(ref)
        if text is not None:
            self._heard(text)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("fleet: applying a change from another instance failed")

        task = asyncio.create_task(run())
        self._applying.add(task)
        task.add_done_callback(self._applying.discard)

    async def _resync(self) -> None:
        self.counts["resyncs"] += 1
        log.warning("fleet: listening again after a lost connection; reloading everything")
        for handler in self._resyncs:
            await handler()

    def status(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "shared": True,
            "listening": self._listener.connected.is_set(),
            "reconnects": self._listener.reconnects,
            **self.counts,
        }
