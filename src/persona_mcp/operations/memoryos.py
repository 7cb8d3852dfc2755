"""MemoryOS-compatible tools (`add_memory`, `retrieve_memory`, `get_user_profile`) and
`memory.tiers`, over the hierarchy of `memory.tiers`.

The tools keep MemoryOS's names, parameters and result shapes, so a MemoryOS client can
point at this server unchanged: arguments are accepted flat or wrapped as
`{"params": {...}}` (as MemoryOS's own examples send them). A `user_id` argument is
accepted for compatibility and ignored: the caller is whoever the connection says it is.
The assistant is the caller's active persona (or `persona_id`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from persona_mcp.clock import to_datetime, to_timestamp
from persona_mcp.memory import tier_rules
from persona_mcp.operations.common import Metadata, PersonaRef, When, target_persona
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result
from persona_mcp.store.tiers import Page

ops = OperationSet()

Text = Annotated[str, StringConstraints(min_length=1, max_length=32 * 1024)]


class MemoryOSParams(Params):
    """Flat or wrapped (`{"params": {...}}`) arguments; `user_id` is accepted, unused."""

    user_id: str | None = Field(None, description="Ignored: the caller's own user is used")
    persona_id: PersonaRef | None = Field(None, description="Default: the active persona")

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) == {"params"} and isinstance(data["params"], dict):
            return data["params"]
        return data


def _iso(ts: float | None) -> str | None:
    when = to_datetime(ts)
    return when.isoformat() if when else None


def _page(page: Page, score: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "user_input": page.user_input,
        "agent_response": page.agent_response,
        "timestamp": _iso(page.timestamp),
        "meta_data": page.meta_data,
    }
    if score is not None:
        out["score"] = round(score, 4)
        out["segment_id"] = page.segment_id
    return out


class AddMemoryParams(MemoryOSParams):
    user_input: Text
    agent_response: Text
    timestamp: When | None = Field(None, description="When it was said (default: now)")
    meta_data: Metadata = Field(default_factory=dict)


class AddMemoryResult(Result):
    status: str
    message: str
    timestamp: str
    persona_id: str
    details: dict[str, Any]


@ops("add_memory", title="Add a conversation page (MemoryOS)")
async def add_memory(ctx: CallContext, params: AddMemoryParams) -> AddMemoryResult:
    """MemoryOS: store one user-input / agent-response pair in short-term memory; the
    oldest pages overflow into mid-term segments."""
    persona = await target_persona(ctx, params.persona_id)
    when = to_timestamp(params.timestamp) if params.timestamp else None
    added = await ctx.app.tiers.add_page(
        ctx.session.user_id, persona, params.user_input, params.agent_response, when,
        params.meta_data,
    )  # fmt: skip
    now = ctx.app.clock.now()
    return AddMemoryResult(
        status="success",
        message="Memory added successfully",
        timestamp=_iso(when if when is not None else now) or "",
        persona_id=persona.id,
        details=added,
    )


class RetrieveMemoryParams(MemoryOSParams):
    query: Text
    relationship_with_user: str | None = Field(None, max_length=200)
    style_hint: str | None = Field(None, max_length=200)
    max_results: int = Field(10, ge=1, le=100)


class RetrieveMemoryResult(Result):
    status: str
    query: str
    timestamp: str
    persona_id: str
    user_profile: str
    short_term_memory: list[dict[str, Any]]
    short_term_count: int
    retrieved_pages: list[dict[str, Any]]
    retrieved_user_knowledge: list[dict[str, Any]]
    retrieved_assistant_knowledge: list[dict[str, Any]]
    total_pages_found: int
    total_user_knowledge_found: int
    total_assistant_knowledge_found: int
    promoted_segments: list[str] = Field(description="Segments this retrieval promoted")
    relationship_with_user: str | None
    style_hint: str | None


@ops("retrieve_memory", title="Retrieve memory (MemoryOS)")
async def retrieve_memory(ctx: CallContext, params: RetrieveMemoryParams) -> RetrieveMemoryResult:
    """MemoryOS: the short-term pages, the mid-term pages and long-term knowledge most
    relevant to the query, and the user profile. Visited segments heat up; hot ones are
    promoted into the profile and knowledge."""
    persona = await target_persona(ctx, params.persona_id)
    found = await ctx.app.tiers.retrieve(
        ctx.session.user_id, persona, params.query, params.max_results
    )

    def knowledge(items: list[Any]) -> list[dict[str, Any]]:
        return [
            {"knowledge": k.text, "timestamp": _iso(k.created_at), "score": round(score, 4)}
            for k, score in items
        ]

    return RetrieveMemoryResult(
        status="success",
        query=params.query,
        timestamp=_iso(ctx.app.clock.now()) or "",
        persona_id=persona.id,
        user_profile=tier_rules.profile_text(found.profile or {}),
        short_term_memory=[_page(p) for p in found.short_term],
        short_term_count=len(found.short_term),
        retrieved_pages=[_page(h.page, h.score) for h in found.pages],
        retrieved_user_knowledge=knowledge(found.user_knowledge),
        retrieved_assistant_knowledge=knowledge(found.assistant_knowledge),
        total_pages_found=len(found.pages),
        total_user_knowledge_found=len(found.user_knowledge),
        total_assistant_knowledge_found=len(found.assistant_knowledge),
        promoted_segments=found.promoted,
        relationship_with_user=params.relationship_with_user,
        style_hint=params.style_hint,
    )


class GetUserProfileParams(MemoryOSParams):
    include_knowledge: bool = True
    include_assistant_knowledge: bool = False


class GetUserProfileResult(Result):
    status: str
    timestamp: str
    persona_id: str
    user_profile: str
    profile: dict[str, Any] = Field(description="The profile's parts and its extractor")
    user_knowledge: list[dict[str, Any]] | None = None
    user_knowledge_count: int
    assistant_knowledge: list[dict[str, Any]] | None = None
    assistant_knowledge_count: int


@ops("get_user_profile", read_only=True, title="Get the user profile (MemoryOS)")
async def get_user_profile(ctx: CallContext, params: GetUserProfileParams) -> GetUserProfileResult:
    """MemoryOS: the user profile built from promoted segments, with the knowledge about
    the user (and, when asked, what the assistant said it knows or promised)."""
    persona = await target_persona(ctx, params.persona_id)
    user = ctx.session.user_id
    profile = await ctx.app.tiers.profile(user, persona.id) or {}
    items = await ctx.app.tiers.knowledge(user, persona.id)

    def listed(kind: str) -> list[dict[str, Any]]:
        return [
            {"knowledge": k.text, "timestamp": _iso(k.created_at), "extractor": k.extractor}
            for k in items
            if k.kind == kind
        ]

    users, assistants = listed("user"), listed("assistant")
    return GetUserProfileResult(
        status="success",
        timestamp=_iso(ctx.app.clock.now()) or "",
        persona_id=persona.id,
        user_profile=tier_rules.profile_text(profile),
        profile=profile,
        user_knowledge=users if params.include_knowledge else None,
        user_knowledge_count=len(users),
        assistant_knowledge=assistants if params.include_assistant_knowledge else None,
        assistant_knowledge_count=len(assistants),
    )


class TiersParams(Params):
    persona_id: PersonaRef | None = None
    hottest: int = Field(5, ge=1, le=100)


class TiersResult(Result):
    persona_id: str
    counts: dict[str, int]
    hottest_segments: list[dict[str, Any]]
    profile: dict[str, Any] | None
    settings: dict[str, Any]


@ops("memory.tiers", read_only=True, title="MemoryOS tiers of a persona")
async def memory_tiers(ctx: CallContext, params: TiersParams) -> TiersResult:
    """How a persona's MemoryOS tiers stand: pages in short- and mid-term, segments,
    knowledge counts, the hottest segments with their heat, and the user profile."""
    persona = await target_persona(ctx, params.persona_id)
    overview = await ctx.app.tiers.overview(ctx.session.user_id, persona.id, params.hottest)
    for seg in overview["hottest_segments"]:
        seg["promoted_at"] = _iso(seg["promoted_at"])
    return TiersResult(persona_id=persona.id, **overview)
