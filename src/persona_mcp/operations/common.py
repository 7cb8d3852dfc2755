"""Pieces several operation modules share."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from persona_mcp.operations.registry import CallContext
from persona_mcp.store.personas import PersonaRow

PersonaRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    Field(description="A persona's id, or its name (case-insensitive)"),
]


async def target_persona(
    ctx: CallContext, persona_id: str | None, conversation_id: str | None = None
) -> PersonaRow:
    """The persona a request is about: named, else the conversation's, else the active one."""
    app, session = ctx.app, ctx.session
    if conversation_id and not persona_id:
        conv = await app.conversations.get(session.user_id, conversation_id)
        return app.personas.resolve(session.user_id, conv.persona_id)
    return app.sessions.persona(session, persona_id)
