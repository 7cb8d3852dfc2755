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
import threading
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from persona_mcp import nlp
from persona_mcp.clock import Clock
from persona_mcp.config import Settings
from persona_mcp.conversation.engine import Exchange, RecalledMemory
from persona_mcp.embeddings.base import Embedder, Vectors
from persona_mcp.errors import NotFound, RateLimited, check_text
from persona_mcp.fleet import Fleet, Solo
from persona_mcp.memory import formation, retrieval
from persona_mcp.memory.dates import Interval, proximity, query_dates
from persona_mcp.memory.importance import ImportanceConfig, score_importance
from persona_mcp.memory.vectors import Key, Shelf, VectorIndex
from persona_mcp.store import config as config_store
from persona_mcp.store import graph as graph_repo
from persona_mcp.store import memories as repo
from persona_mcp.store.api import Connection, Database
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
PERSONA_WEIGHT = 0.6  # the persona's own words rank below what the user said
SUPERSEDED_WEIGHT = 0.5  # a corrected memory is history: found, but after the correction
TRUST_CANDIDATES = 5  # nearest memories checked for a duplicate or a contradiction
TRUST_MIN_COSINE = 0.3
TRUST_POOL = 256  # rows the sign bits pass on to the trust check on a large shelf
EMBED_CACHE = 256
TERM_COUNT_SECONDS = 600.0
TERM_COUNT_STORES = 2000  # or once this many memories were stored since it was counted
TERM_COUNT_CACHE = 4096
SEMANTIC = retrieval.SEMANTIC_CANDIDATES  # rows nearest in meaning the database passes on


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
    why: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedExchange:
    key: Key
    memories: list[NewMemory]
    vectors: Vectors | None
    rids: list[int] = field(default_factory=list)
    accessed: list[str] = field(default_factory=list)  # memories the turn used
    supersedes: dict[str, list[str]] = field(default_factory=dict)  # new id -> old ids
    reinforced: dict[int, str] = field(default_factory=dict)  # position -> existing id


@dataclass(frozen=True)
class Stored:
    """A memory as committed, and what storing it did."""

    memory: MemoryRow
    deduplicated: bool = False
    superseded: tuple[str, ...] = ()


# More writes in a store's own transaction, given the memories being written (as rows,
# or with what storing each did).
Also = Callable[[Connection, list[MemoryRow]], None]

# Called after memories were committed for a persona (auto-pruning hooks in here).
AfterStore = Callable[[str, str], Coroutine[Any, Any, None]]
# More writes inside the transaction that stores memories (the graph of an ingestion).
AlsoWrite = Callable[[Connection, list["Stored"]], None]


