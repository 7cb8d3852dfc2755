"""Portability operations: the state file, Character Cards, visual context."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from persona_mcp.clock import to_datetime
from persona_mcp.errors import InvalidParams
from persona_mcp.models.persona import Persona
from persona_mcp.operations.common import Name, PersonaRef, target_persona
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result
from persona_mcp.portability import cards
from persona_mcp.portability.state import (
    FORMAT_VERSION,
    Progress,
    confined_path,
    default_name,
    shown_path,
)
from persona_mcp.store.visual import VisualRow

ops = OperationSet()

FilePath = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


def _progress(ctx: CallContext) -> tuple[Progress, Callable[[], Awaitable[None]]]:
    """A progress callback for the services (called from any thread) that forwards to
    the door, and a way to wait until every report has been sent."""
    loop = asyncio.get_running_loop()
    sent: list[asyncio.Future[None]] = []

    def report(stage: str, done: int, total: int | None) -> None:
        def send() -> None:
            sent.append(asyncio.ensure_future(ctx.progress(done, total, stage)))

        loop.call_soon_threadsafe(send)

    async def flush() -> None:
        await asyncio.sleep(0)  # let reports scheduled from threads land
        await asyncio.gather(*sent, return_exceptions=True)

    return report, flush


class StateSaveParams(Params):
    path: FilePath | None = Field(
        None,
        description="A file name in your folder of DATA_DIR/exports/ (default: "
        "state-<UTC time>.jsonl.gz); an admin may give any path",
    )


class StateSaveResult(Result):
    path: str = Field(description="The file, relative to your DATA_DIR/exports/ folder")
    bytes: int
    counts: dict[str, int] = Field(description="Rows saved per section")
    format_version: int


@ops("state.save", title="Save your state to a file")
async def state_save(ctx: CallContext, params: StateSaveParams) -> StateSaveResult:
    """Save everything of yours (personas with their state and mood, conversations and
    messages, memories with their embeddings, archives and prune runs, relationships,
    moods, settings, the MemoryOS tiers, visual context) to one portable file, gzip JSON
    Lines with a format version, in your folder of DATA_DIR/exports/ (an admin may name
    any path)."""
    app = ctx.app
    path = confined_path(
        app.settings,
        ctx.session.user_id,
        params.path,
        admin=ctx.principal.is_admin,
        default=default_name(app.clock.now()),
    )
    report, flush = _progress(ctx)
    saved = await app.state.save(ctx.session.user_id, path, report)
    await flush()
    return StateSaveResult(
        path=shown_path(app.settings, ctx.session.user_id, saved.path),
        bytes=saved.bytes,
        counts=saved.counts,
        format_version=FORMAT_VERSION,
    )


class StateLoadParams(Params):
    path: FilePath = Field(
        description="A file saved by state.save (relative to your DATA_DIR/exports/ folder)"
    )
    mode: Literal["merge", "replace"] = Field(
        "merge",
        description="merge: the file's personas replace yours of the same id or name, the "
        "others stay; replace: everything of yours is removed first",
    )


class StateLoadResult(Result):
    path: str
    mode: str
    counts: dict[str, int] = Field(description="Rows loaded per section")
    reembedded: int = Field(description="Vectors of another embedding model made again")
    replaced_personas: list[str] = Field(description="Your personas the load replaced or removed")


@ops("state.load", destructive=True, barrier=True, title="Load your state from a file")
async def state_load(ctx: CallContext, params: StateLoadParams) -> StateLoadResult:
    """Load a file saved by state.save into your data. The whole file is checked first
    (-32602 naming what is wrong) and written in one transaction, ids included; vectors
    made by another embedding model are made again. `merge` (default) replaces the
    personas the file holds, `replace` everything of yours."""
    app = ctx.app
    path = confined_path(
        app.settings, ctx.session.user_id, params.path, admin=ctx.principal.is_admin, default=""
    )
    report, flush = _progress(ctx)
    loaded = await app.state.load(ctx.session.user_id, path, params.mode, report)
    await flush()
    return StateLoadResult(
        path=shown_path(app.settings, ctx.session.user_id, loaded.path),
        mode=loaded.mode,
        counts=loaded.counts,
        reembedded=loaded.reembedded,
        replaced_personas=loaded.replaced_personas,
    )


# -- character cards ---------------------------------------------------------------------


class ImportCardParams(Params):
    card: dict[str, Any] | str = Field(
        description="A Character Card V2/V3 JSON object, or a card PNG file as one base64 string"
    )
    name: Name | None = Field(None, description="Name the persona this instead of the card's name")


class ImportCardResult(Result):
    persona: Persona
    spec: str
    memories: int = Field(description="Memories stored: the lorebook's, or those the card carried")
    memory_ids: list[str]


_NAME = TypeAdapter(Name)


@ops("persona.import_card", title="Import a Character Card")
async def persona_import_card(ctx: CallContext, params: ImportCardParams) -> ImportCardResult:
    """Make a persona from a Character Card (V2 or V3; JSON, or a PNG as base64): name,
    description, personality, scenario, first message, example messages, tags and
    creator notes; each enabled lorebook entry becomes a fact memory. A card exported by
    persona.export_card also restores the persona's state, mood and memories."""
    # A PNG is decoded by Pillow: off the event loop.
    parsed, ext = await asyncio.to_thread(cards.parse_card, params.card)
    name = params.name
    if name is None:
        try:
            name = _NAME.validate_python(parsed.data.name)
        except ValidationError as exc:
            raise InvalidParams.field("card.data.name", exc.errors()[0]["msg"]) from exc
    app, user = ctx.app, ctx.session.user_id
    row, stored = await app.cards.import_card(user, parsed, ext, name)
    app.events.publish(user, "persona.state", {"persona_id": row.id, "change": "created"})
    if stored:
        app.events.memory_changed(user, row.id, [m.id for m in stored], "stored")
    return ImportCardResult(
        persona=app.personas.to_model(row, user),
        spec=parsed.spec,
        memories=len(stored),
        memory_ids=[m.id for m in stored],
    )


