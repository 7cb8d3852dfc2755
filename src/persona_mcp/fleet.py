"""The other instances over the same database: what this one tells them, and hears.

On SQLite there are none (one process holds the database, see `store.lock`): `Solo`
does nothing. On PostgreSQL any number of `persona-mcp serve` processes share the
record, and each keeps write-through copies of small tables (personas, their states,
relationships, moods, configs). `Peers` keeps those copies right across instances:

- after a write commits, the service calls `touch(kind, user_id)`; the registry awaits
  `flush()` before any reply leaves, so the NOTIFY is sent before anything is
  acknowledged, and every other instance reloads what that kind of change covers (a
  user's personas, say);
- `sync()` runs before every request: every NOTIFY carries a number from one
  sequence, so the instance reads how far the sequence has gone and waits until it has
  heard (and applied) every number up to there: every change committed before the
  request arrived is then applied here, and a persona created through A is listed by B
  at once. Concurrent requests share one read; a number that never arrives (its sender
  died between taking it and committing) is given up after `GAP_SECONDS`, and everything
  is reloaded;
- events (`events.EventBus.relay`) are sent the same way, and each instance delivers
  the events of the others to its own subscribers, once;
- after the listening connection was lost and comes back, what was sent meanwhile is
  gone, so everything is reloaded (`on_resync`).

A payload is its number, a space and JSON: `{"o": origin, "k": kind, "u": user}` for a
change, `{"o": origin, "e": event}` for an event (or `@id` of one parked in a table).
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
GAP_SECONDS = 2.0


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
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: asyncio.Future[None] | None = None  # the batch being sent
        # How far this instance has heard: every number up to `_upto`, and these above.
        self._upto = 0
        self._above: set[int] = set()
        self._gap_pending = False  # a `_gap` check is scheduled for numbers heard early
        self._joining: asyncio.Future[None] | None = None  # syncs whose read is not sent
        self._sync_wake = asyncio.Event()
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []  # read, not yet heard
        self._applying: set[asyncio.Task[None]] = set()
        self.counts = {"sent": 0, "heard": 0, "events_in": 0, "syncs": 0, "resyncs": 0, "gaps": 0}

    # -- lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._listener.start()
        self._advance_to(await self._sender.high_water())
        self._tasks = [
            asyncio.create_task(self._pump(), name="fleet sender"),
            asyncio.create_task(self._sync_pump(), name="fleet sync"),
        ]

    async def close(self) -> None:
        await self._listener.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._applying, return_exceptions=True)
        await self._sender.close()
        for fut in [*(f for _, f in self._waiting), self._joining]:
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

    async def _pump(self) -> None:
        """Send what is queued, a batch per transaction."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox = self._outbox, []
            payloads = [text for text, _ in batch if text]
            inflight = self._inflight = asyncio.get_running_loop().create_future()
            try:
                await self._sender.send(payloads)
                self.counts["sent"] += len(payloads)
            except Exception:
                # Told nobody: the write has committed, so the reply still goes; the others
                # catch up when they next reload that user (or everything, after a gap).
                log.exception("fleet: could not notify the other instances")
            finally:
                for _, fut in batch:
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                inflight.set_result(None)
                self._inflight = None

    # -- catching up ---------------------------------------------------------------------

    async def sync(self) -> None:
        if not self._listener.connected.is_set():
            return  # reconnecting: the resync that follows reloads everything
        if self._joining is None:
            self._joining = asyncio.get_running_loop().create_future()
            self._sync_wake.set()
        self.counts["syncs"] += 1
        await asyncio.shield(self._joining)

    async def _sync_pump(self) -> None:
        """For the syncs waiting, read how far the numbers have gone (a read that starts
        after they were called), and let them go once everything up to there is heard."""
        loop = asyncio.get_running_loop()
        while True:
            await self._sync_wake.wait()
            self._sync_wake.clear()
            joining, self._joining = self._joining, None
            if joining is None:
                continue
            try:
                target = await self._sender.high_water()
            except Exception:
                log.exception("fleet: cannot read how far the others have gone; serving anyway")
                joining.set_result(None)
                continue
            self._waiting.append((target, joining))
            loop.call_later(GAP_SECONDS, self._gap, target)
            self._release()

    def _advance_to(self, number: int) -> None:
        if number > self._upto:
            self._upto = number
            self._above = {n for n in self._above if n > number}
        while self._upto + 1 in self._above:
            self._upto += 1
            self._above.discard(self._upto)

    def _mark(self, number: int) -> None:
        if number > self._upto:
            self._above.add(number)
            self._advance_to(self._upto)
            if self._above and not self._gap_pending:  # a hole below: filled, or given up
                self._gap_pending = True
                target = max(self._above)
                asyncio.get_running_loop().call_later(GAP_SECONDS, self._gap, target)
            self._release()

    def _release(self) -> None:
        """Let the syncs whose numbers are all heard go, once what those brought is
        applied (the reloads running now)."""
        ready = [f for n, f in self._waiting if n <= self._upto]
        if not ready:
            return
        self._waiting = [(n, f) for n, f in self._waiting if n > self._upto]
        pending = list(self._applying)

        def go() -> None:
            for fut in ready:
                if not fut.done():
                    fut.set_result(None)

        if not pending:
            go()
            return

        async def after() -> None:
            await asyncio.gather(*pending, return_exceptions=True)
            go()

        self._spawn(after())

    def _gap(self, target: int) -> None:
        """A number up to `target` has not come in GAP_SECONDS: its sender took it and
        never committed (or we missed it). Give it up, and reload everything."""
        self._gap_pending = False
        if self._upto >= target:
            return
        self.counts["gaps"] += 1
        log.warning("fleet: notifications up to %d did not all arrive; reloading", target)
        self._advance_to(target)
        self._spawn(self._reload_all())
        self._release()

    # -- hearing -------------------------------------------------------------------------

    def on_change(self, kind: ChangeKind, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def on_resync(self, handler: Callable[[], Awaitable[None]]) -> None:
        self._resyncs.append(handler)

    def _heard(self, text: str) -> None:
        self.counts["heard"] += 1
        number, _, body = text.partition(" ")
        try:
            seq = int(number)
        except ValueError:
            log.warning("fleet: ignored a payload without its number: %.80r", text)
            return
        if body.startswith("@"):
            self._spawn(self._fetch_parked(body))
        else:
            self._apply(body)
        self._mark(seq)

    def _apply(self, body: str) -> None:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            log.warning("fleet: ignored a payload that is not JSON: %.80r", body)
            return
        if message.get("o") == self.instance_id:
            return  # our own change or event: already applied here
        if "e" in message:
            topic, user_id, persona_id, params = message["e"]
            self.counts["events_in"] += 1
            self._deliver(Event(topic, user_id, persona_id, params))
        elif "k" in message:
            for handler in self._handlers.get(message["k"], []):
                self._spawn(handler(message["u"]))

    async def _fetch_parked(self, ref: str) -> None:
        body = await self._sender.fetch(ref)
        if body is not None:
            self._apply(body)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("fleet: applying a change from another instance failed")

        task = asyncio.create_task(run())
        self._applying.add(task)
        task.add_done_callback(self._applying.discard)

    async def _reload_all(self) -> None:
        self.counts["resyncs"] += 1
        for handler in self._resyncs:
            await handler()

    async def _resync(self) -> None:
        """Listening again after a lost connection: what was sent meanwhile is gone."""
        log.warning("fleet: listening again after a lost connection; reloading everything")
        target = await self._sender.high_water()
        # Counted as heard only once reloaded: a request waiting in `sync` meanwhile must
        # not go ahead on what this instance held before.
        await self._reload_all()
        self._advance_to(target)
        self._release()

    def status(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "shared": True,
            "listening": self._listener.connected.is_set(),
            "reconnects": self._listener.reconnects,
            "heard_up_to": self._upto,
            **self.counts,
        }
