"""Long-term memory: store, search, get, delete, stats, and the conversation hooks.

SQLite is the record: a memory, its embedding and its full-text entry are written in
one transaction, and nothing is acknowledged before it commits. The vector index is
derived from the `embedding` column, loaded per persona on first use and updated after
each commit. If the embedding model is still loading when a memory arrives, the memory
is stored at once (searchable lexically) and embedded by a background pass as soon as
the model is ready.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from persona_mcp import nlp
from persona_mcp.clock import Clock
from persona_mcp.config import Settings
from persona_mcp.conversation.engine import Exchange, RecalledMemory
from persona_mcp.embeddings.base import Embedder, Vectors
from persona_mcp.errors import NotFound, RateLimited, check_text
from persona_mcp.memory import retrieval
from persona_mcp.memory.dates import proximity, query_dates
from persona_mcp.memory.importance import ImportanceConfig, score_importance
from persona_mcp.memory.vectors import Key, VectorIndex
from persona_mcp.store import config as config_store
from persona_mcp.store import memories as repo
from persona_mcp.store.db import Database
from persona_mcp.store.memories import Filters, MemoryRow, NewMemory
from persona_mcp.store.personas import PersonaRow

log = logging.getLogger(__name__)

MemoryType = Literal[
    "conversation", "fact", "observation", "reflection", "episode", "psyche", "goal", "visual"
]
CONTEXT_CHARS = 400
RECALL_LIMIT = 5
RECALL_MIN_COSINE = 0.3
BACKFILL_BATCH = 256


@dataclass(frozen=True)
class MemoryInput:
    content: str
    memory_type: str = "conversation"
    importance: float | None = None
    emotional_valence: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    occurred_at: float | None = None
    source: str = "api"


@dataclass(frozen=True)
class Hit:
    memory: MemoryRow
    score: float
    lexical: float
    cosine: float | None


@dataclass
class PreparedExchange:
    key: Key
    memories: list[NewMemory]
    vectors: Vectors | None
    rids: list[int] = field(default_factory=list)


# Called after memories were committed for a persona (auto-pruning hooks in here).
AfterStore = Callable[[str, str], Coroutine[Any, Any, None]]


class MemoryService:
    def __init__(self, db: Database, clock: Clock, settings: Settings, embedder: Embedder) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self.embedder = embedder
        self.vectors = VectorIndex()
        self.ranking = retrieval.DEFAULT_RANKING
        self._shelf_locks: dict[Key, asyncio.Lock] = {}
        self._config: dict[str, ImportanceConfig] = {}
        self._backfill: asyncio.Task[None] | None = None
        self.after_store: list[AfterStore] = []
        self._hooks: set[asyncio.Task[None]] = set()

    @property
    def semantic(self) -> bool:
        """Whether memories get embeddings at all (EMBEDDING_PROVIDER is not 'none')."""
        return self.embedder.name != "none"

    async def start(self, backfill: bool = True) -> None:
        await self.embedder.start()
        if self.semantic and backfill:
            self.schedule_backfill()

    async def drain(self) -> None:
        """Wait for the hooks of committed stores (automatic pruning) to finish."""
        while self._hooks:
            await asyncio.gather(*list(self._hooks), return_exceptions=True)

    async def close(self, close_embedder: bool = True) -> None:
        await self.drain()
        if self._backfill is not None and not self._backfill.done():
            self._backfill.cancel()
            await asyncio.gather(self._backfill, return_exceptions=True)
        if close_embedder:
            await self.embedder.aclose()

    # -- configuration --------------------------------------------------------------

    async def importance_config(self, user_id: str) -> ImportanceConfig:
        if user_id not in self._config:
            data = await self._db.read(lambda conn: config_store.get(conn, user_id, "importance"))
            self._config[user_id] = (
                ImportanceConfig(data["weights"], data["base"], data["cap"])
                if data
                else ImportanceConfig()
            )
        return self._config[user_id]

    async def set_importance_config(self, user_id: str, config: ImportanceConfig) -> None:
        now = self._clock.now()
        await self._db.write(
            lambda conn: config_store.put(conn, user_id, "importance", config.as_dict(), now)
        )
        self._config[user_id] = config

    # -- storing ----------------------------------------------------------------------

    def check_content(self, content: str, field_name: str) -> None:
        check_text(content, field_name, self._settings.max_content_bytes)

    async def _prepare(
        self, user_id: str, persona: PersonaRow, items: Sequence[MemoryInput]
    ) -> PreparedExchange:
        config = await self.importance_config(user_id)
        now = self._clock.now()
        previous = await self._db.read(lambda conn: repo.latest_content(conn, user_id, persona.id))
        if len(items) > 8:  # scoring is ~0.1 ms a memory: keep big batches off the loop
            memories = await asyncio.to_thread(
                self._score, user_id, persona, items, config, previous, now
            )
        else:
            memories = self._score(user_id, persona, items, config, previous, now)
        vectors = None
        if self.semantic and self.embedder.ready and memories:
            vectors = await self.embedder.embed(
                [retrieval.embedding_text(m.content, m.context) for m in memories]
            )
            memories = [
                replace(m, embedding=repo.to_blob(v), embedding_model=self.embedder.model)
                for m, v in zip(memories, vectors, strict=True)
            ]
        return PreparedExchange((user_id, persona.id), memories, vectors)

    def _score(
        self,
        user_id: str,
        persona: PersonaRow,
        items: Sequence[MemoryInput],
        config: ImportanceConfig,
        previous: str | None,
        now: float,
    ) -> list[NewMemory]:
        """Valence, importance and context for each item (pure CPU work)."""
        memories = []
        for item in items:
            valence = (
                item.emotional_valence
                if item.emotional_valence is not None
                else nlp.sentiment(item.content)
            )
            occurred = item.occurred_at if item.occurred_at is not None else now
            breakdown = None
            importance = item.importance
            if importance is None:
                scored = score_importance(
                    item.content,
                    valence,
                    config,
                    topic_preferences=persona.topic_preferences,
                    persona_name=persona.name,
                    age_seconds=now - occurred,
                )
                importance = scored.importance
                breakdown = scored.breakdown()
            memories.append(
                NewMemory(
                    id=str(uuid.uuid4()),
                    persona_id=persona.id,
                    user_id=user_id,
                    content=item.content,
                    memory_type=item.memory_type,
                    importance=float(importance),
                    emotional_valence=float(valence),
                    created_at=now,
                    occurred_at=occurred,
                    source=item.source,
                    metadata=item.metadata,
                    importance_breakdown=breakdown,
                    context=(previous or "")[:CONTEXT_CHARS],
                    embedding=None,
                    embedding_model=None,
                )
            )
            previous = item.content
        return memories

    def _write(self, conn: sqlite3.Connection, prepared: PreparedExchange) -> list[str]:
        prepared.rids = repo.insert(conn, prepared.memories)
        return [m.id for m in prepared.memories]

    def _committed(self, prepared: PreparedExchange) -> None:
        if prepared.vectors is not None:
            occurred = [m.occurred_at for m in prepared.memories]
            self.vectors.add(prepared.key, prepared.rids, prepared.vectors, occurred)
        if self.semantic and prepared.vectors is None and prepared.memories:
            self.schedule_backfill()
        user_id, persona_id = prepared.key
        for hook in self.after_store:
            task = asyncio.create_task(hook(user_id, persona_id))
            self._hooks.add(task)
            task.add_done_callback(self._hooks.discard)
            task.add_done_callback(_log_failure)

    async def store(
        self, user_id: str, persona: PersonaRow, items: Sequence[MemoryInput]
    ) -> list[MemoryRow]:
        """Store memories in one transaction; returns them as committed."""
        prepared = await self._prepare(user_id, persona, items)
        cap = self._settings.max_memories_per_user

        def write(conn: sqlite3.Connection) -> list[MemoryRow]:
            held = repo.count_for_user(conn, user_id)
            if held + len(prepared.memories) > cap:
                raise RateLimited(
                    f"This user holds {held} memories; storing {len(prepared.memories)} more "
                    f"would pass the limit of {cap} (MAX_MEMORIES_PER_USER)",
                    {"limit": "MAX_MEMORIES_PER_USER", "max": cap, "held": held},
                )
            ids = self._write(conn, prepared)
            rows = {r.id: r for r in repo.by_ids(conn, user_id, ids)}
            return [rows[i] for i in ids]

        rows = await self._db.write(write)
        self._committed(prepared)
        return rows

    # -- reading ------------------------------------------------------------------------

    async def get(self, user_id: str, memory_id: str) -> MemoryRow:
        rows = await self._db.read(lambda conn: repo.by_ids(conn, user_id, [memory_id]))
        if not rows:
            raise NotFound(f"No memory {memory_id!r}", {"memory_id": memory_id})
        return rows[0]

    async def delete(self, user_id: str, memory_id: str) -> MemoryRow:
        rows = await self._db.write(lambda conn: repo.delete(conn, user_id, [memory_id]))
        if not rows:
            raise NotFound(f"No memory {memory_id!r}", {"memory_id": memory_id})
        row = rows[0]
        self.vectors.remove((row.user_id, row.persona_id), [row.rid])
        return row

    async def count(self, user_id: str, persona_id: str) -> int:
        return await self._db.read(lambda conn: repo.count(conn, user_id, persona_id))

    async def stats(self, user_id: str, persona: PersonaRow) -> dict[str, Any]:
        model = self.embedder.model
        data = await self._db.read(lambda conn: repo.stats(conn, user_id, persona.id, model))
        key = (user_id, persona.id)
        embedded = data.pop("embedded") if self.semantic else 0
        data["index"] = {
            "embedding_provider": self.embedder.name,
            "embedding_model": model if self.semantic else None,
            "embedder_ready": self.embedder.ready,
            "embedded": embedded,
            "pending_embeddings": data["total"] - embedded if self.semantic else 0,
            "vector_index_loaded": self.vectors.has(key),
            "vector_index_size": self.vectors.size(key),
        }
        return data

    async def _shelf(self, key: Key) -> None:
        """Load a persona's vectors from SQLite into the index, once."""
        if not self.semantic or self.vectors.has(key):
            return
        lock = self._shelf_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if self.vectors.has(key):
                return
            model = self.embedder.model
            rids, matrix, occurred = await self._db.read(
                lambda conn: repo.embeddings_for(conn, key[0], key[1], model)
            )
            self.vectors.load(key, rids, matrix, occurred)

    async def search(
        self,
        filters: Filters,
        query: str,
        limit: int,
        *,
        record_access: bool = True,
    ) -> list[Hit]:
        """Hybrid search (see `retrieval`); each hit counts as an access."""
        key = (filters.user_id, filters.persona_id)
        params = self.ranking
        match = retrieval.match_expression(query, params)
        named_dates = query_dates(query)
        now = self._clock.now()
        everything = Filters(filters.user_id, filters.persona_id)
        pool_size = limit * 2 + 10  # headroom for the importance and recency nudges

        def read_words(conn: sqlite3.Connection) -> tuple[dict[int, float], set[int] | None]:
            bm25: dict[int, float] = {}
            if match:
                bm25 = dict(
                    repo.lexical(conn, match, everything, params.candidates, params.context_weight)
                )
            allowed = repo.allowed_rids(conn, filters) if filters.narrowed else None
            return bm25, allowed

        query_vector = None
        if self.semantic and self.embedder.ready:
            await self._shelf(key)
            # The query embedding (model thread) and the full-text read (reader thread) overlap.
            vectors, (bm25, allowed) = await asyncio.gather(
                self.embedder.embed([query]), self._db.read(read_words)
            )
            query_vector = vectors[0]
        else:
            bm25, allowed = await self._db.read(read_words)
        lexical = retrieval.lexical_scores(bm25)

        def read(conn: sqlite3.Connection) -> list[Hit]:
            ranked: retrieval.Ranked = {}
            on_shelf: set[int] = set()
            if query_vector is not None:
                found = self.vectors.use(
                    key,
                    lambda shelf: retrieval.rank_shelf(
                        shelf, lexical, query_vector, named_dates, allowed, pool_size, params
                    ),
                )
                if found is not None:
                    ranked, on_shelf = found
            # Lexical hits with no vector yet (or no embeddings at all) rank by words alone.
            off_shelf = {
                rid: lex
                for rid, lex in lexical.items()
                if rid not in on_shelf and (allowed is None or rid in allowed)
            }
            rows = repo.by_rids(conn, [*ranked, *off_shelf])
            hits = []
            for rid, row in rows.items():
                if rid in ranked:
                    score, lex, cos = ranked[rid]
                    cosine: float | None = cos
                else:
                    lex, cosine = off_shelf[rid], None
                    score = params.lexical_weight * lex
                    if named_dates:
                        score += params.date_weight * float(
                            proximity(
                                named_dates, np.array([row.occurred_at]), params.date_tau_days
                            )[0]
                        )
                final = retrieval.nudge(score, row.importance, row.occurred_at, now, params)
                hits.append(Hit(row, final, lex, cosine))
            hits.sort(key=lambda h: -h.score)
            return hits[:limit]

        hits = await self._db.read(read)
        if record_access and hits:
            await self._db.write(
                lambda conn: repo.record_access(conn, [h.memory.rid for h in hits], now)
            )
            hits = [
                replace(
                    h,
                    memory=replace(
                        h.memory, access_count=h.memory.access_count + 1, last_accessed_at=now
                    ),
                )
                for h in hits
            ]
        return hits

    # -- embedding backfill -----------------------------------------------------------

    def schedule_backfill(self) -> None:
        if self._backfill is None or self._backfill.done():
            self._backfill = asyncio.create_task(self._run_backfill())
            self._backfill.add_done_callback(_log_failure)

    async def _run_backfill(self) -> None:
        wait = getattr(self.embedder, "wait_ready", None)
        if wait is not None:
            await wait()
        model = self.embedder.model
        while True:
            pending = await self._db.read(
                lambda conn: repo.pending_embeddings(conn, model, BACKFILL_BATCH)
            )
            if not pending:
                return
            await self.embed_rows(pending)

    async def reindex(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Embed every memory that has no embedding from the current model (all of them
        after a model change); returns how many were embedded."""
        if not self.semantic:
            return 0
        await getattr(self.embedder, "wait_ready", self.embedder.start)()
        model = self.embedder.model
        total = await self._db.read(
            lambda conn: int(
                conn.execute(
                    "SELECT count(*) FROM memories WHERE embedding IS NULL "
                    "OR embedding_model IS NOT ?",
                    (model,),
                ).fetchone()[0]
            )
        )
        done, cursor = 0, 0
        while True:
            batch = await self._db.read(
                functools.partial(
                    repo.pending_embeddings,
                    model=model,
                    limit=BACKFILL_BATCH,
                    stale=True,
                    after=cursor,
                )
            )
            if not batch:
                break
            done += await self.embed_rows(batch)
            cursor = batch[-1].rid
            if progress is not None:
                progress(done, total)
        self.vectors.drop_all()  # reload from SQLite on next use
        return done

    async def reindex_rows(self, rids: list[int]) -> None:
        """Bring rows that came back (restored) into the vector index from their stored
        embeddings; rows without a current embedding go to the backfill."""
        if not self.semantic or not rids:
            return
        model = self.embedder.model
        rows = await self._db.read(lambda conn: repo.stored_embeddings(conn, rids, model))
        by_key: dict[Key, tuple[list[int], list[bytes], list[float]]] = {}
        for rid, user, persona, blob, occurred in rows:
            entry = by_key.setdefault((user, persona), ([], [], []))
            entry[0].append(rid)
            entry[1].append(blob)
            entry[2].append(occurred)
        for key, (key_rids, blobs, occurred_at) in by_key.items():
            self.vectors.add(key, key_rids, repo.from_blobs(blobs), occurred_at)
        if len(rows) < len(rids):
            self.schedule_backfill()

    async def embed_rows(self, pending: list[repo.Pending]) -> int:
        """Embed rows that lack a current embedding, store the vectors, index them."""
        model = self.embedder.model
        vectors = await self.embedder.embed(
            [retrieval.embedding_text(p.content, p.context) for p in pending]
        )
        rids = [p.rid for p in pending]
        await self._db.write(lambda conn: repo.set_embeddings(conn, rids, vectors, model))
        by_key: dict[Key, tuple[list[int], list[Vectors], list[float]]] = {}
        for p, vector in zip(pending, vectors, strict=True):
            entry = by_key.setdefault((p.user_id, p.persona_id), ([], [], []))
            entry[0].append(p.rid)
            entry[1].append(vector)
            entry[2].append(p.occurred_at)
        for key, (key_rids, key_vectors, occurred) in by_key.items():
            self.vectors.add(key, key_rids, np.stack(key_vectors), occurred)
        return len(rids)

    # -- conversation hooks (ConversationMemory) ----------------------------------------

    async def recall(
        self, user_id: str, persona: PersonaRow, query: str, window: tuple[str, int] | None
    ) -> list[RecalledMemory]:
        hits = await self.search(Filters(user_id, persona.id), query, RECALL_LIMIT * 3)
        recalled = []
        for hit in hits:
            meta = hit.memory.metadata
            if (
                window is not None
                and meta.get("conversation_id") == window[0]
                and int(meta.get("turn_number", 0)) >= window[1]
            ):
                continue  # the prompt carries this turn verbatim already
            relevant = (
                hit.cosine >= RECALL_MIN_COSINE if hit.cosine is not None else hit.lexical > 0
            )
            if relevant:
                recalled.append(
                    RecalledMemory(
                        id=hit.memory.id,
                        content=hit.memory.content,
                        memory_type=hit.memory.memory_type,
                        occurred_at=hit.memory.occurred_at,
                        score=hit.score,
                    )
                )
        return recalled[:RECALL_LIMIT]

    async def prepare_exchange(self, exchange: Exchange) -> PreparedExchange:
        meta = {"conversation_id": exchange.conversation_id, "turn_number": exchange.turn_number}
        items = [
            MemoryInput(
                content=exchange.user_message,
                emotional_valence=exchange.valence,
                metadata=meta | {"role": "user"},
                occurred_at=exchange.now,
                source="chat",
            )
        ]
        if exchange.model != "offline":
            # A real model's reply may hold promises or facts; the offline responder's
            # reply is derived from what is stored already and adds nothing.
            items.append(
                MemoryInput(
                    content=exchange.reply,
                    metadata=meta | {"role": "assistant", "model": exchange.model},
                    occurred_at=exchange.now,
                    source="chat",
                )
            )
        return await self._prepare(exchange.user_id, exchange.persona, items)

    def write_exchange(self, conn: sqlite3.Connection, prepared: Any) -> list[str]:
        assert isinstance(prepared, PreparedExchange)
        return self._write(conn, prepared)

    def exchange_committed(self, prepared: Any) -> None:
        assert isinstance(prepared, PreparedExchange)
        self._committed(prepared)

    async def store_summary(
        self, user_id: str, persona: PersonaRow, conversation_id: str, summary: str, turns: int
    ) -> list[str]:
        rows = await self.store(
            user_id,
            persona,
            [
                MemoryInput(
                    content=summary,
                    memory_type="episode",
                    metadata={"conversation_id": conversation_id, "turns": turns},
                    source="conversation_summary",
                )
            ],
        )
        return [r.id for r in rows]


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background memory task failed", exc_info=task.exception())