class ExportCardParams(Params):
    persona_id: PersonaRef
    include_memories: bool = Field(
        False, description="Carry the persona's memories in data.extensions.persona_mcp"
    )
    format: Literal["json", "png"] = Field(
        "json", description="json: the card object; png: a card PNG as base64"
    )


class ExportCardResult(Result):
    card: dict[str, Any] | str = Field(description="The V2 card object, or the PNG as base64")
    format: str
    memories: int = Field(description="Memories the card carries")
    memories_left_out: int = Field(
        description="Memories left out (the least important) so the card fits MAX_MESSAGE_BYTES"
    )


@ops("persona.export_card", read_only=True, title="Export a Character Card")
async def persona_export_card(ctx: CallContext, params: ExportCardParams) -> ExportCardResult:
    """A persona as a Character Card V2 (JSON, or PNG as base64) that other applications
    read; `data.extensions.persona_mcp` carries its state, mood and, when asked, its
    memories, so importing it here again restores them."""
    persona = await target_persona(ctx, params.persona_id)
    card, included, left_out = await ctx.app.cards.export_card(
        ctx.session.user_id, persona, params.include_memories, params.format
    )
    return ExportCardResult(
        card=card, format=params.format, memories=included, memories_left_out=left_out
    )


# -- visual context ------------------------------------------------------------------------


class VisualContext(Result):
    persona_id: str
    description: str
    tags: list[str]
    updated_at: datetime
    expires_at: datetime | None
    memory_id: str | None = Field(description="The episodic memory (type visual) it was kept as")


def visual_model(row: VisualRow) -> VisualContext:
    updated = to_datetime(row.updated_at)
    assert updated is not None
    return VisualContext(
        persona_id=row.persona_id,
        description=row.description,
        tags=row.tags,
        updated_at=updated,
        expires_at=to_datetime(row.expires_at),
        memory_id=row.memory_id,
    )


class VisualUpdateParams(Params):
    description: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="What the persona sees now: the scene, or what you show it"
    )
    persona_id: PersonaRef | None = None
    tags: list[Name] = Field(default_factory=list, max_length=32)
    expires_in_seconds: float | None = Field(
        None, gt=0, le=366 * 86400, description="Forget it after this long (default: never)"
    )


class VisualUpdateResult(Result):
    visual: VisualContext


@ops("visual.update", title="Update the visual context")
async def visual_update(ctx: CallContext, params: VisualUpdateParams) -> VisualUpdateResult:
    """Tell a persona what it sees now (a scene, or what you show it). It replaces the
    previous visual context, is shown in persona.status, enters later chat prompts as
    delimited data until it expires, and is kept as an episodic memory of type visual."""
    app, user = ctx.app, ctx.session.user_id
    persona = await target_persona(ctx, params.persona_id)
    row = await app.visual.update(
        user, persona, params.description, params.tags, params.expires_in_seconds
    )
    if row.memory_id:
        app.events.memory_changed(user, persona.id, [row.memory_id], "stored")
    return VisualUpdateResult(visual=visual_model(row))