class MemoryService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        embedder: Embedder,
        fleet: Fleet | None = None,
    ) -> None:
        self._db = db
        self._fleet = fleet or Solo()
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
        # Texts embedded lately: a chat turn embeds the message once, for the search and
        # for the memory it leaves.
        self._embedded: dict[str, Vectors] = {}
        # How many memories each query term matches, counted once in a while (an
        # estimate is enough to leave out the commonest terms; see retrieval.within_budget).
        self._term_counts: dict[str, tuple[int, float, int]] = {}
        self._stored = 0  # memories stored through this service: ages the term counts
        self._term_lock = threading.Lock()
        self._indexed_dims: set[int] = set()

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

    def forget_user(self, user_id: str) -> None:
        """Drop what is cached of a user (vector shelves, importance weights) after their
        data was replaced underneath (state.load) or deleted (user.delete); whatever is
        left is read again on next use."""
        self.vectors.drop_user(user_id)
        self._shelf_locks = {k: v for k, v in self._shelf_locks.items() if k[0] != user_id}
        self._config.pop(user_id, None)
        self._embedded.clear()  # texts of theirs among others: cheap to embed again
        if self.semantic:
            self.schedule_backfill()

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
        self._fleet.touch("config", user_id)

    def forget_config(self, user_id: str) -> None:
        """Another instance changed this user's weights: read them again on next use."""
        self._config.pop(user_id, None)

    # -- storing ----------------------------------------------------------------------

    async def embed(self, texts: list[str]) -> Vectors:
        """Embed texts, reusing the vectors of texts embedded lately."""
        known = {t: self._embedded[t] for t in texts if t in self._embedded}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = await self.embedder.embed(missing)
            for text, vector in zip(missing, fresh, strict=True):
                known[text] = vector
                if len(missing) <= EMBED_CACHE:  # bulk imports would only churn it
                    self._embedded[text] = vector
            while len(self._embedded) > EMBED_CACHE:
                self._embedded.pop(next(iter(self._embedded)))
        return np.stack([known[t] for t in texts])

    def check_content(self, content: str, field_name: str) -> None:
        check_text(content, field_name, self._settings.max_content_bytes)

    async def _prepare(
        self, user_id: str, persona: PersonaRow, items: Sequence[MemoryInput]
    ) -> PreparedExchange:
        config = await self.importance_config(user_id)
        now = self._clock.now()
        # The embedding needs only the texts: it runs on the model's threads while the
        # scoring runs here (a bulk store would otherwise leave a core idle meanwhile).
        vectors = None
        embedding: asyncio.Task[Vectors] | None = None
        if self.semantic and self.embedder.ready and items:
            embedding = asyncio.create_task(
                self.embed([retrieval.embedding_text(i.content, "") for i in items])
            )
        try:
            previous = await self._db.read(
                lambda conn: repo.latest_content(conn, user_id, persona.id)
            )
            if len(items) > 8:  # scoring is ~0.1 ms a memory: keep big batches off the loop
                memories = await asyncio.to_thread(
                    self._score, user_id, persona, items, config, previous, now
                )
            else:
                memories = self._score(user_id, persona, items, config, previous, now)
        except BaseException:
            if embedding is not None:
                embedding.cancel()
            raise
        if embedding is not None:
            vectors = await embedding
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

    def _write(self, conn: Connection, prepared: PreparedExchange) -> list[str]:
        prepared.rids = repo.insert(conn, prepared.memories)
        return [m.id for m in prepared.memories]

    def _committed(self, prepared: PreparedExchange) -> None:
        self._stored += len(prepared.memories)
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
        self,
        user_id: str,
        persona: PersonaRow,
        items: Sequence[MemoryInput],
        also: Also | None = None,
    ) -> list[MemoryRow]:
        """Store memories in one transaction, as given (a bulk import: no duplicate or
        contradiction checks); returns them as committed. `also` writes more in the same
        transaction, given the memories as they will be committed."""

        def as_rows(conn: Connection, stored: list[Stored]) -> None:
            if also is not None:
                also(conn, [s.memory for s in stored])

        stored = await self.remember(user_id, persona, items, check=False, also=as_rows)
        return [s.memory for s in stored]

    async def remember(
        self,
        user_id: str,
        persona: PersonaRow,
        items: Sequence[MemoryInput],
        *,
        check: bool = True,
        also: AlsoWrite | None = None,
    ) -> list[Stored]:
        """Store memories in one transaction. With `check`, a near-duplicate of a memory
        already held reinforces that one instead of adding a copy, and a statement that
        corrects an older one supersedes it (the old one is kept, marked). `also` writes
        more in the same transaction, once the memories are in."""
        prepared = await self._prepare(user_id, persona, items)
        if check:
            await self._trust(prepared)
        cap = self._settings.max_memories_per_user
        importance_cap = (await self.importance_config(user_id)).cap
        now = self._clock.now()

        def write(conn: Connection) -> list[Stored]:
            fresh = len(prepared.memories) - len(prepared.reinforced)
            held = repo.count_for_user(conn, user_id)
            if held + fresh > cap:
                raise RateLimited(
                    f"This user holds {held} memories; storing {fresh} more "
                    f"would pass the limit of {cap} (MAX_MEMORIES_PER_USER)",
                    {"limit": "MAX_MEMORIES_PER_USER", "max": cap, "held": held},
                )
            ids = [prepared.reinforced.get(i, m.id) for i, m in enumerate(prepared.memories)]
            repeated = set(prepared.reinforced)
            self._write_checked(conn, prepared, importance_cap, now)
            rows = {r.id: r for r in repo.by_ids(conn, user_id, ids)}
            stored = [
                Stored(
                    rows[memory_id],
                    deduplicated=i in repeated,
                    superseded=tuple(prepared.supersedes.get(memory_id, ())),
                )
                for i, memory_id in enumerate(ids)
            ]
            if also is not None:
                also(conn, stored)
            return stored

        stored = await self._db.write(write)
        self._committed(prepared)
        return stored

    def _write_checked(
        self, conn: Connection, prepared: PreparedExchange, cap: float, now: float
    ) -> None:
        """Insert what is new, reinforce what was said again, mark what was corrected."""
        if prepared.reinforced:
            keep = [i for i in range(len(prepared.memories)) if i not in prepared.reinforced]
            for i, existing in prepared.reinforced.items():
                rows = repo.by_ids(conn, prepared.key[0], [existing])
                if rows:
                    repo.reinforce(conn, rows[0].rid, prepared.memories[i].importance, now, cap)
            prepared.memories = [prepared.memories[i] for i in keep]
            if prepared.vectors is not None:
                prepared.vectors = prepared.vectors[keep] if keep else None
            prepared.reinforced = {}
        self._write(conn, prepared)
        user_id, persona_id = prepared.key
        # The graph's edges that every store makes: episodes join the `next` chain at their
        # place in time, and a correction `supersedes` what it corrects.
        for memory, rid in zip(prepared.memories, prepared.rids, strict=True):
            if memory.memory_type == "episode":
                graph_repo.link_episode(
                    conn, user_id, persona_id, memory.id, memory.occurred_at, rid, now
                )
        inserted = {m.id for m in prepared.memories}
        for new_id, old_ids in prepared.supersedes.items():
            repo.supersede(conn, old_ids, new_id)
            if new_id in inserted:
                edges = [graph_repo.NewEdge("supersedes", new_id, old) for old in old_ids]
                graph_repo.add_edges(conn, user_id, persona_id, edges, now)
        if prepared.accessed:
            rows = repo.by_ids(conn, prepared.key[0], prepared.accessed)
            repo.record_access(conn, [r.rid for r in rows], now)

    async def _trust(self, prepared: PreparedExchange) -> None:
        """Find, for each new memory, a memory it repeats or one it corrects."""
        user_id, persona_id = prepared.key
        for i, memory in enumerate(prepared.memories):
            if memory.metadata.get("speaker") == "persona":
                continue  # the persona's words never overrule what the user said
            vector = prepared.vectors[i] if prepared.vectors is not None else None
            candidates = await self._neighbours(user_id, persona_id, memory.content, vector)
            for row, cosine in candidates:
                if row.superseded_by or speaker_of(row) == "persona":
                    continue
                if formation.is_duplicate(memory.content, row.content, cosine):
                    prepared.reinforced[i] = row.id
                    break
                if formation.contradicts(memory.content, row.content, cosine):
                    prepared.supersedes.setdefault(memory.id, []).append(row.id)

    async def _neighbours(
        self, user_id: str, persona_id: str, content: str, vector: Vectors | None
    ) -> list[tuple[MemoryRow, float | None]]:
        """The memories nearest to `content`: by meaning when vectors exist, else words."""
        key = (user_id, persona_id)
        if vector is not None and self.in_database:
            model = self.embedder.model
            await self._vector_index(vector)

            def nearest_rows(conn: Connection) -> list[tuple[MemoryRow, float | None]]:
                found = repo.nearest(
                    conn, Filters(user_id, persona_id), model, vector, TRUST_CANDIDATES
                )
                rows = repo.by_rids(conn, [rid for rid, c in found if c >= TRUST_MIN_COSINE])
                return [(rows[rid], c) for rid, c in found if rid in rows]

            return await self._db.read(nearest_rows)
        if vector is not None:
            await self._shelf(key)

            def nearest(shelf: Shelf) -> list[tuple[int, float]]:
                positions, cos = shelf.nearest(vector, TRUST_CANDIDATES, TRUST_POOL)
                return [(int(shelf.rids[p]), float(c)) for p, c in zip(positions, cos, strict=True)]

            # Off the event loop: at 100k memories this is milliseconds of numpy.
            found = await asyncio.to_thread(self.vectors.use, key, nearest) or []
            found = [(rid, c) for rid, c in found if c >= TRUST_MIN_COSINE]
            rows = await self._db.read(lambda conn: repo.by_rids(conn, [r for r, _ in found]))
            return sorted(
                ((rows[rid], c) for rid, c in found if rid in rows), key=lambda p: -(p[1] or 0)
            )
        terms = retrieval.query_terms(content)

        def read(conn: Connection) -> list[tuple[MemoryRow, float | None]]:
            frequencies = self._frequencies(conn, terms)
            match = retrieval.match_expression(content, self.ranking, frequencies)
            if not match:
                return []
            hits = repo.lexical(conn, match, Filters(user_id, persona_id), TRUST_CANDIDATES, 0.0)
            rows = repo.by_rids(conn, [rid for rid, _ in hits])
            return [(rows[rid], None) for rid, _ in hits if rid in rows]

        return await self._db.read(read)

    # -- editing -------------------------------------------------------------------------

    async def update(
        self,
        user_id: str,
        memory_id: str,
        *,
        content: str | None,
        importance: float | None,
        metadata: dict[str, Any] | None,
    ) -> MemoryRow:
        """Edit a memory; what it said before is kept as a version (`history`)."""
        current = await self.get(user_id, memory_id)
        text = content if content is not None else current.content
        blob, model = None, None
        vector = None
        changed = content is not None and content != current.content
        if changed and self.semantic and self.embedder.ready:
            vector = (await self.embed([text]))[0]
            blob, model = repo.to_blob(vector), self.embedder.model
        now = self._clock.now()

        def write(conn: Connection) -> MemoryRow:
            rows = repo.by_ids(conn, user_id, [memory_id])
            if not rows:
                raise NotFound(f"No memory {memory_id!r}", {"memory_id": memory_id})
            row = rows[0]
            repo.add_version(conn, row, "edited", now)
            repo.update(
                conn,
                row.rid,
                content=text,
                importance=importance if importance is not None else row.importance,
                metadata=metadata if metadata is not None else row.metadata,
                embedding=blob,
                embedding_model=model,
            )
            return repo.by_ids(conn, user_id, [memory_id])[0]

        row = await self._db.write(write)
        key = (row.user_id, row.persona_id)
        if content is not None and content != current.content:

            def replace_vector() -> None:
                self.vectors.remove(key, [row.rid])
                if vector is not None:
                    self.vectors.add(key, [row.rid], vector.reshape(1, -1), [row.occurred_at])

            # Taking a row out of a shelf moves every row after it: off the event loop.
            await asyncio.to_thread(replace_vector)
            if vector is None and self.semantic:
                self.schedule_backfill()
        return row

    async def history(
        self, user_id: str, memory_id: str
    ) -> tuple[MemoryRow, list[dict[str, Any]], list[MemoryRow]]:
        """A memory, its earlier versions, and the memories in its chain of corrections."""
        current = await self.get(user_id, memory_id)

        def read(conn: Connection) -> tuple[list[dict[str, Any]], list[MemoryRow]]:
            return repo.versions(conn, memory_id), repo.superseded_by_chain(
                conn, user_id, memory_id
            )

        versions, chain = await self._db.read(read)
        return current, versions, chain

    async def set_pinned(self, user_id: str, memory_id: str, pinned: bool) -> MemoryRow:
        changed = await self._db.write(
            lambda conn: repo.set_pinned(conn, user_id, memory_id, pinned)
        )
        if not changed:
            raise NotFound(f"No memory {memory_id!r}", {"memory_id": memory_id})
        return await self.get(user_id, memory_id)

    async def page(
        self,
        user_id: str,
        persona_id: str,
        memory_type: str | None,
        after_rid: int,
        limit: int,
    ) -> list[MemoryRow]:
        return await self._db.read(
            lambda conn: repo.page(conn, user_id, persona_id, memory_type, after_rid, limit)
        )

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
        await asyncio.to_thread(self.vectors.remove, (row.user_id, row.persona_id), [row.rid])
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
            # PostgreSQL: the database's own index (pgvector) holds every embedded row.
            "vector_index_loaded": self.in_database or self.vectors.has(key),
            "vector_index_size": embedded if self.in_database else self.vectors.size(key),
        }
        return data

    def _frequencies(self, conn: Connection, terms: list[str]) -> dict[str, int]:
        """Rows matched by each term in every persona, from a cache refreshed every
        TERM_COUNT_SECONDS or TERM_COUNT_STORES new memories, whichever comes first (a
        count taken at 10k memories would let a common term through at 100k and make the
        full-text stage score every match; runs on a reader thread)."""
        now = self._clock.now()
        counts: dict[str, int] = {}
        for term in terms:
            with self._term_lock:
                cached = self._term_counts.get(term)
            stored = self._stored
            if (
                cached is None
                or now - cached[1] > TERM_COUNT_SECONDS
                or stored - cached[2] > TERM_COUNT_STORES
            ):
                cached = (repo.matches(conn, retrieval.phrase(term, self.ranking)), now, stored)
                with self._term_lock:
                    if len(self._term_counts) >= TERM_COUNT_CACHE:
                        self._term_counts.pop(next(iter(self._term_counts)))
                    self._term_counts[term] = cached
            counts[term] = cached[0]
        return counts

    @property
    def in_database(self) -> bool:
        """Whether vectors are searched by the database itself (PostgreSQL's pgvector),
        with no in-process shelf (so nothing to keep in step across instances)."""
        return self._db.dialect == "postgresql"

    async def _vector_index(self, vector: Vectors) -> None:
        """Make sure the database indexes vectors of this many dimensions (once)."""
        dims = int(np.asarray(vector).shape[-1])
        if dims not in self._indexed_dims:
            await self._db.write(lambda conn: repo.ensure_vector_index(conn, dims))
            self._indexed_dims.add(dims)

    def _rank_in_database(
        self,
        conn: Connection,
        filters: Filters,
        lexical: dict[int, float],
        query_vector: Vectors,
        dates: list[Interval],
        allowed: set[int] | None,
        k: int,
    ) -> tuple[retrieval.Ranked, set[int]]:
        """`rank_shelf`'s work from the database's index: the nearest rows in meaning
        (under the filters), the lexical hits and the rows nearest a named date, read
        with their neighbours, ranked by the same `retrieval.rank_rows`."""
        params = self.ranking
        model = self.embedder.model
        user_id, persona_id = filters.user_id, filters.persona_id
        core = {rid for rid, _ in repo.nearest(conn, filters, model, query_vector, SEMANTIC)}
        if dates:
            rids, occurred = repo.embedded_times(conn, user_id, persona_id, model)
            near = proximity(dates, np.asarray(occurred, dtype=np.float64), params.date_tau_days)
            m = min(retrieval.DATE_CANDIDATES, len(rids))
            if m:
                best = np.argpartition(-near, m - 1)[:m]
                core.update(int(rids[i]) for i in best if near[i] > 0)
        reach = 2 * len(params.neighbour_weights)
        rids, previous, occurred, blobs = repo.window(
            conn, user_id, persona_id, model, sorted(core | set(lexical)), reach
        )
        window = retrieval.Window(
            np.asarray(rids, dtype=np.int64),
            np.asarray(previous, dtype=np.int64),
            np.asarray(occurred, dtype=np.float64),
            repo.from_blobs(blobs),
        )
        return retrieval.rank_window(window, core, lexical, query_vector, dates, allowed, k, params)

    async def _shelf(self, key: Key) -> None:
        """Load a persona's vectors from SQLite into the index, once (PostgreSQL has
        none: its own index serves)."""
        if not self.semantic or self.in_database or self.vectors.has(key):
            return
        lock = self._shelf_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if self.vectors.has(key):
                return
            model = self.embedder.model

            def load(conn: Connection) -> None:
                total = repo.count_embedded(conn, key[0], key[1], model)
                self.vectors.load(key, total, repo.embedding_chunks(conn, key[0], key[1], model))

            await self._db.read(load)

    async def search(
        self,
        filters: Filters,
        query: str,
        limit: int,
        *,
        record_access: bool = True,
        max_tokens: int | None = None,
    ) -> list[Hit]:
        """Hybrid search (see `retrieval`); each hit returned counts as an access. With
        `max_tokens`, results stop before their text passes that budget."""
        key = (filters.user_id, filters.persona_id)
        params = self.ranking
        terms = retrieval.query_terms(query)
        named_dates = query_dates(query)
        now = self._clock.now()
        everything = Filters(filters.user_id, filters.persona_id)
        pool_size = limit * 2 + 10  # headroom for the importance and recency nudges

        def read_words(conn: Connection) -> tuple[dict[int, float], set[int] | None]:
            bm25: dict[int, float] = {}
            frequencies = self._frequencies(conn, terms)
            match = retrieval.match_expression(query, params, frequencies)
            if match:
                bm25 = dict(
                    repo.lexical(
                        conn, match, everything, params.candidates, params.context_weight,
                        frequencies,
                    )
                )  # fmt: skip
            allowed = repo.allowed_rids(conn, filters) if filters.narrowed else None
            return bm25, allowed

        async def meaning() -> tuple[Vectors, npt.NDArray[np.int64] | None]:
            vector = (await self.embed([query]))[0]
            if self.in_database:
                await self._vector_index(vector)
                return vector, None
            if filters.narrowed:  # a narrow filter may make its rows the candidates
                return vector, None
            nearest = await asyncio.to_thread(
                self.vectors.use, key, lambda shelf: retrieval.nearest_rids(shelf, vector)
            )
            return vector, nearest

        query_vector: Vectors | None = None
        nearest = None
        if self.semantic and self.embedder.ready:
            await self._shelf(key)
            # The query's embedding and nearest rows in meaning (model thread, then a
            # worker) overlap the full-text read (reader thread).
            (query_vector, nearest), (bm25, allowed) = await asyncio.gather(
                meaning(), self._db.read(read_words)
            )
        else:
            bm25, allowed = await self._db.read(read_words)
        lexical = retrieval.lexical_scores(bm25)

        def read(conn: Connection) -> list[Hit]:
            ranked: retrieval.Ranked = {}
            on_shelf: set[int] = set()
            if query_vector is not None and self.in_database:
                ranked, on_shelf = self._rank_in_database(
                    conn, filters, lexical, query_vector, named_dates, allowed, pool_size
                )
            elif query_vector is not None:
                found = self.vectors.use(
                    key,
                    lambda shelf: retrieval.rank_shelf(
                        shelf, lexical, query_vector, named_dates, allowed, pool_size, params,
                        nearest,
                    ),
                )  # fmt: skip
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
                date = 0.0
                if named_dates:
                    date = params.date_weight * float(
                        proximity(named_dates, np.array([row.occurred_at]), params.date_tau_days)[0]
                    )
                if rid in ranked:
                    score, lex, cos = ranked[rid]
                    cosine: float | None = cos
                    semantic = (1 - params.lexical_weight) * cos
                else:
                    lex, cosine, semantic = off_shelf[rid], None, 0.0
                    score = params.lexical_weight * lex + date
                lexical_part = params.lexical_weight * lex
                final = retrieval.nudge(score, row.importance, row.occurred_at, now, params)
                importance_part = params.importance_weight * (row.importance - 0.5)
                weight = 1.0
                if speaker_of(row) == "persona":
                    weight *= PERSONA_WEIGHT
                if row.superseded_by:
                    weight *= SUPERSEDED_WEIGHT
                why = {
                    "lexical": round(lexical_part, 4),
                    "semantic": round(semantic, 4),
                    "neighbour": round(max(0.0, score - lexical_part - semantic - date), 4),
                    "date": round(date, 4),
                    "importance": round(importance_part, 4),
                    "recency": round(final - score - importance_part, 4),
                    "weight": weight,
                    "matched_terms": retrieval.matched_terms(terms, row.content),
                    "source": source_of(row),
                }
                hits.append(Hit(row, final * weight, lex, cosine, why))
            hits.sort(key=lambda h: -h.score)
            return hits[:limit]

        hits = await self._db.read(read)
        if max_tokens is not None:
            hits = trim_to_tokens(hits, max_tokens)
        if record_access:
            hits = await self.record_access(hits)
        return hits

    async def record_access(self, hits: list[Hit]) -> list[Hit]:
        """Count the hits of a search as accesses; returns them as they now are."""
        if not hits:
            return hits
        now = self._clock.now()
        await self._db.write(
            lambda conn: repo.record_access(conn, [h.memory.rid for h in hits], now)
        )
        return [
            replace(
                h,
                memory=replace(
                    h.memory, access_count=h.memory.access_count + 1, last_accessed_at=now
                ),
            )
            for h in hits
        ]

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
        after = 0
        while True:
            # Memories with no vector, and those embedded by another model (an upgrade or a
            # switch of EMBEDDING_*): the index only holds vectors of the current model.
            pending = await self._db.read(
                functools.partial(
                    repo.pending_embeddings,
                    model=model,
                    limit=BACKFILL_BATCH,
                    stale=True,
                    after=after,
                )
            )
            if not pending:
                return
            after = pending[-1].rid
            await self.embed_rows(pending)

    async def reindex(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Embed every memory that has no embedding from the current model (all of them
        after a model change); returns how many were embedded."""
        if not self.semantic:
            return 0
        await getattr(self.embedder, "wait_ready", self.embedder.start)()
        model = self.embedder.model
        total = await self._db.read(lambda conn: repo.count_stale_embeddings(conn, model))
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

        def shelve() -> None:  # rows back in rowid order: a re-sort of the shelf
            for key, (key_rids, blobs, occurred_at) in by_key.items():
                self.vectors.add(key, key_rids, repo.from_blobs(blobs), occurred_at)

        await asyncio.to_thread(shelve)
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

    async def recall(self, user_id: str, persona: PersonaRow, query: str) -> list[RecalledMemory]:
        """The memories a chat turn draws on: relevant ones from long-term memory and
        from the turns still in the window alike, corrected ones left out. They count as
        accessed only once the turn commits (see `prepare_exchange`)."""
        hits = await self.search(
            Filters(user_id, persona.id), query, RECALL_LIMIT * 3, record_access=False
        )
        relevant = [
            h
            for h in hits
            if (h.cosine >= RECALL_MIN_COSINE if h.cosine is not None else h.lexical > 0)
        ]
        # A corrected memory that matches stands for its correction: "where does my sister
        # live?" finds "my sister Mara lives in Lisbon" and answers with "Mara moved to Porto".
        replacements = await self._current_versions(
            user_id, [h.memory.superseded_by for h in relevant if h.memory.superseded_by]
        )
        recalled: list[RecalledMemory] = []
        seen: dict[str, RecalledMemory] = {}
        for hit in relevant:
            row, why = hit.memory, hit.why
            if row.superseded_by:
                replacement = replacements.get(row.superseded_by)
                if replacement is None:
                    continue
                row = replacement
                why = {
                    **hit.why,
                    "via_correction_of": hit.memory.id,
                    "found_by": hit.memory.content,
                }
            if row.id in seen:
                # Found for itself too: it still answers for what it corrected.
                if "found_by" in why:
                    seen[row.id].why.setdefault("found_by", why["found_by"])
                continue
            seen[row.id] = RecalledMemory(
                id=row.id,
                content=row.content,
                memory_type=row.memory_type,
                occurred_at=row.occurred_at,
                score=hit.score,
                speaker=speaker_of(row),
                why={**why, "source": source_of(row)},
            )
            recalled.append(seen[row.id])
        return recalled[:RECALL_LIMIT]

    async def _current_versions(self, user_id: str, ids: list[str]) -> dict[str, MemoryRow]:
        """The memories with these ids, each followed to its latest correction."""
        found: dict[str, MemoryRow] = {}
        pending = {i: i for i in ids}  # asked id -> id to look up now
        for _ in range(8):  # corrections of corrections, bounded
            if not pending:
                break
            lookup = list(set(pending.values()))
            rows = await self._db.read(functools.partial(_by_ids, user_id=user_id, ids=lookup))
            by_id = {r.id: r for r in rows}
            nxt = {}
            for asked, current in pending.items():
                row = by_id.get(current)
                if row is None:
                    continue
                if row.superseded_by:
                    nxt[asked] = row.superseded_by
                else:
                    found[asked] = row
            pending = nxt
        return found

    async def prepare_exchange(self, exchange: Exchange) -> PreparedExchange:
        """What the turn leaves in memory: the user's statements (never their questions
        or filler), and a real model's reply as the persona's own words."""
        meta = {"conversation_id": exchange.conversation_id, "turn_number": exchange.turn_number}
        items = []
        formed = formation.form(exchange.user_message)
        if formed.statement:
            items.append(
                MemoryInput(
                    content=formed.statement,
                    emotional_valence=exchange.valence,
                    metadata=meta | {"speaker": "user"},
                    occurred_at=exchange.now,
                    source="chat",
                )
            )
        if exchange.model != "offline":
            # A real model's reply may hold promises or facts; the offline responder's
            # reply is derived from what is stored already and adds nothing.
            items.append(
                MemoryInput(
                    content=exchange.reply,
                    metadata=meta | {"speaker": "persona", "model": exchange.model},
                    occurred_at=exchange.now,
                    source="chat",
                )
            )
        prepared = await self._prepare(exchange.user_id, exchange.persona, items)
        await self._trust(prepared)
        prepared.accessed = list(exchange.recalled_ids)
        return prepared

    def write_exchange(self, conn: Connection, prepared: Any) -> list[str]:
        assert isinstance(prepared, PreparedExchange)
        cap = self._config.get(prepared.key[0], ImportanceConfig()).cap
        reinforced = list(prepared.reinforced.values())
        self._write_checked(conn, prepared, cap, self._clock.now())
        return [m.id for m in prepared.memories] + reinforced

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


def _by_ids(conn: Connection, user_id: str, ids: list[str]) -> list[MemoryRow]:
    return repo.by_ids(conn, user_id, ids)


def estimate_tokens(text: str) -> int:
    """About how many tokens a text takes (4 characters a token, as common tokenizers
    average on English)."""
    return max(1, (len(text) + 3) // 4)


def trim_to_tokens(hits: list[Hit], budget: int) -> list[Hit]:
    kept, used = [], 0
    for hit in hits:
        cost = estimate_tokens(hit.memory.content)
        if used + cost > budget:
            break
        kept.append(hit)
        used += cost
    return kept


def speaker_of(row: MemoryRow) -> str:
    """Who said a memory: "user", "persona", "summary" (of a conversation), or "api"
    (stored through memory.store)."""
    speaker = row.metadata.get("speaker") or row.metadata.get("role")
    if speaker in ("assistant", "persona"):
        return "persona"
    if row.source == "conversation_summary":
        return "summary"
    if speaker == "user" or row.source == "chat":
        return "user"
    return "api"


def source_of(row: MemoryRow) -> dict[str, Any]:
    """Where a memory came from: the conversation turn and speaker of a chat-born one."""
    meta = row.metadata
    return {
        "kind": row.source,
        "speaker": speaker_of(row),
        "conversation_id": meta.get("conversation_id"),
        "turn_number": meta.get("turn_number"),
    }


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background memory task failed", exc_info=task.exception())
