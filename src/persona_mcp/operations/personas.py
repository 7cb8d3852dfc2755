"""Persona operations: list, create, update, delete, switch, status, chat."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints

from persona_mcp.clock import to_datetime
from persona_mcp.errors import InvalidParams
from persona_mcp.models.persona import InteractionState, Persona
from persona_mcp.operations.common import Name, PersonaRef, target_persona
from persona_mcp.operations.portability import VisualContext, visual_model
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result
from persona_mcp.operations.social import Mood, Relationship, mood_model, relationship_model
from persona_mcp.personas.relationships import USER

ops = OperationSet()

Text = Annotated[str, StringConstraints(max_length=8000)]
Trait = Name
Weight = Annotated[float, Field(ge=0.0, le=1.0)]


class PersonaListParams(Params):
    pass


class PersonaListResult(Result):
    # Frozen, of frozen personas: while nothing changed, the registry reuses its JSON.
    model_config = ConfigDict(frozen=True)

    personas: list[Persona]
    active_persona_id: str | None = Field(description="This session's active persona")


@ops("persona.list", read_only=True, title="List personas", immediate=True)
async def persona_list(ctx: CallContext, params: PersonaListParams) -> PersonaListResult:
    """List the caller's personas with their interaction state and mood, and which one is
    active in this session."""
    app, session = ctx.app, ctx.session
    rows = app.personas.visible(session.user_id)
    active = app.sessions.active_persona(session).id if rows else None
    return PersonaListResult(
        personas=[app.personas.to_model(p, session.user_id) for p in rows],
        active_persona_id=active,
    )


class PersonaCreateParams(Params):
    name: Name
    description: Text = ""
    personality_traits: list[Trait] = Field(default_factory=list, max_length=32)
    backstory: Text = ""
    topic_preferences: dict[Name, Weight] = Field(
        default_factory=dict, max_length=64, description="topic -> interest weight in [0, 1]"
    )
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="An LLM model for this persona, overriding DEFAULT_MODEL"
    )
    social_energy: float = Field(80.0, ge=0, le=100, description="Resting social energy")
    available_time: float = Field(90.0, ge=0, le=1440, description="Resting minutes available")


class PersonaResult(Result):
    persona: Persona


@ops("persona.create", title="Create a persona")
async def persona_create(ctx: CallContext, params: PersonaCreateParams) -> PersonaResult:
    """Create a persona of your own; it persists across restarts. Names are unique per
    user (case-insensitive): a taken name is a conflict (-32002)."""
    app, user = ctx.app, ctx.session.user_id
    row = await app.personas.create(user, **params.model_dump())
    app.events.publish(user, "persona.state", {"persona_id": row.id, "change": "created"})
    return PersonaResult(persona=app.personas.to_model(row, user))


class PersonaUpdateParams(Params):
    persona_id: PersonaRef
    name: Name | None = None
    description: Text | None = None
    personality_traits: list[Trait] | None = Field(None, max_length=32)
    backstory: Text | None = None
    topic_preferences: dict[Name, Weight] | None = Field(None, max_length=64)
    model: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        None, description="A model name; an empty string clears the override"
    )


@ops("persona.update", idempotent=True, title="Update a persona")
async def persona_update(ctx: CallContext, params: PersonaUpdateParams) -> PersonaResult:
    """Change a persona's name, description, traits, backstory, topic preferences or
    model; fields left out stay as they are."""
    changes = params.model_dump(exclude={"persona_id"}, exclude_unset=True)
    changes = {k: v for k, v in changes.items() if v is not None or k == "model"}
    if "model" in changes and not changes["model"]:
        changes["model"] = None
    if not changes:
        raise InvalidParams.field("params", "name at least one field to change")
    app, user = ctx.app, ctx.session.user_id
    row = await app.personas.update(user, params.persona_id, **changes)
    return PersonaResult(persona=app.personas.to_model(row, user))


class PersonaDeleteParams(Params):
    persona_id: PersonaRef


class PersonaDeleteResult(Result):
    deleted: bool
    persona_id: str
    name: str


@ops("persona.delete", destructive=True, title="Delete a persona")
async def persona_delete(ctx: CallContext, params: PersonaDeleteParams) -> PersonaDeleteResult:
    """Delete a persona and everything it holds: its conversations, messages, state and
    memories. Nothing of it is kept."""
    row = await ctx.app.personas.delete(ctx.session.user_id, params.persona_id)
    ctx.app.events.publish(
        row.user_id, "persona.state", {"persona_id": row.id, "change": "deleted"}
    )
    ctx.app.memory.vectors.drop((ctx.session.user_id, row.id))
    ctx.app.social.forget(row.id)
    if ctx.session.active_persona_id == row.id:
        ctx.session.active_persona_id = None
    return PersonaDeleteResult(deleted=True, persona_id=row.id, name=row.name)


class PersonaSwitchParams(Params):
    persona_id: PersonaRef


class PersonaSwitchResult(Result):
    active_persona: Persona
    previous_persona_id: str | None
    conversation_id: str | None = Field(
        description="The persona's current conversation with you, which continues"
    )
    turns: int


@ops("persona.switch", idempotent=True, barrier=True, title="Switch the active persona")
async def persona_switch(ctx: CallContext, params: PersonaSwitchParams) -> PersonaSwitchResult:
    """Make a persona (by id or name) the active one for this session. Each persona's
    conversation with you is kept: switching back continues it."""
    app, session = ctx.app, ctx.session
    persona, previous = await app.sessions.switch(session, params.persona_id)
    current = await app.conversations.current(session.user_id, persona)
    return PersonaSwitchResult(
        active_persona=app.personas.to_model(persona, session.user_id),
        previous_persona_id=previous,
        conversation_id=current.id if current else None,
        turns=current.turn_count if current else 0,
    )


class PersonaStatusParams(Params):
    persona_id: PersonaRef | None = None


class ConversationBrief(Result):
    conversation_id: str | None
    status: str
    turns: int
    summary: str
    continue_score: float
    response_type: str


class PersonaStatusResult(Result):
    persona: Persona
    interaction_state: InteractionState
    mood: str
    active: bool
    conversation: ConversationBrief
    memory_count: int
    mood_state: Mood = Field(description="The emotional mood: label, intensity, valence, arousal")
    user_relationship: Relationship | None = Field(
        description="The persona's relationship with you (None before your first exchange)"
    )
    visual: VisualContext | None = Field(
        None, description="What the persona sees now (visual.update), unless it expired"
    )


@ops("persona.status", read_only=True, title="Persona status")
async def persona_status(ctx: CallContext, params: PersonaStatusParams) -> PersonaStatusResult:
    """A persona's state (the active one by default): interaction state, mood (a word, and
    the emotional mood with its intensity), its relationship with you, its current
    conversation with you, and how many memories it holds."""
    app, session = ctx.app, ctx.session
    row = await target_persona(ctx, params.persona_id)
    model = app.personas.to_model(row, session.user_id)
    conv = await app.conversations.status(session.user_id, row, None)
    rel = app.social.relationship(session.user_id, row.id, USER)
    history = await app.social.history(session.user_id, row.id, USER, 5) if rel else []
    return PersonaStatusResult(
        persona=model,
        interaction_state=model.interaction_state,
        mood=model.mood,
        active=app.sessions.active_persona(session).id == row.id,
        conversation=ConversationBrief(
            conversation_id=conv["conversation_id"],
            status=conv["status"],
            turns=conv["turns"],
            summary=conv["summary"],
            continue_score=conv["continue_score"],
            response_type=conv["response_type"],
        ),
        memory_count=await app.memory_count(session.user_id, row.id),
        mood_state=mood_model(
            app.social.mood(session.user_id, row.id),
            await app.social.mood_history(session.user_id, row.id, 5),
        ),
        user_relationship=relationship_model(
            app.social, session.user_id, row.id, USER, rel, history
        )
        if rel
        else None,
        visual=visual_model(seen)
        if (seen := await app.visual.current(session.user_id, row.id))
        else None,
    )


class PersonaChatParams(Params):
    message: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="What you say to the persona"
    )
    persona_id: PersonaRef | None = Field(
        None, description="Talk to this persona (id or name) instead of the active one"
    )
    conversation_id: str | None = Field(
        None, description="Continue this conversation (default: the persona's current one)"
    )
    stream: bool = Field(
        False, description="WebSocket only: send persona.chat.delta notifications as text arrives"
    )


class MemoryUsed(Result):
    id: str
    content: str
    memory_type: str
    score: float
    occurred_at: datetime
    speaker: str = Field(description="Who said it: user, persona or api")
    source: dict[str, Any] = Field(description="The conversation turn it came from, if any")
    why: dict[str, Any] = Field(description="The parts of its score and the matched terms")


class PersonaChatResult(Result):
    response: str
    persona_id: str
    conversation_id: str
    turn_number: int
    continue_score: float
    response_type: str
    tokens_used: int
    processing_time: float
    model: str
    memories_used: list[MemoryUsed]
    stored_memory_ids: list[str]


@ops("persona.chat", open_world=True, ordered=True, cancellable=True, title="Chat with a persona")
async def persona_chat(ctx: CallContext, params: PersonaChatParams) -> PersonaChatResult:
    """Say something to a persona and get its reply. The exchange is stored in the
    conversation and in the persona's memory; relevant memories are recalled into the
    prompt. Uses the configured LLM, or the offline responder (model "offline")."""
    app, session = ctx.app, ctx.session
    persona = await target_persona(ctx, params.persona_id, params.conversation_id)

    on_delta = None
    if params.stream and ctx.notify is not None:
        notify = ctx.notify

        async def on_delta(piece: str) -> None:
            await notify(
                "persona.chat.delta",
                {"request_id": ctx.request_id, "persona_id": persona.id, "delta": piece},
            )

    outcome = await app.conversations.chat(
        session.user_id, persona, params.message, params.conversation_id, on_delta
    )
    # The turn has committed; its effect on the relationship and mood is written whole too.
    await asyncio.shield(app.social.after_exchange(session.user_id, persona, params.message))
    app.events.publish(
        session.user_id,
        "conversation.turn",
        {
            "persona_id": outcome.persona_id,
            "conversation_id": outcome.conversation_id,
            "turn_number": outcome.turn_number,
            "message": params.message,
            "response": outcome.response,
            "model": outcome.model,
            "continue_score": outcome.continue_score,
        },
    )
    app.events.memory_changed(
        session.user_id, outcome.persona_id, outcome.stored_memory_ids, "stored"
    )
    return PersonaChatResult(
        response=outcome.response,
        persona_id=outcome.persona_id,
        conversation_id=outcome.conversation_id,
        turn_number=outcome.turn_number,
        continue_score=outcome.continue_score,
        response_type=outcome.response_type,
        tokens_used=outcome.tokens_used,
        processing_time=outcome.processing_time,
        model=outcome.model,
        memories_used=[
            MemoryUsed(
                id=m.id,
                content=m.content,
                memory_type=m.memory_type,
                score=round(m.score, 4),
                occurred_at=to_datetime(m.occurred_at),
                speaker=m.speaker,
                source=m.why.get("source", {}),
                why=m.why,
            )
            for m in outcome.memories_used
        ],
        stored_memory_ids=outcome.stored_memory_ids,
    )
