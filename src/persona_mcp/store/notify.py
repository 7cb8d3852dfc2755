"""PostgreSQL LISTEN/NOTIFY: the wire between instances that share one database.

`Listener` holds one connection per instance, LISTENs on `CHANNEL` and hands every
payload to a callback on the event loop, reconnecting (with a growing pause) when the
connection drops; after a reconnect it calls `on_reconnect`, since what was notified
meanwhile is lost. `Sender` owns one autocommit connection and sends payloads in
batches: one statement, one transaction, so they arrive together and in order.

Every payload is numbered from the `fleet_seq` sequence as it is sent (`N payload`), so
an instance can tell whether it has heard everything sent before a moment: read the
sequence (`high_water`), then wait until every number up to it has arrived.

A payload is text under PostgreSQL's 8000-byte limit; a larger one is parked in
`fleet_messages` and only its id is notified (`park`/`fetch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

import psycopg

log = logging.getLogger(__name__)

AsyncConn = psycopg.AsyncConnection[tuple[object, ...]]

CHANNEL = "persona_mcp"
MAX_PAYLOAD = 7000  # bytes; PostgreSQL refuses 8000 and more
PARKED_SECONDS = 600.0  # parked messages older than this are removed by later ones
RECONNECT_MAX_SECONDS = 5.0


async def connect(url: str) -> AsyncConn:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


class Listener:
    def __init__(
        self,
        url: str,
        on_payload: Callable[[str], None],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self._url = url
        self._on_payload = on_payload
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def start(self) -> None:
        """Start listening; returns once the first LISTEN is in place."""
        self._task = asyncio.create_task(self._run(), name="fleet listener")
        waiter = asyncio.create_task(self.connected.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:  # it can only end by failing
            waiter.cancel()
            self._task.result()

    async def _run(self) -> None:
        pause = 0.1
        first = True
        while True:
            try:
                conn = await connect(self._url)
            except psycopg.OperationalError:
                if first:
                    raise
                log.warning("fleet listener: cannot connect; retrying in %.1f s", pause)
                await asyncio.sleep(pause)
                pause = min(RECONNECT_MAX_SECONDS, pause * 2)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    if not first:
                        self.reconnects += 1
                        await self._on_reconnect()
                    first = False
                    pause = 0.1
                    async for note in conn.notifies():
                        self._on_payload(note.payload)
            except psycopg.OperationalError:
                log.warning("fleet listener: connection lost; reconnecting", exc_info=True)
            except Exception:  # a fault of ours must not leave the instance deaf
                log.exception("fleet listener failed; listening again")
                await asyncio.sleep(pause)
            finally:
                self.connected.clear()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class Sender:
    """Sends payloads on one connection, a batch per transaction, in the order given."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: AsyncConn | None = None
        self._lock = asyncio.Lock()
        self._reader: AsyncConn | None = None  # high_water's, beside the sending one
        self._read_lock = asyncio.Lock()

    async def send(self, payloads: Sequence[str]) -> None:
        if not payloads:
            return
        async with self._lock:
            for attempt in (1, 2):  # a dropped connection is opened again once
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = await connect(self._url)
                    await self._send(self._conn, payloads)
                    return
                except psycopg.OperationalError:
                    if self._conn is not None:
                        await self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise

    @staticmethod
    async def _send(conn: AsyncConn, payloads: Sequence[str]) -> None:
        big = [p for p in payloads if len(p.encode()) > MAX_PAYLOAD]
        refs: dict[str, str] = {}
        async with conn.transaction():
            for payload in big:
                cur = await conn.execute(
                    "INSERT INTO fleet_messages (payload) VALUES (%s) RETURNING id", (payload,)
                )
                row = await cur.fetchone()
                assert row is not None
                refs[payload] = f"@{row[0]}"
            if big:
                await conn.execute(
                    "DELETE FROM fleet_messages"
                    " WHERE created_at < now() - make_interval(secs => %s)",
                    (PARKED_SECONDS,),
                )
            texts = [refs.get(p, p) for p in payloads]
            calls = ", ".join(
                ["pg_notify(%s, nextval('fleet_seq')::text || ' ' || %s::text)"] * len(texts)
            )
            await conn.execute(f"SELECT {calls}", [v for t in texts for v in (CHANNEL, t)])

    async def high_water(self) -> int:
        """The largest number handed out to a payload so far (0 before the first)."""
        async with self._read_lock:
            for attempt in (1, 2):
                try:
                    if self._reader is None or self._reader.closed:
                        self._reader = await connect(self._url)
                    cur = await self._reader.execute("SELECT last_value, is_called FROM fleet_seq")
                    row = await cur.fetchone()
                    assert row is not None
                    last = cast(int, row[0])
                    return last if row[1] else last - 1
                except psycopg.OperationalError:
                    self._reader = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    async def fetch(self, ref: str) -> str | None:
        """The payload parked under `ref` ('@<id>'), or None once removed."""
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await connect(self._url)
            cur = await self._conn.execute(
                "SELECT payload FROM fleet_messages WHERE id = %s", (int(ref[1:]),)
            )
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def close(self) -> None:
        for conn in (self._conn, self._reader):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
        self._conn = self._reader = None
