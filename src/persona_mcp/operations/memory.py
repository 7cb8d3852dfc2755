"""Memory operations: store, store_batch, search, get, delete, stats, importance weights."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from persona_mcp.clock import to_datetime, to_timestamp
from persona_mcp.errors import InvalidParams
from persona_mcp.graph.service import Via
from persona_mcp.memory.importance import DEFAULT_WEIGHTS, ImportanceConfig
from persona_mcp.memory.service import Hit, MemoryInput, MemoryType, trim_to_tokens
from persona_mcp.operations.common import Metadata, PersonaRef, When, target_persona
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result
from persona_mcp.store.memories import Filters, MemoryRow

ops = OperationSet()

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Valence = Annotated[float, Field(ge=-1.0, le=1.0)]
MAX_BATCH = 1000


class Memory(Result):
    id: str
    persona_id: str
    user_id: str
    content: str
    memory_type: str
    importance: float
    emotional_valence: float
    access_count: int
    last_accessed_at: datetime | None
    created_at: datetime
    occurred_at: datetime
    source: str
    metadata: dict[str, Any] = Field(description="The caller's metadata, exactly as given")
    importance_breakdown: dict[str, Any] | None = Field(
        description="How an automatic importance was scored (null when it was given)"
    )
    pinned: bool = Field(description="Pinned memories never decay and are never pruned")
    superseded_by: str | None = Field(
        description="The memory that corrected this one (it is kept as history)"
    )


def memory_out(row: MemoryRow) -> Memory:
    return Memory(
        id=row.id,
        persona_id=row.persona_id,
        user_id=row.user_id,
        content=row.content,
        memory_type=row.memory_type,
        importance=round(row.importance, 6),
        emotional_valence=round(row.emotional_valence, 4),
        access_count=row.access_count,
        last_accessed_at=to_datetime(row.last_accessed_at),
        created_at=to_datetime(row.created_at),
        occurred_at=to_datetime(row.occurred_at),
        source=row.source,
        metadata=row.metadata,
        importance_breakdown=row.importance_breakdown,
        pinned=row.pinned,
        superseded_by=row.superseded_by,
    )


class MemoryFields(Params):
    content: str = Field(description="The text to remember")
    memory_type: MemoryType = "conversation"
    importance: Unit | None = Field(None, description="Kept as given; scored when omitted")
    emotional_valence: Valence | None = Field(None, description="Detected when omitted")
    metadata: Metadata = Field(default_factory=dict)
    occurred_at: When | None = Field(None, description="When it happened (default: now)")

    def to_input(self) -> MemoryInput:
        return MemoryInput(
            content=self.content,
            memory_type=self.memory_type,
            importance=self.importance,
            emotional_valence=self.emotional_valence,
            metadata=self.metadata,
            occurred_at=to_timestamp(self.occurred_at) if self.occurred_at else None,
        )


class MemoryStoreParams(MemoryFields):
    persona_id: PersonaRef | None = None


class MemoryResult(Result):
    memory: Memory


class MemoryStoreResult(Result):
    memory: Memory
    deduplicated: bool = Field(
        description="True when the memory repeated one already held: that one was "
        "reinforced (one more access, importance raised) and is returned instead"
    )
    superseded: list[str] = Field(
        description="Older memories this one corrects: kept as history, marked superseded"
    )


@ops("memory.store", title="Store a memory")
async def memory_store(ctx: CallContext, params: MemoryStoreParams) -> MemoryStoreResult:
    """Store one memory for a persona (the active one by default). Importance is scored
    from the content unless given; the memory is searchable once this returns. A
    near-duplicate reinforces the memory already held instead of adding a copy; a
    statement that corrects an older one supersedes it (see memory.history)."""
    persona = await target_persona(ctx, params.persona_id)
    ctx.app.memory.check_content(params.content, "content")
    user = ctx.session.user_id
    stored = (await ctx.app.memory.remember(user, persona, [params.to_input()]))[0]
    events = ctx.app.events
    events.memory_changed(
        user, persona.id, [stored.memory.id], "updated" if stored.deduplicated else "stored"
    )
    events.memory_changed(user, persona.id, list(stored.superseded), "updated")
    return MemoryStoreResult(
        memory=memory_out(stored.memory),
        deduplicated=stored.deduplicated,
        superseded=list(stored.superseded),
    )


class MemoryStoreBatchParams(Params):
    persona_id: PersonaRef | None = None
    memories: list[MemoryFields] = Field(min_length=1, max_length=MAX_BATCH)


class MemoryBatchResult(Result):
    memories: list[Memory]
    count: int


@ops("memory.store_batch", title="Store many memories")
async def memory_store_batch(ctx: CallContext, params: MemoryStoreBatchParams) -> MemoryBatchResult:
    """Store up to 1000 memories at once, in one transaction: all are stored or none."""
    persona = await target_persona(ctx, params.persona_id)
    for i, item in enumerate(params.memories):
        ctx.app.memory.check_content(item.content, f"memories.{i}.content")
    total = len(params.memories)
    await ctx.progress(0, total, "checked; embedding and storing")
    rows = await ctx.app.memory.store(
        ctx.session.user_id, persona, [m.to_input() for m in params.memories]
    )
    ctx.app.events.memory_changed(ctx.session.user_id, persona.id, [r.id for r in rows], "stored")
    await ctx.progress(total, total, "stored")
    return MemoryBatchResult(memories=[memory_out(r) for r in rows], count=len(rows))


class MemorySearchParams(Params):
    query: str = Field(min_length=1, max_length=4000)
    persona_id: PersonaRef | None = None
    limit: int = Field(10, ge=1, le=100)
    memory_type: MemoryType | None = None
    min_importance: Unit | None = None
    since: When | None = Field(None, description="Only memories that occurred at or after")
    until: When | None = Field(None, description="Only memories that occurred at or before")
    max_tokens: int | None = Field(
        None, ge=1, le=100_000, description="Trim the results to about this many tokens"
    )
    expand: bool = Field(
        False,
        description="Also follow the knowledge graph's edges from the best hits (decaying "
        "weight per hop); each hit reached that way says by which edge (`via`)",
    )
    expand_depth: int = Field(1, ge=1, le=3, description="Hops to follow with expand")

    @model_validator(mode="after")
    def _window(self) -> MemorySearchParams:
        if self.since and self.until and to_timestamp(self.since) > to_timestamp(self.until):
            raise ValueError("since must not be after until")
        return self


class GraphVia(Result):
    """How a hit found by graph expansion was reached."""

    edge_type: str = Field(description="next, mentions, relates_to, supersedes or part_of")
    from_id: str = Field(description="The memory the edge was followed from")
    hops: int
    weight: float = Field(description="What the hop multiplied the score by")
    entity_id: str | None = Field(None, description="Through this entity (mentions)")
    entity: str | None = Field(None, description="The entity's name")


class SearchHit(Result):
    memory: Memory
    score: float
    why: dict[str, Any] = Field(
        description="The parts of the score (lexical, semantic, neighbour, date, "
        "importance, recency, weight), the matched terms and the source turn"
    )
    via: GraphVia | None = Field(
        None, description="With expand: the edge this hit was reached by (null: a direct hit)"
    )


def hit_out(hit: Hit, via: Via | None = None) -> SearchHit:
    return SearchHit(
        memory=memory_out(hit.memory),
        score=round(hit.score, 6),
        why=hit.why,
        via=GraphVia(**asdict(via)) if via is not None else None,
    )


class MemorySearchResult(Result):
    results: list[SearchHit]
    persona_id: str
    semantic: bool = Field(description="Whether embeddings took part (false while loading)")


@ops(
    "memory.search",
    aliases=("persona.memory",),
    title="Search memories",
)
async def memory_search(ctx: CallContext, params: MemorySearchParams) -> MemorySearchResult:
    """Find a persona's memories by meaning and by words (hybrid retrieval), best first.
    Each result counts as an access. With `expand`, the knowledge graph's edges are
    followed from the best hits and each hit says which edge brought it (`via`).
    `persona.memory` is the same operation."""
    if not params.query.strip():
        raise InvalidParams.field("query", "must not be empty")
    persona = await target_persona(ctx, params.persona_id)
    memory = ctx.app.memory
    filters = Filters(
        user_id=ctx.session.user_id,
        persona_id=persona.id,
        memory_type=params.memory_type,
        min_importance=params.min_importance,
        since=to_timestamp(params.since) if params.since else None,
        until=to_timestamp(params.until) if params.until else None,
    )
    if not params.expand:
        hits = await memory.search(
            filters, params.query, params.limit, max_tokens=params.max_tokens
        )
        results = [hit_out(h) for h in hits]
    else:
        direct = await memory.search(filters, params.query, params.limit, record_access=False)
        expanded = (await ctx.app.graph.expand(filters, direct, params.expand_depth))[
            : params.limit
        ]
        if params.max_tokens is not None:
            kept = {id(h) for h in trim_to_tokens([e.hit for e in expanded], params.max_tokens)}
            expanded = [e for e in expanded if id(e.hit) in kept]
        touched = await memory.record_access([e.hit for e in expanded])
        results = [hit_out(h, e.via) for h, e in zip(touched, expanded, strict=True)]
    return MemorySearchResult(
        results=results,
        persona_id=persona.id,
        semantic=memory.semantic and memory.embedder.ready,
    )


class MemoryIdParams(Params):
    memory_id: str = Field(min_length=1, max_length=100)


@ops("memory.get", read_only=True, title="Get a memory")
async def memory_get(ctx: CallContext, params: MemoryIdParams) -> MemoryResult:
    """One memory by id (-32001 when there is none)."""
    row = await ctx.app.memory.get(ctx.session.user_id, params.memory_id)
    return MemoryResult(memory=memory_out(row))


class MemoryDeleteResult(Result):
    deleted: bool
    memory_id: str


@ops("memory.delete", destructive=True, title="Forget a memory")
async def memory_delete(ctx: CallContext, params: MemoryIdParams) -> MemoryDeleteResult:
    """Forget a memory: it is removed from the database, the full-text index and the vector
    index at once, and never returned again."""
    row = await ctx.app.memory.delete(ctx.session.user_id, params.memory_id)
    ctx.app.events.memory_changed(ctx.session.user_id, row.persona_id, [row.id], "deleted")
    return MemoryDeleteResult(deleted=True, memory_id=row.id)


class MemoryStatsParams(Params):
    persona_id: PersonaRef | None = None


class MemoryStatsResult(Result):
    persona_id: str
    total: int
    by_type: dict[str, int]
    importance: dict[str, Any]
    access: dict[str, Any]
    oldest_occurred_at: datetime | None
    newest_occurred_at: datetime | None
    index: dict[str, Any]
    graph: dict[str, Any] = Field(
        description="The persona's knowledge graph: entities, and edges by type"
    )


@ops("memory.stats", read_only=True, aliases=("memory.get_stats",), title="Memory statistics")
async def memory_stats(ctx: CallContext, params: MemoryStatsParams) -> MemoryStatsResult:
    """A persona's memory figures: counts by type, importance distribution, access figures
    and index health (embedded, pending). `memory.get_stats` is the same operation."""
    persona = await target_persona(ctx, params.persona_id)
    data = await ctx.app.memory.stats(ctx.session.user_id, persona)
    data["oldest_occurred_at"] = to_datetime(data["oldest_occurred_at"])
    data["newest_occurred_at"] = to_datetime(data["newest_occurred_at"])
    data["graph"] = await ctx.app.graph.counts(ctx.session.user_id, persona.id)
    return MemoryStatsResult(persona_id=persona.id, **data)


class ImportanceWeightsParams(Params):
    emotional: Unit | None = None
    context: Unit | None = None
    interests: Unit | None = None
    engagement: Unit | None = None
    relationship: Unit | None = None
    recency: Unit | None = None
    base: Unit | None = Field(None, description="Lowest automatic score (default 0.5)")
    cap: Unit | None = Field(None, description="Highest automatic score (default 0.8)")
    reset: bool = Field(False, description="Return to the defaults first")


class ImportanceWeightsResult(Result):
    weights: dict[str, float]
    base: float
    cap: float


@ops("memory.set_importance_weights", idempotent=True, title="Set importance weights")
async def memory_set_importance_weights(
    ctx: CallContext, params: ImportanceWeightsParams
) -> ImportanceWeightsResult:
    """Change how new memories are scored: factor weights (emotional, context, interests,
    engagement, relationship, recency) and the automatic range [base, cap]. Fields left
    out keep their value; the result is persisted."""
    memory, user = ctx.app.memory, ctx.session.user_id
    current = ImportanceConfig() if params.reset else await memory.importance_config(user)
    weights = dict(current.weights)
    for name in DEFAULT_WEIGHTS:
        value = getattr(params, name)
        if value is not None:
            weights[name] = value
    base = params.base if params.base is not None else current.base
    cap = params.cap if params.cap is not None else current.cap
    if sum(weights.values()) <= 0:
        raise InvalidParams.field("weights", "at least one weight must be above 0")
    if base >= cap:
        raise InvalidParams.field("base", "must be below cap")
    config = ImportanceConfig(weights, base, cap)
    await memory.set_importance_config(user, config)
    return ImportanceWeightsResult(**config.as_dict())


class MemoryUpdateParams(Params):
    memory_id: str = Field(min_length=1, max_length=100)
    content: str | None = Field(None, description="New text (the old one is kept as a version)")
    importance: Unit | None = None
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _something(self) -> MemoryUpdateParams:
        if self.content is None and self.importance is None and self.metadata is None:
            raise ValueError("give at least one of content, importance, metadata")
        return self


@ops("memory.update", idempotent=True, title="Edit a memory")
async def memory_update(ctx: CallContext, params: MemoryUpdateParams) -> MemoryResult:
    """Edit a memory's content, importance or metadata. What it said before is kept as a
    version (memory.history); a new text is re-embedded and re-indexed."""
    if params.content is not None:
        ctx.app.memory.check_content(params.content, "content")
    row = await ctx.app.memory.update(
        ctx.session.user_id,
        params.memory_id,
        content=params.content,
        importance=params.importance,
        metadata=params.metadata,
    )
    ctx.app.events.memory_changed(ctx.session.user_id, row.persona_id, [row.id], "updated")
    return MemoryResult(memory=memory_out(row))


class MemoryVersion(Result):
    version: int
    content: str
    importance: float
    metadata: dict[str, Any]
    changed_at: datetime | None
    reason: str


class MemoryHistoryResult(Result):
    memory: Memory
    versions: list[MemoryVersion] = Field(description="Earlier versions, oldest first")
    corrections: list[Memory] = Field(
        description="The memories in its chain of corrections (what it superseded, and "
        "what superseded it), oldest first"
    )


@ops("memory.history", read_only=True, title="A memory's history")
async def memory_history(ctx: CallContext, params: MemoryIdParams) -> MemoryHistoryResult:
    """A memory's earlier versions (edits) and its chain of corrections: the older
    memories it superseded and any newer one that superseded it."""
    row, versions, chain = await ctx.app.memory.history(ctx.session.user_id, params.memory_id)
    return MemoryHistoryResult(
        memory=memory_out(row),
        versions=[
            MemoryVersion(**{**v, "changed_at": to_datetime(v["changed_at"])}) for v in versions
        ],
        corrections=[memory_out(m) for m in chain],
    )


@ops("memory.pin", idempotent=True, title="Pin a memory")
async def memory_pin(ctx: CallContext, params: MemoryIdParams) -> MemoryResult:
    """Pin a memory: it never decays and is never pruned, until unpinned."""
    row = await ctx.app.memory.set_pinned(ctx.session.user_id, params.memory_id, True)
    ctx.app.events.memory_changed(ctx.session.user_id, row.persona_id, [row.id], "updated")
    return MemoryResult(memory=memory_out(row))


@ops("memory.unpin", idempotent=True, title="Unpin a memory")
async def memory_unpin(ctx: CallContext, params: MemoryIdParams) -> MemoryResult:
    """Unpin a memory: it decays and may be pruned again like any other."""
    row = await ctx.app.memory.set_pinned(ctx.session.user_id, params.memory_id, False)
    ctx.app.events.memory_changed(ctx.session.user_id, row.persona_id, [row.id], "updated")
    return MemoryResult(memory=memory_out(row))


class MemoryListParams(Params):
    persona_id: PersonaRef | None = None
    memory_type: MemoryType | None = None
    cursor: str | None = Field(None, max_length=40, description="From the previous page")
    limit: int = Field(50, ge=1, le=500)


class MemoryListResult(Result):
    memories: list[Memory]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
    persona_id: str


@ops("memory.list", read_only=True, title="List memories")
async def memory_list(ctx: CallContext, params: MemoryListParams) -> MemoryListResult:
    """A persona's memories in the order they were stored, a page at a time: pass
    `next_cursor` back as `cursor` for the next page (null when there is none)."""
    persona = await target_persona(ctx, params.persona_id)
    after = 0
    if params.cursor is not None:
        if not params.cursor.isdigit():
            raise InvalidParams.field("cursor", "is not a cursor this server gave")
        after = int(params.cursor)
    rows = await ctx.app.memory.page(
        ctx.session.user_id, persona.id, params.memory_type, after, params.limit + 1
    )
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    return MemoryListResult(
        memories=[memory_out(r) for r in rows],
        next_cursor=str(rows[-1].rid) if more and rows else None,
        persona_id=persona.id,
    )
