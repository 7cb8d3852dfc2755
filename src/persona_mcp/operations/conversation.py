"""Conversation operations: start, end, status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from persona_mcp.operations.common import PersonaRef, target_persona
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result

ops = OperationSet()


class ConversationStartParams(Params):
    persona_id: PersonaRef | None = None
    title: Annotated[str, StringConstraints(max_length=200)] | None = None


class ConversationStartResult(Result):
    conversation_id: str
    persona_id: str
    title: str | None
    previous_conversation_id: str | None = Field(
        description="The conversation this one replaces, now ended and summarized"
    )
    previous_summary: str | None


@ops("conversation.start", open_world=True, ordered=True, title="Start a conversation")
async def conversation_start(
    ctx: CallContext, params: ConversationStartParams
) -> ConversationStartResult:
    """Start a fresh conversation with a persona (the active one by default). Its current
    conversation, if any, is ended and summarized first."""
    app, session = ctx.app, ctx.session
    persona = await target_persona(ctx, params.persona_id)
    started = await app.conversations.start(session.user_id, persona, params.title)
    return ConversationStartResult(**started)


class ConversationEndParams(Params):
    conversation_id: str | None = None
    persona_id: PersonaRef | None = None


class ConversationEndResult(Result):
    conversation_id: str
    persona_id: str
    summary: str
    summary_source: str = Field(description="'llm' or 'extractive'")
    turns: int
    stored_memory_ids: list[str]


@ops("conversation.end", open_world=True, ordered=True, title="End a conversation")
async def conversation_end(
    ctx: CallContext, params: ConversationEndParams
) -> ConversationEndResult:
    """End a conversation (the active persona's current one by default): it is summarized
    and the summary is kept as an episode memory. The next chat starts a new one."""
    app, session = ctx.app, ctx.session
    persona = await target_persona(ctx, params.persona_id, params.conversation_id)
    ended = await app.conversations.end(session.user_id, persona, params.conversation_id)
    return ConversationEndResult(**ended)


class ConversationStatusParams(Params):
    conversation_id: str | None = None
    persona_id: PersonaRef | None = None


class MessageOut(Result):
    role: Literal["user", "assistant"]
    content: str
    turn_number: int
    created_at: datetime
    model: str | None


class ConversationStatusResult(Result):
    conversation_id: str | None = Field(description="null when the persona has none yet")
    persona_id: str
    status: Literal["active", "ended", "none"]
    title: str | None
    turns: int
    messages: int
    recent_messages: list[MessageOut] = Field(description="The recent window sent in prompts")
    summary: str = Field(description="Summary of the turns older than the window")
    summary_covers_messages: int
    continue_score: float
    response_type: str
    started_at: datetime | None
    updated_at: datetime | None


@ops("conversation.status", read_only=True, title="Conversation status")
async def conversation_status(
    ctx: CallContext, params: ConversationStatusParams
) -> ConversationStatusResult:
    """A conversation's state (the active persona's current one by default): turns, the
    recent message window, the summary of older turns and the continue score."""
    app, session = ctx.app, ctx.session
    persona = await target_persona(ctx, params.persona_id, params.conversation_id)
    status = await app.conversations.status(session.user_id, persona, params.conversation_id)
    return ConversationStatusResult(**status)
