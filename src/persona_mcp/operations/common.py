"""Pieces several operation modules share."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, Field, StringConstraints

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


# -- bounded inputs: validated before any transaction, the same on every door -----------

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_METADATA_DEPTH = 20
MAX_METADATA_BYTES = 64 * 1024


def _sane_time(value: datetime) -> datetime:
    """Refuse dates outside 1900-2200 once normalised to UTC (a naive time is UTC), so
    every stored time can be read back and rendered on every platform."""
    when = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        utc = when.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError("must lie between 1900-01-01 and 2200-12-31 (UTC)")
    return utc


# A moment given by a client: an ISO 8601 string (strict mode would refuse strings).
When = Annotated[datetime, Field(strict=False), AfterValidator(_sane_time)]


def deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON data nests more than `limit` containers deep (iterative: no recursion
    limit to hit, and it stops at the first branch past the limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    if deeper_than(value, MAX_METADATA_DEPTH):
        raise ValueError(f"nests deeper than {MAX_METADATA_DEPTH} levels")
    size = len(orjson.dumps(value))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    return value


Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_bounded_json),
    Field(description=f"Any JSON object (at most {MAX_METADATA_DEPTH} levels deep, 64 KiB)"),
]

_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"}


def _clean_name(value: str) -> str:
    """Names are compared as people read them: NFC, trimmed, with no control, format
    (zero-width) or unassigned characters, so two names that look alike are alike."""
    name = unicodedata.normalize("NFC", value).strip()
    bad = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in _INVISIBLE})
    if bad:
        raise ValueError(f"contains invisible or control characters ({', '.join(bad)})")
    if not name:
        raise ValueError("must not be empty")
    return name


# A name (persona, trait, topic): checked after trimming, at most 64 characters.
Name = Annotated[str, AfterValidator(_clean_name), StringConstraints(max_length=64)]
