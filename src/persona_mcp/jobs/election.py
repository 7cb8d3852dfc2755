"""Which instance runs a background job this interval.

Every instance keeps its own timer for each job (decay, session cleanup), and on each
tick asks the election `run(name, interval, work)`:

- `Always` (SQLite: one process holds the database) runs `work` every time;
- `Advisory` (PostgreSQL) runs it inside a transaction holding the job's advisory lock,
  and only when the shared `job_runs` record shows no run within the last interval
  (less `SLACK`, for timers that tick a little early or clocks a little apart); the run
  is recorded in the same transaction (see `store.job_runs`). Timers that are offset
  across instances therefore still give one run per interval, by whichever instance
  ticks first once the interval has passed; if that instance dies, the next tick of
  another takes over.

The same lock, without the record, serves work that must not run twice at once across
instances (automatic pruning of one persona): `exclusive(key)`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from persona_mcp.clock import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")
SLACK = 0.1  # a tick up to a tenth of the interval early still counts as a new interval


class Election(Protocol):
    skipped: int  # ticks that found the job taken: running elsewhere, or run this interval

    async def run(
        self, name: str, interval_seconds: float, work: Callable[[], Awaitable[T]]
    ) -> tuple[bool, T | None]:
        """Run `work` if this instance is the one to run job `name` now: (ran, result)."""
        ...

    def exclusive(self, key: str) -> contextlib.AbstractAsyncContextManager[bool]:
        """Hold `key` across instances for the block if no one holds it: yields whether
        it is held here (the block then runs alone)."""
        ...


class Always:
    """One instance: every tick runs, every key is free."""

    skipped = 0

    async def run(
        self, name: str, interval_seconds: float, work: Callable[[], Awaitable[T]]
    ) -> tuple[bool, T | None]:
        return True, await work()

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[bool]:
        yield True


class Advisory:
    """Several instances over one PostgreSQL database."""

    def __init__(self, url: str, clock: Clock, instance_id: str) -> None:
        self._url = url
        self._clock = clock
        self._instance = instance_id
        self.skipped = 0

    async def run(
        self, name: str, interval_seconds: float, work: Callable[[], Awaitable[T]]
    ) -> tuple[bool, T | None]:
        from persona_mcp.store import job_runs, notify

        async with await notify.connect(self._url) as conn, conn.transaction():
            if not await job_runs.try_lock(conn, name):
                self.skipped += 1
                return False, None  # another instance is running it right now
            now = self._clock.now()
            last = await job_runs.last_run(conn, name)
            if last is not None and now - last < interval_seconds * (1 - SLACK):
                self.skipped += 1
                return False, None  # run within this interval already, here or elsewhere
            started = time.perf_counter()
            result = await work()
            await job_runs.record(conn, name, now, self._instance, time.perf_counter() - started)
        return True, result

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[bool]:
        from persona_mcp.store import job_runs, notify

        async with await notify.connect(self._url) as conn, conn.transaction():
            yield await job_runs.try_lock(conn, key)
