"""Users as a whole: create (their own Aria and Kira) and delete (everything of them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from persona_mcp.models.persona import Persona
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result

ops = OperationSet()


class UserCreateParams(Params):
    pass


class UserCreateResult(Result):
    user_id: str
    created: bool = Field(description="False when the user existed already (nothing changed)")
    personas: list[Persona]


@ops("user.create", idempotent=True, title="Create the user")
async def user_create(ctx: CallContext, params: UserCreateParams) -> UserCreateResult:
    """Make sure the calling user exists, with their own Aria and Kira (a user also comes
    into being on first use of any method); `created` says whether they are new."""
    user = ctx.principal.user_id
    created = await ctx.app.users.create(user)
    personas = ctx.app.personas.visible(user)
    return UserCreateResult(
        user_id=user,
        created=created,
        personas=[ctx.app.personas.to_model(p, user) for p in personas],
    )


class UserDeleteParams(Params):
    confirm: Literal[True] = Field(
        description="Must be true: everything of the user is removed, for good"
    )


class UserDeleteResult(Result):
    user_id: str
    deleted: bool
    removed: dict[str, int] = Field(description="Rows removed, by table")


@ops("user.delete", destructive=True, title="Delete the user")
async def user_delete(ctx: CallContext, params: UserDeleteParams) -> UserDeleteResult:
    """Remove everything of the calling user, for good: personas, conversations,
    memories and their graph, archives, settings, sessions and tokens (-32001 when the
    server holds nothing of them). Their next call starts afresh with a new Aria and
    Kira."""
    user = ctx.principal.user_id
    deleted = await ctx.app.users.delete(user)
    ctx.session.active_persona_id = None
    for persona_id in deleted.persona_ids:
        ctx.app.events.publish(
            user, "persona.state", {"persona_id": persona_id, "change": "deleted"}
        )
    return UserDeleteResult(user_id=user, deleted=True, removed=deleted.removed)
