"""Memory lifecycle operations: decay, pruning, restore, and their configuration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from persona_mcp.clock import to_datetime
from persona_mcp.memory.decay import DecayMode
from persona_mcp.memory.pruning import Strategy
from persona_mcp.operations.common import PersonaRef, target_persona
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result

ops = OperationSet()


# -- decay ------------------------------------------------------------------------------


class DecayConfigParams(Params):
    mode: DecayMode | None = None
    rate: float | None = Field(None, gt=0, le=1, description="Importance lost per hour")
    interval_seconds: float | None = Field(None, ge=0.1, le=30 * 86400)
    min_importance: float | None = Field(None, ge=0, le=1, description="The floor")
    enabled: bool | None = None


class DecayConfigResult(Result):
    mode: str
    rate: float
    interval_seconds: float
    min_importance: float
    enabled: bool


@ops("memory.set_decay_config", idempotent=True, title="Configure decay", admin=True)
async def memory_set_decay_config(ctx: CallContext, params: DecayConfigParams) -> DecayConfigResult:
    """Change how memories age: mode (linear, exponential, logarithmic, step,
    access_based), rate (per hour), interval_seconds of the background job, min_importance
    (the floor) and enabled. Fields left out keep their value; the result is persisted.
    Server-wide: needs admin scope."""
    config = await ctx.app.decay.set_config(**params.model_dump())
    return DecayConfigResult(**config.__dict__)


class DecayForceParams(Params):
    persona_id: PersonaRef | None = Field(
        None, description="Only this persona's memories (default: all of yours)"
    )
    mode: DecayMode | None = None
    rate: float | None = Field(None, gt=0, le=1, description="Per hour (default: configured)")
    hours: float | None = Field(
        None, gt=0, le=24 * 365 * 10, description="Age as if this much time had passed"
    )


class DecayForceResult(Result):
    decayed: int = Field(description="Memories whose importance fell")
    mode: str
    rate: float
    hours: float | None
    min_importance: float
    seconds: float


@ops("memory.decay_force", title="Decay memories now")
async def memory_decay_force(ctx: CallContext, params: DecayForceParams) -> DecayForceResult:
    """Apply decay now, as if `hours` had passed (default: the time since each memory last
    aged). Importance never falls below the configured floor."""
    persona = await target_persona(ctx, params.persona_id) if params.persona_id else None
    result = await ctx.app.decay.run_pass(
        trigger="forced",
        user_id=ctx.session.user_id,
        persona_id=persona.id if persona else None,
        mode=params.mode,
        rate=params.rate,
        hours=params.hours,
    )
    return DecayForceResult(**result)


class DecayStartParams(Params):
    interval_seconds: float | None = Field(None, ge=0.1, le=30 * 86400)
    mode: DecayMode | None = None


class DecayStatsParams(Params):
    pass


class DecayStatsResult(Result):
    running: bool
    enabled: bool
    mode: str
    rate: float
    interval_seconds: float
    min_importance: float
    runs: int
    decayed_total: int
    last_run_at: datetime | None
    next_run_at: datetime | None


async def _decay_stats(ctx: CallContext) -> DecayStatsResult:
    data = await ctx.app.decay.stats()
    data["last_run_at"] = to_datetime(data["last_run_at"])
    data["next_run_at"] = to_datetime(data["next_run_at"])
    return DecayStatsResult(**data)


@ops("memory.decay_start", idempotent=True, title="Start background decay", admin=True)
async def memory_decay_start(ctx: CallContext, params: DecayStartParams) -> DecayStatsResult:
    """Start (or restart with new settings) the background decay job; it runs a pass every
    interval_seconds and stays on across restarts until memory.decay_stop. Needs admin
    scope."""
    decay = ctx.app.decay
    await decay.set_config(interval_seconds=params.interval_seconds, mode=params.mode, enabled=True)
    await decay.start_job()
    return await _decay_stats(ctx)


@ops("memory.decay_stop", idempotent=True, title="Stop background decay", admin=True)
async def memory_decay_stop(ctx: CallContext, params: DecayStatsParams) -> DecayStatsResult:
    """Stop the background decay job (and keep it off across restarts). Needs admin
    scope."""
    await ctx.app.decay.stop_job()
    await ctx.app.decay.set_config(enabled=False)
    return await _decay_stats(ctx)


@ops("memory.decay_stats", read_only=True, title="Decay status")
async def memory_decay_stats(ctx: CallContext, params: DecayStatsParams) -> DecayStatsResult:
    """Whether background decay runs, its settings, and what passes have done so far."""
    return await _decay_stats(ctx)


# -- pruning ----------------------------------------------------------------------------


class PruneParams(Params):
    persona_id: PersonaRef | None = None
    strategy: Strategy | None = None
    target_count: int | None = Field(
        None, ge=0, description="Prune down to this many (never below 10); default: by score"
    )
    dry_run: bool = Field(False, description="Report what would go, delete nothing")


class PruneResult(Result):
    persona_id: str
    strategy: str
    dry_run: bool
    pruned_count: int
    pruned_ids: list[str]
    prune_run_id: str | None = Field(description="Give to memory.restore to undo this prune")
    total_before: int
    remaining: int
    protected: int = Field(description="Memories no prune may remove (importance, accesses)")
    seconds: float


@ops("memory.prune", destructive=True, title="Prune memories")
async def memory_prune(ctx: CallContext, params: PruneParams) -> PruneResult:
    """Remove a persona's least valuable memories into the archive (restorable). Never
    removes a memory with importance >= 0.8 or accessed 8+ times, never leaves fewer than
    10. With dry_run nothing is removed."""
    persona = await target_persona(ctx, params.persona_id)
    result = await ctx.app.pruning.prune(
        ctx.session.user_id,
        persona.id,
        strategy=params.strategy,
        target_count=params.target_count,
        dry_run=params.dry_run,
    )
    return PruneResult(**result)


class PruneAllParams(Params):
    strategy: Strategy | None = None
    dry_run: bool = False
    all_users: bool = Field(
        False, description="Every user's personas, not only yours (needs admin scope)"
    )


class PruneAllResult(Result):
    dry_run: bool
    pruned_count: int
    personas: list[PruneResult]


@ops("memory.prune_all", destructive=True, title="Prune every persona")
async def memory_prune_all(ctx: CallContext, params: PruneAllParams) -> PruneAllResult:
    """Prune every one of your personas by score, with the same protections as
    memory.prune; with all_users (admin scope), every user's personas, each by its
    owner's pruning config."""
    app = ctx.app
    if params.all_users:
        ctx.principal.require_admin("memory.prune_all with all_users")
        users = app.personas.users()
    else:
        users = [ctx.session.user_id]
    targets = [(user, p.id) for user in users for p in app.personas.visible(user)]
    personas: list[Any] = []
    for done, (user, pid) in enumerate(targets, 1):  # one persona at a time, for progress
        one = await app.pruning.prune_all(
            user, [pid], strategy=params.strategy, dry_run=params.dry_run
        )
        personas += one["personas"]
        await ctx.progress(done, len(targets), f"pruned {done} of {len(targets)} personas")
    pruned = sum(r["pruned_count"] for r in personas)
    return PruneAllResult(dry_run=params.dry_run, pruned_count=pruned, personas=personas)


