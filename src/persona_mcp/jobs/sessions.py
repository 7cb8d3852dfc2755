"""Closes sessions idle for SESSION_TIMEOUT_HOURS (once per interval across instances on
one database: see `election`)."""

from __future__ import annotations

import asyncio
import logging

from persona_mcp.jobs.election import Always, Election
from persona_mcp.sessions import SessionService

log = logging.getLogger(__name__)


class SessionCleanupJob:
    def __init__(
        self, sessions: SessionService, timeout_hours: float, election: Election | None = None
    ) -> None:
        self._sessions = sessions
        self._election = election or Always()
        self._timeout_hours = timeout_hours
        # Check often enough that a session never outlives its timeout by more than a quarter.
        self.interval_seconds = min(3600.0, timeout_hours * 3600.0 / 4)
        self._task: asyncio.Task[None] | None = None
        self.closed_total = 0
        self.runs = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def run_once(self) -> int:
        closed = await self._sessions.close_idle(self._timeout_hours)
        self.runs += 1
        self.closed_total += closed
        if closed:
            log.info("closed %d idle sessions", closed)
        return closed

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                ran, _ = await self._election.run(
                    "session_cleanup", self.interval_seconds, self.run_once
                )
                if not ran:  # another instance closed the rows; these are ours alone
                    self._sessions.forget_idle(self._timeout_hours)
            except Exception:
                log.exception("session cleanup failed; will retry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
