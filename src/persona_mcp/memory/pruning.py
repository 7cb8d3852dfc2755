"""Pruning: remove the least valuable memories, safely and reversibly.

Rules that no setting changes: a memory with importance >= 0.8 or accessed 8 times or
more is never pruned, and no persona is taken below 10 memories. Pruned memories move
to an archive in bounded batches (one transaction each), so `memory.restore` can bring
them back exactly and a pass cut short loses nothing. When a persona passes
MAX_MEMORIES_PER_PERSONA it is pruned back to PRUNING_THRESHOLD in the background (by
one instance at a time when several share the database: `election.exclusive`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from persona_mcp.clock import Clock
from persona_mcp.config import Settings
from persona_mcp.errors import InvalidParams, NotFound
from persona_mcp.events import EventBus
from persona_mcp.fleet import Fleet, Solo
from persona_mcp.jobs.election import Always, Election
from persona_mcp.memory.service import MemoryService
from persona_mcp.store import config as config_store
from persona_mcp.store import graph as graph_repo
from persona_mcp.store import lifecycle as repo
from persona_mcp.store import memories as memory_repo
from persona_mcp.store.api import Connection, Database

log = logging.getLogger(__name__)

Strategy = Literal["importance_only", "importance_access", "importance_access_age"]


@dataclass(frozen=True)
class PruningConfig:
    strategy: str = "importance_access_age"
    prune_below: float = 0.5  # without a target count, prune what scores below this
    # Memories archived per transaction. Large: the rows a prune picks are spread over
    # all of the persona's pages, so each batch rewrites most of them again, and each
    # batch scores and sorts what is left of the persona again. A batch of 20,000 holds
    # the writer about as long as one of 4000 did when a prune copied and deleted rows.
    batch_size: int = 20_000
    auto_prune: bool = True
    max_memories_per_persona: int = 1000
    pruning_threshold: int = 900


class PruningService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        memory: MemoryService,
        events: EventBus | None = None,
        fleet: Fleet | None = None,
        election: Election | None = None,
    ) -> None:
        self._events = events or EventBus()
        self._fleet = fleet or Solo()
        self._election = election or Always()
        self._db = db
        self._clock = clock
        self._settings = settings
        self._memory = memory
        self._config: dict[str, PruningConfig] = {}  # per user
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._auto: set[tuple[str, str]] = set()

    def forget_user(self, user_id: str) -> None:
        """Drop a user's cached policy and locks: their data was deleted (user.delete) or
        replaced (state.load)."""
        self._config.pop(user_id, None)
        self._locks = {k: v for k, v in self._locks.items() if k[0] != user_id}
        self._auto = {k for k in self._auto if k[0] != user_id}

    async def config(self, user_id: str) -> PruningConfig:
        """The user's pruning policy (each user sets their own; defaults from settings)."""
        if user_id not in self._config:
            stored = await self._db.read(lambda conn: config_store.get(conn, user_id, "pruning"))
            defaults = PruningConfig(
                max_memories_per_persona=self._settings.max_memories_per_persona,
                pruning_threshold=self._settings.pruning_threshold,
            )
            self._config[user_id] = PruningConfig(**{**asdict(defaults), **(stored or {})})
        return self._config[user_id]

    async def set_config(self, user_id: str, **changes: Any) -> PruningConfig:
        current = await self.config(user_id)
        updated = replace(current, **{k: v for k, v in changes.items() if v is not None})
        if updated.pruning_threshold >= updated.max_memories_per_persona:
            raise InvalidParams.field("pruning_threshold", "must be below max_memories_per_persona")
        now = self._clock.now()
        await self._db.write(
            lambda conn: config_store.put(conn, user_id, "pruning", asdict(updated), now)
        )
        self._config[user_id] = updated
        self._fleet.touch("config", user_id)
        return updated

    def forget_config(self, user_id: str) -> None:
        """Another instance changed this user's policy: read it again on next use."""
        self._config.pop(user_id, None)

    async def recover(self) -> int:
        """Mark runs a killed process left unfinished; what they archived stays archived."""
        return await self._db.write(repo.mark_interrupted)

    # -- pruning ---------------------------------------------------------------------

    async def recommendations(
        self, user_id: str, persona_id: str, strategy: str | None, limit: int
    ) -> dict[str, Any]:
        config = await self.config(user_id)
        strategy = strategy or config.strategy
        now = self._clock.now()
        selection = await self._db.read(
            lambda conn: repo.select(
                conn, user_id, persona_id, strategy, now,
                target_count=None, prune_below=config.prune_below, limit=limit,
                content=True,
            )
        )  # fmt: skip
        return {
            "strategy": strategy,
            "total": selection.total,
            "protected": selection.protected,
            "prune_below": config.prune_below,
            "candidates": [
                {
                    "memory_id": c.id,
                    "content": c.content[:200],
                    "importance": round(c.importance, 4),
                    "access_count": c.access_count,
                    "age_days": round((now - c.created_at) / 86400.0, 2),
                    "score": round(c.score, 4),
                    "reason": repo.reason(strategy, f"{c.score:.3f}", None, config.prune_below),
                }
                for c in selection.candidates
            ],
        }

    async def prune(
        self,
        user_id: str,
        persona_id: str,
        *,
        strategy: str | None = None,
        target_count: int | None = None,
        dry_run: bool = False,
        trigger: str = "manual",
    ) -> dict[str, Any]:
        config = await self.config(user_id)
        strategy = strategy or config.strategy
        lock = self._locks.setdefault((user_id, persona_id), asyncio.Lock())
        async with lock:
            started = time.perf_counter()
            now = self._clock.now()
            # A dry run lists what a prune would take. A prune chooses each batch as it
            # archives it (the lowest scores as the rows are then), in the writer; the
            # first batch records the run, if it finds any.
            selection = None
            if dry_run or target_count is None:
                selection = await self._db.read(
                    lambda conn: repo.select(
                        conn, user_id, persona_id, strategy, now,
                        target_count=target_count, prune_below=config.prune_below,
                        limit=None if dry_run else 1,
                    )
                )  # fmt: skip
            result: dict[str, Any] = {
                "persona_id": persona_id,
                "strategy": strategy,
                "dry_run": dry_run,
            }
            if selection is not None and (dry_run or not selection.wanted):
                chosen = selection.candidates
                return result | {
                    "total_before": selection.total,
                    "protected": selection.protected,
                    "pruned_count": len(chosen),
                    "pruned_ids": [c.id for c in chosen],
                    "prune_run_id": None,
                    "remaining": selection.total,
                    "seconds": round(time.perf_counter() - started, 4),
                }
            run_id = str(uuid.uuid4())
            run = {
                "id": run_id,
                "user_id": user_id,
                "persona_id": persona_id,
                "strategy": strategy,
                "trigger": trigger,
                "target_count": target_count,
                "started_at": now,
            }
            pruned: list[str] = []
            before: repo.Archived | None = None
            while True:
                at = self._clock.now()
                batch = await self._db.write(
                    lambda conn, at=at, first=before is None: repo.archive_lowest(  # type: ignore[misc]
                        conn, run, strategy, at, target_count=target_count,
                        prune_below=config.prune_below, limit=config.batch_size, first=first,
                    )
                )  # fmt: skip
                before = before or batch
                done = batch.ids
                await self._forget_vectors(user_id, persona_id, done)
                pruned.extend(done)
                if len(done) < config.batch_size:
                    break
            result |= {"total_before": before.total, "protected": before.protected}
            if not pruned:
                return result | {
                    "pruned_count": 0,
                    "pruned_ids": [],
                    "prune_run_id": None,
                    "remaining": before.total,
                    "seconds": round(time.perf_counter() - started, 4),
                }
            seconds = time.perf_counter() - started
            finished = self._clock.now()
            await self._db.write(lambda conn: repo.finish_run(conn, run_id, finished, seconds))
            self._events.memory_changed(user_id, persona_id, pruned, "pruned")
            return result | {
                "pruned_count": len(pruned),
                "pruned_ids": pruned,
                "prune_run_id": run_id,
                "remaining": before.total - len(pruned),
                "seconds": round(seconds, 4),
            }

    async def _forget_vectors(self, user_id: str, persona_id: str, ids: list[str]) -> None:
        """Take archived memories out of the persona's vectors in memory, if loaded (a
        search never shows them meanwhile: it reads live rows only)."""
        key = (user_id, persona_id)
        if ids and self._memory.vectors.has(key):
            found = await self._db.read(lambda conn: memory_repo.rids_of(conn, ids))
            # A copy of the shelf's arrays: off the event loop.
            await asyncio.to_thread(self._memory.vectors.remove, key, [rid for rid, _ in found])

    async def prune_all(
        self, user_id: str, persona_ids: list[str], *, strategy: str | None, dry_run: bool
    ) -> dict[str, Any]:
        results = [
            await self.prune(user_id, pid, strategy=strategy, dry_run=dry_run, trigger="all")
            for pid in persona_ids
        ]
        return {
            "dry_run": dry_run,
            "pruned_count": sum(r["pruned_count"] for r in results),
            "personas": results,
        }

    async def after_store(self, user_id: str, persona_id: str) -> None:
        """The automatic trigger: bring a persona over its limit back to the threshold.
        Stores that land while it runs are caught by checking again when it ends."""
        key = (user_id, persona_id)
        if key in self._auto:
            return
        self._auto.add(key)
        try:
            if not await self._over_limit(user_id, persona_id):
                return  # the common case: no lock to take
            async with self._election.exclusive(f"prune:{user_id}:{persona_id}") as alone:
                if alone:  # else another instance is pruning it, and checks again after
                    await self._auto_prune(user_id, persona_id)
        finally:
            self._auto.discard(key)

    async def _over_limit(self, user_id: str, persona_id: str) -> bool:
        config = await self.config(user_id)
        if not config.auto_prune:
            return False
        return await self._memory.count(user_id, persona_id) > config.max_memories_per_persona

    async def _auto_prune(self, user_id: str, persona_id: str) -> None:
        for _ in range(10):  # bounded: each round removes at least one batch
            config = await self.config(user_id)
            count = await self._memory.count(user_id, persona_id)
            if not config.auto_prune or count <= config.max_memories_per_persona:
                return
            result = await self.prune(
                user_id, persona_id, target_count=config.pruning_threshold,
                trigger="automatic",
            )  # fmt: skip
            log.info(
                "persona %s had %s memories; pruned %s automatically",
                persona_id, count, result["pruned_count"],
            )  # fmt: skip
            if result["pruned_count"] == 0:
                return  # everything left is protected

    # -- restore and stats -----------------------------------------------------------------

    async def restore(
        self, user_id: str, *, memory_ids: list[str] | None, run_id: str | None
    ) -> list[str]:
        now = self._clock.now()

        def write(conn: Connection) -> list[tuple[int, str, str]]:
            ids = repo.archived_ids(conn, user_id, run_id=run_id, ids=memory_ids)
            restored = repo.restore(conn, ids)
            # Their graph edges come back too, and episodes rejoin the `next` chain.
            graph_repo.restore_edges(conn, user_id, _by_persona(restored), now)
            return restored

        restored = await self._db.write(write)
        if not restored:
            what = f"prune run {run_id!r}" if run_id else "those memory ids"
            raise NotFound(f"Nothing archived for {what}", {"prune_run_id": run_id})
        if memory_ids is not None and len(restored) < len(memory_ids):
            log.info("restore: %d of %d ids were archived", len(restored), len(memory_ids))
        await self._memory.reindex_rows([rid for rid, _, _ in restored])
        for persona_id, ids in _by_persona(restored).items():
            self._events.memory_changed(user_id, persona_id, ids, "restored")
        return [memory_id for _, memory_id, _ in restored]

    async def stats(self, user_id: str) -> dict[str, Any]:
        totals = await self._db.read(lambda conn: repo.prune_totals(conn, user_id))
        return {**totals, "config": asdict(await self.config(user_id))}


def _by_persona(restored: list[tuple[int, str, str]]) -> dict[str, list[str]]:
    """(rid, id, persona id) rows -> persona id -> memory ids."""
    out: dict[str, list[str]] = {}
    for _, memory_id, persona_id in restored:
        out.setdefault(persona_id, []).append(memory_id)
    return out