class PruneRecommendationsParams(Params):
    persona_id: PersonaRef | None = None
    strategy: Strategy | None = None
    limit: int = Field(50, ge=1, le=1000)


class PruneCandidate(Result):
    memory_id: str
    content: str
    importance: float
    access_count: int
    age_days: float
    score: float
    reason: str


class PruneRecommendationsResult(Result):
    strategy: str
    total: int
    protected: int
    prune_below: float
    candidates: list[PruneCandidate]


@ops("memory.prune_recommendations", read_only=True, title="Preview pruning")
async def memory_prune_recommendations(
    ctx: CallContext, params: PruneRecommendationsParams
) -> PruneRecommendationsResult:
    """The memories a prune would remove first, with the reason for each; removes nothing."""
    persona = await target_persona(ctx, params.persona_id)
    data = await ctx.app.pruning.recommendations(
        ctx.session.user_id, persona.id, params.strategy, params.limit
    )
    return PruneRecommendationsResult(**data)


class PruneStatsParams(Params):
    pass


class PruneStatsResult(Result):
    runs: int
    pruned_total: int
    restored_total: int
    archived: int
    seconds_total: float
    pruned_by_trigger: dict[str, int]
    last_run: dict[str, Any] | None
    config: dict[str, Any]


@ops("memory.prune_stats", read_only=True, title="Pruning statistics")
async def memory_prune_stats(ctx: CallContext, params: PruneStatsParams) -> PruneStatsResult:
    """What pruning has done: runs, memories pruned and restored, the archive, the config."""
    return PruneStatsResult(**await ctx.app.pruning.stats(ctx.session.user_id))


class PruningConfigParams(Params):
    strategy: Strategy | None = None
    prune_below: float | None = Field(None, ge=0, le=1)
    batch_size: int | None = Field(None, ge=1, le=100_000)
    auto_prune: bool | None = None
    max_memories_per_persona: int | None = Field(None, ge=20)
    pruning_threshold: int | None = Field(None, ge=10)


class PruningConfigResult(Result):
    strategy: str
    prune_below: float
    batch_size: int
    auto_prune: bool
    max_memories_per_persona: int
    pruning_threshold: int


@ops("memory.set_pruning_config", idempotent=True, title="Configure pruning")
async def memory_set_pruning_config(
    ctx: CallContext, params: PruningConfigParams
) -> PruningConfigResult:
    """Change your pruning strategy, score threshold, batch size and the automatic limits
    (prune past max_memories_per_persona back to pruning_threshold). Per user; persisted."""
    config = await ctx.app.pruning.set_config(ctx.session.user_id, **params.model_dump())
    return PruningConfigResult(**config.__dict__)


class RestoreParams(Params):
    memory_ids: list[str] | None = Field(None, min_length=1, max_length=10_000)
    prune_run_id: str | None = None

    @model_validator(mode="after")
    def _one(self) -> RestoreParams:
        if (self.memory_ids is None) == (self.prune_run_id is None):
            raise ValueError("give exactly one of memory_ids or prune_run_id")
        return self


class RestoreResult(Result):
    restored_count: int
    restored_ids: list[str]


@ops("memory.restore", idempotent=True, title="Restore pruned memories")
async def memory_restore(ctx: CallContext, params: RestoreParams) -> RestoreResult:
    """Bring pruned memories back exactly (content, importance, metadata, embedding),
    searchable again: by their ids, or everything one prune run removed."""
    ids = await ctx.app.pruning.restore(
        ctx.session.user_id, memory_ids=params.memory_ids, run_id=params.prune_run_id
    )
    return RestoreResult(restored_count=len(ids), restored_ids=ids)
