"""Memory decay: importance ages with time, never below a floor.

Modes (rate is per hour, h the hours elapsed): linear `i - rate*h`, exponential
`i*exp(-rate*h)`, logarithmic `i - rate*ln(1+h)`, step (`rate*24` once per full day),
access_based (exponential, slowed by each access). A pass is one UPDATE; the background
job runs one pass every `interval_seconds` while enabled. Time comes from the injected
clock; only the job's wait between passes uses real time. With several instances on one
database each keeps a timer, and the election (`jobs.election`) lets one pass run per
interval across them; a change of the config here is announced (`decay`), and the
others follow it (start, stop, new interval).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from persona_mcp.clock import Clock
from persona_mcp.config import Settings
from persona_mcp.events import EventBus
from persona_mcp.fleet import Fleet, Solo
from persona_mcp.jobs.election import Always, Election
from persona_mcp.store import config as config_store
from persona_mcp.store import lifecycle as repo
from persona_mcp.store.api import Database

log = logging.getLogger(__name__)

DecayMode = Literal["linear", "exponential", "logarithmic", "step", "access_based"]


@dataclass(frozen=True)
class DecayConfig:
    mode: str = "exponential"
    rate: float = 0.002  # per hour: about 4.7% a day in exponential mode
    interval_seconds: float = 6 * 3600.0
    min_importance: float = 0.1
    enabled: bool = True


class DecayService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        events: EventBus | None = None,
        fleet: Fleet | None = None,
        election: Election | None = None,
    ) -> None:
        self._events = events or EventBus()
        self._fleet = fleet or Solo()
        self._election = election or Always()
        self.background_runs = 0  # passes this instance's timer ran (the others skipped)
        self._db = db
        self._clock = clock
        self._settings = settings
        self._config: DecayConfig | None = None
        self._job: asyncio.Task[None] | None = None
        self._next_run_at: float | None = None
        self._lock = asyncio.Lock()

    async def config(self) -> DecayConfig:
        if self._config is None:
            stored = await self._db.read(
                lambda conn: config_store.get(conn, config_store.SERVER, "decay")
            )
            defaults = DecayConfig(
                interval_seconds=self._settings.decay_interval_hours * 3600.0,
                enabled=self._settings.background_processing,
            )
            self._config = DecayConfig(**{**asdict(defaults), **(stored or {})})
        return self._config

    async def set_config(self, **changes: Any) -> DecayConfig:
        """Change some fields, persist, and apply to the running job."""
        current = await self.config()
        updated = replace(current, **{k: v for k, v in changes.items() if v is not None})
        now = self._clock.now()
        await self._db.write(
            lambda conn: config_store.put(conn, config_store.SERVER, "decay", asdict(updated), now)
        )
        self._config = updated
        self._fleet.touch("decay", config_store.SERVER)
        if self.running:
            self._restart()
        return updated

    async def reload(self, follow: bool = True) -> None:
        """Another instance changed the config: read it again, and with `follow` (a
        server running its background jobs) start, stop or restart the job to match."""
        self._config = None
        config = await self.config()
        if not follow:
            return
        if config.enabled and self._settings.background_processing:
            if self.running:
                self._restart()
            else:
                await self.start_job()
        elif self.running:
            await self.stop_job()

    # -- passes ------------------------------------------------------------------------

    async def run_pass(
        self,
        *,
        trigger: str,
        user_id: str | None = None,
        persona_id: str | None = None,
        mode: str | None = None,
        rate: float | None = None,
        hours: float | None = None,
    ) -> dict[str, Any]:
        config = await self.config()
        mode = mode or config.mode
        rate = config.rate if rate is None else rate
        now = self._clock.now()
        started = time.perf_counter()

        def write(conn: Any) -> int:
            changed = repo.decay(
                conn,
                mode=mode,
                rate=rate,
                floor=config.min_importance,
                now=now,
                hours=hours,
                user_id=user_id,
                persona_id=persona_id,
            )
            repo.record_decay(
                conn,
                trigger=trigger,
                user_id=user_id,
                persona_id=persona_id,
                mode=mode,
                rate=rate,
                hours=hours,
                ran_at=now,
                decayed=changed,
                seconds=time.perf_counter() - started,
            )
            return changed

        async with self._lock:  # passes never overlap
            decayed = await self._db.write(write)
        if decayed:
            params: dict[str, Any] = {
                "persona_id": persona_id,
                "memory_ids": [],
                "change": "decayed",
            }
            if user_id:
                self._events.publish(user_id, "memory.changed", params)
            else:
                self._events.publish_all("memory.changed", params)
        return {
            "decayed": decayed,
            "mode": mode,
            "rate": rate,
            "hours": hours,
            "min_importance": config.min_importance,
            "seconds": round(time.perf_counter() - started, 4),
        }

    # -- the background job ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._job is not None and not self._job.done()

    async def start_job(self) -> None:
        if not self.running:
            self._job = asyncio.create_task(self._loop())

    def _restart(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self._job = asyncio.create_task(self._loop())

    async def stop_job(self) -> None:
        job, self._job = self._job, None
        self._next_run_at = None
        if job is not None:
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            interval = (await self.config()).interval_seconds
            self._next_run_at = self._clock.now() + interval
            await asyncio.sleep(interval)
            try:
                ran, result = await self._election.run(
                    "decay", interval, lambda: self.run_pass(trigger="background")
                )
                if ran and result is not None:
                    self.background_runs += 1
                    log.info("decay pass: %s memories aged", result["decayed"])
            except Exception:
                log.exception("decay pass failed; will try again next interval")

    async def stats(self) -> dict[str, Any]:
        config = await self.config()
        totals = await self._db.read(repo.decay_totals)
        return {
            "running": self.running,
            **asdict(config),
            **totals,
            "next_run_at": self._next_run_at if self.running else None,
        }
