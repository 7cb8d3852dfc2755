"""System operations: status and models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from persona_mcp import __version__
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result

ops = OperationSet()


class SystemStatusParams(Params):
    pass


class LLMStatus(Result):
    provider: str = Field(
        description="The configured provider: auto, ollama, openai, llamacpp or offline"
    )
    active: str = Field(description="The provider serving requests now")
    available: bool
    default_model: str = Field(description="The model the active provider answers with")
    detail: str
    address: str | None = Field(description="Only for admin scope")


class SystemStatusResult(Result):
    version: str
    started_at: datetime
    uptime_seconds: float
    connections: int
    open_sessions: int
    counts: dict[str, int]
    llm: LLMStatus
    embedder: dict[str, Any]
    background: dict[str, Any] | None = Field(description="Only for admin scope")
    storage: dict[str, Any] | None = Field(description="Only for admin scope")


@ops("system.status", read_only=True, open_world=True, title="Server status")
async def system_status(ctx: CallContext, params: SystemStatusParams) -> SystemStatusResult:
    """Server health: version, uptime, connections, your record counts, the LLM provider in
    use and whether it answers, embedder readiness; with admin scope also the background
    jobs, the storage path and size, and the LLM's address."""
    app = ctx.app
    admin = ctx.principal.is_admin
    llm = app.llm
    health = await llm.health()
    active = await llm.resolve()
    return SystemStatusResult(
        version=__version__,
        started_at=datetime.fromtimestamp(app.started_at).astimezone(),
        uptime_seconds=round(app.clock.now() - app.started_at, 3),
        connections=app.connections,
        open_sessions=len(app.sessions.open_sessions),
        counts=await app.counts(ctx.session.user_id),
        llm=LLMStatus(
            provider=app.settings.llm_provider,
            active=active.name,
            available=health.available,
            default_model=active.default_model,
            detail=health.detail,
            address=health.address if admin else None,
        ),
        embedder=app.embedder_status(),
        background=app.background_status() if admin else None,
        storage=await app.storage_status() if admin else None,
    )


class SystemModelsParams(Params):
    pass


class ModelOut(Result):
    name: str
    size: int | None = None
    modified_at: str | None = None
    family: str | None = None


class SystemModelsResult(Result):
    provider: str
    default_model: str
    models: list[ModelOut]


@ops("system.models", read_only=True, open_world=True, title="Available models")
async def system_models(ctx: CallContext, params: SystemModelsParams) -> SystemModelsResult:
    """The models the LLM provider in use offers, and the default model. Fails with
    -32005 when the configured provider cannot be reached."""
    provider = await ctx.app.llm.resolve()
    models = await provider.list_models()
    return SystemModelsResult(
        provider=provider.name,
        default_model=provider.default_model,
        models=[ModelOut(**vars(m)) for m in models],
    )
