"""Character Cards (V2, malfoyslastname/character-card-spec-v2; V3, kwaroran/
character-card-spec-v3) in and out of personas.

Import: a card's JSON object, or a PNG whose `ccv3` (preferred) or `chara` tEXt chunk
holds the card as base64 JSON. The card becomes a persona (name, description, traits
from `personality`); every other field of the card (personality, scenario, first
message, examples, greetings, tags, creator notes, the lorebook's own fields, unknown
fields and other applications' extensions) is kept with the persona, so an export gives
it back. Each enabled `character_book` entry with content becomes a `fact` memory of the
persona, its keys and settings in the memory's metadata.

Export: a V2 card (JSON, or a PNG made here with the card in its `chara` chunk) whose
`data.extensions.persona_mcp` carries the persona's own fields, interaction state and
mood, and on request its memories; importing that card restores them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import colorsys
import hashlib
import io
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import orjson
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from persona_mcp import __version__
from persona_mcp.clock import Clock
from persona_mcp.config import Settings
from persona_mcp.errors import InvalidParams, check_text
from persona_mcp.memory.service import MemoryInput, MemoryService, MemoryType
from persona_mcp.models.persona import Priority
from persona_mcp.personas.mood import MoodValues
from persona_mcp.personas.service import PersonaService
from persona_mcp.personas.social import SocialService, SocialWrites
from persona_mcp.store import memories as memory_repo
from persona_mcp.store.api import Connection
from persona_mcp.store.memories import MemoryRow
from persona_mcp.store.personas import PersonaRow, StateRow
from persona_mcp.store.social import MoodChangeRow, MoodRow

EXTENSION = "persona_mcp"
CARD_FORMAT = "persona-mcp-card"
CARD_VERSION = 1
MAX_BOOK_ENTRIES = 1000
MAX_TRAITS = 32
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LORE = "character_book"  # the `source` in a lore memory's metadata

METADATA_BYTES = 64 * 1024  # a memory's metadata bound (operations.common.METADATA_BYTES)

Num = int | float
Label = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _Card(BaseModel):
    """Card objects: types checked, unknown fields kept (the specs require it)."""

    model_config = ConfigDict(extra="allow", strict=True)


class BookEntry(_Card):
    keys: list[str]
    content: str
    extensions: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    insertion_order: Num = 0
    case_sensitive: bool | None = None
    use_regex: bool | None = None
    constant: bool | None = None
    name: str | None = None
    priority: Num | None = None
    id: int | str | None = None
    comment: str | None = None
    selective: bool | None = None
    secondary_keys: list[str] | None = None
    position: Literal["before_char", "after_char"] | None = None


class CharacterBook(_Card):
    name: str | None = None
    description: str | None = None
    scan_depth: Num | None = None
    token_budget: Num | None = None
    recursive_scanning: bool | None = None
    extensions: dict[str, Any] = Field(default_factory=dict)
    entries: list[BookEntry] = Field(max_length=MAX_BOOK_ENTRIES)


class Asset(_Card):
    type: str
    uri: str
    name: str
    ext: str


class CardData(_Card):
    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: list[str] = Field(default_factory=list)
    character_book: CharacterBook | None = None
    tags: list[str] = Field(default_factory=list)
    creator: str = ""
    character_version: str = ""
    extensions: dict[str, Any] = Field(default_factory=dict)
    # Character Card V3
    nickname: str | None = None
    creator_notes_multilingual: dict[str, str] | None = None
    source: list[str] | None = None
    group_only_greetings: list[str] | None = None
    creation_date: Num | None = None
    modification_date: Num | None = None
    assets: list[Asset] | None = None


class Card(_Card):
    spec: Literal["chara_card_v2", "chara_card_v3"]
    spec_version: str
    data: CardData


# -- what persona-mcp adds in data.extensions.persona_mcp --------------------------------


class _Ext(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ExtPersona(_Ext):
    description: str | None = None
    personality_traits: list[Label] = Field(default_factory=list, max_length=MAX_TRAITS)
    backstory: str = ""
    topic_preferences: dict[Label, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, max_length=64
    )
    model: str | None = None
    social_energy: float = Field(80.0, ge=0, le=100)
    available_time: float = Field(90.0, ge=0, le=1440)


class ExtState(_Ext):
    social_energy: float = Field(ge=0, le=100)
    available_time: float = Field(ge=0, le=1440)
    interaction_fatigue: float = Field(ge=0, le=100)
    current_priority: Priority = "normal"
    last_interaction: float | None = None
    mood: str = "content"


class ExtMood(_Ext):
    valence: float = Field(ge=-1, le=1)
    arousal: float = Field(ge=0, le=1)
    updated_at: float | None = None


class ExtMemory(_Ext):
    content: str
    memory_type: MemoryType = "fact"
    importance: float = Field(ge=0, le=1)
    emotional_valence: float = Field(0.0, ge=-1, le=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    occurred_at: float
    pinned: bool = False


class Extension(_Ext):
    format: Literal["persona-mcp-card"] = "persona-mcp-card"
    version: int = CARD_VERSION
    exported_at: float | None = None
    server_version: str | None = None
    persona: ExtPersona | None = None
    state: ExtState | None = None
    mood: ExtMood | None = None
    memories: list[ExtMemory] | None = Field(None, max_length=100_000)


# -- reading a card -------------------------------------------------------------------------


def _invalid(field: str, message: str) -> InvalidParams:
    return InvalidParams.field(field, message)


def _validation(prefix: str, exc: ValidationError) -> InvalidParams:
    errors = [
        {
            "field": ".".join([prefix, *(str(p) for p in err["loc"])]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    fields = ", ".join(e["field"] for e in errors[:5])
    return InvalidParams(f"Invalid card: {fields}", {"errors": errors})


def card_from_png(data: bytes) -> dict[str, Any]:
    """The card a PNG carries (its `ccv3` chunk, else its `chara` chunk)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise _invalid("card", "is not a PNG image")
            texts = dict(getattr(image, "text", {}) or {})
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _invalid("card", f"is not a readable PNG image ({exc})") from exc
    chunk = next((texts[k] for k in ("ccv3", "chara") if k in texts), None)
    if chunk is None:
        raise _invalid("card", "the PNG has no 'chara' or 'ccv3' text chunk: it holds no card")
    try:
        decoded = orjson.loads(base64.b64decode(chunk, validate=False))
    except (binascii.Error, ValueError) as exc:
        raise _invalid("card", "the PNG's card chunk is not base64-encoded JSON") from exc
    if not isinstance(decoded, dict):
        raise _invalid("card", "the PNG's card chunk is not a JSON object")
    return decoded


def parse_card(card: dict[str, Any] | str) -> tuple[Card, Extension | None]:
    """A card as given (an object, or a PNG as base64), checked against the spec's fields;
    -32602 naming the first bad fields (`card.data.character_book.entries.0.keys`)."""
    if isinstance(card, str):
        try:
            raw = base64.b64decode(card, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _invalid("card", "a string must be a PNG file as base64") from exc
        if not raw.startswith(PNG_SIGNATURE):
            raise _invalid("card", "a string must be a PNG file as base64")
        card = card_from_png(raw)
    if "spec" not in card and "data" not in card and "name" in card:
        card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": card}  # a V1 card
    try:
        parsed = Card.model_validate(card)
    except ValidationError as exc:
        raise _validation("card", exc) from exc
    if parsed.spec == "chara_card_v2" and parsed.spec_version != "2.0":
        raise _invalid("card.spec_version", 'must be "2.0" for chara_card_v2')
    ext_raw = parsed.data.extensions.get(EXTENSION)
    extension = None
    if ext_raw is not None:
        if not isinstance(ext_raw, dict):
            raise _invalid(f"card.data.extensions.{EXTENSION}", "must be an object")
        try:
            extension = Extension.model_validate(ext_raw)
        except ValidationError as exc:
            raise _validation(f"card.data.extensions.{EXTENSION}", exc) from exc
    return parsed, extension


def traits_of(personality: str) -> list[str]:
    """Traits from a card's free-text personality: its short comma- or line-separated
    parts ("cheerful, curious; kind" -> three traits); sentences stay in the card only."""
    parts = [p.strip(" .\t") for chunk in personality.splitlines() for p in chunk.split(",")]
    parts = [q.strip() for p in parts for q in p.split(";")]
    traits: list[str] = []
    for part in parts:
        if part and len(part) <= 40 and part.lower() not in {t.lower() for t in traits}:
            traits.append(part)
    return traits[:MAX_TRAITS]


# -- the service ------------------------------------------------------------------------------


class CardService:
    def __init__(
        self,
        clock: Clock,
        settings: Settings,
        personas: PersonaService,
        social: SocialService,
        memory: MemoryService,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._personas = personas
        self._social = social
        self._memory = memory

    async def import_card(
        self, user_id: str, parsed: Card, ext: Extension | None, name: str
    ) -> tuple[PersonaRow, list[MemoryRow]]:
        """A new persona named `name` from a parsed card (see `parse_card`), its lore (or
        the memories the card carries) stored as its memories. Everything is checked
        before anything is written, and the persona and its memories are written whole
        or not at all."""
        data = parsed.data
        limit = self._settings.max_content_bytes
        for field in ("description", "personality", "scenario", "first_mes", "mes_example"):
            value = getattr(data, field)
            if len(value.encode()) > limit:
                raise _invalid(f"card.data.{field}", f"is over {limit} bytes (MAX_CONTENT_BYTES)")
        lore, kept_entries = self._lore(data, ext)
        memories = self._memories(ext) if ext is not None and ext.memories is not None else lore
        stored_card = parsed.model_dump(mode="json", exclude_none=True)
        extensions = dict(stored_card["data"].get("extensions", {}))
        extensions.pop(EXTENSION, None)
        stored_card["data"]["extensions"] = extensions
        if data.character_book is not None:
            stored_card["data"]["character_book"]["entries"] = kept_entries
        own = ext.persona if ext is not None and ext.persona is not None else None
        description = own.description if own and own.description is not None else data.description

        def also(conn: Connection, row: PersonaRow) -> None:
            if ext is not None and ext.state is not None:
                s = ext.state
                self._personas.write_state(
                    conn,
                    StateRow(row.id, user_id, s.social_energy, s.available_time,
                             s.interaction_fatigue, s.current_priority, s.last_interaction,
                             s.mood),
                )  # fmt: skip
            if ext is not None and ext.mood is not None:
                self._social.write(conn, self._mood_writes(user_id, row.id, ext.mood))

        row = await self._personas.create(
            user_id,
            name=name,
            description=description,
            personality_traits=own.personality_traits if own else traits_of(data.personality),
            backstory=own.backstory if own else "",
            topic_preferences=dict(own.topic_preferences) if own else {},
            model=own.model if own else None,
            social_energy=own.social_energy if own else 80.0,
            available_time=own.available_time if own else 90.0,
            card=stored_card,
            also=also,
        )
        if ext is not None and ext.state is not None:
            s = ext.state
            self._personas.state_committed(
                StateRow(row.id, user_id, s.social_energy, s.available_time,
                         s.interaction_fatigue, s.current_priority, s.last_interaction, s.mood)
            )  # fmt: skip
        if ext is not None and ext.mood is not None:
            self._social.committed(self._mood_writes(user_id, row.id, ext.mood))
        if not memories:
            return row, []
        pinned = [i for i, m in enumerate(memories) if m[1]]
        try:

            def pin(conn: Connection, rows: list[MemoryRow]) -> None:
                for i in pinned:
                    memory_repo.set_pinned(conn, user_id, rows[i].id, True)

            stored = await self._memory.store(
                user_id, row, [m[0] for m in memories], also=pin if pinned else None
            )
        except BaseException:
            # The persona and its memories arrive together or not at all.
            await self._personas.delete(user_id, row.id)
            self._social.forget(row.id)
            raise
        return row, stored

    def _lore(
        self, data: CardData, ext: Extension | None
    ) -> tuple[list[tuple[MemoryInput, bool]], list[dict[str, Any]]]:
        """The book's entries as memories (enabled ones with content), and the entries
        kept with the card instead (disabled or empty ones, or all of them when the card
        carries its memories itself)."""
        book = data.character_book
        if book is None:
            return [], []
        memories: list[tuple[MemoryInput, bool]] = []
        kept: list[dict[str, Any]] = []
        carried = ext is not None and ext.memories is not None
        limit = self._settings.max_content_bytes
        for i, entry in enumerate(book.entries):
            settings = entry.model_dump(mode="json", exclude_none=True, exclude={"content"})
            if carried or not entry.enabled or not entry.content.strip():
                if not carried:
                    kept.append(entry.model_dump(mode="json", exclude_none=True))
                continue
            field = f"card.data.character_book.entries.{i}"
            check_text(entry.content, f"{field}.content", limit)
            metadata = {"source": LORE, "entry": settings}
            if len(orjson.dumps(metadata)) > METADATA_BYTES:
                raise _invalid(field, f"its keys and settings pass {METADATA_BYTES} bytes")
            memories.append(
                (
                    MemoryInput(
                        content=entry.content.strip(),
                        memory_type="fact",
                        metadata=metadata,
                        source="card",
                    ),
                    bool(entry.constant),
                )
            )
        return memories, kept

    def _memories(self, ext: Extension) -> list[tuple[MemoryInput, bool]]:
        out = []
        limit = self._settings.max_content_bytes
        for i, m in enumerate(ext.memories or []):
            field = f"card.data.extensions.{EXTENSION}.memories.{i}"
            check_text(m.content, f"{field}.content", limit)
            if len(orjson.dumps(m.metadata)) > METADATA_BYTES:
                raise _invalid(f"{field}.metadata", f"is over {METADATA_BYTES} bytes")
            out.append(
                (
                    MemoryInput(
                        content=m.content,
                        memory_type=m.memory_type,
                        importance=m.importance,
                        emotional_valence=m.emotional_valence,
                        metadata=m.metadata,
                        occurred_at=m.occurred_at,
                        source="card",
                    ),
                    m.pinned,
                )
            )
        return out

    def _mood_writes(self, user_id: str, persona_id: str, mood: ExtMood) -> SocialWrites:
        at = mood.updated_at if mood.updated_at is not None else self._clock.now()
        values = MoodValues(mood.valence, mood.arousal, at)
        change = MoodChangeRow(
            at, mood.valence, mood.arousal, values.intensity, values.label,
            "restored from a character card",
        )  # fmt: skip
        return SocialWrites(moods=[(MoodRow(user_id, persona_id, mood.valence, mood.arousal, at),
                                    change)])  # fmt: skip

    # -- export ---------------------------------------------------------------------------

    async def export_card(
        self, user_id: str, persona: PersonaRow, include_memories: bool, fmt: Literal["json", "png"]
    ) -> tuple[dict[str, Any] | str, int, int]:
        """The persona as a V2 card (an object, or a PNG as base64); returns it with the
        numbers of memories included and left out (the card must fit in one request of
        MAX_MESSAGE_BYTES so it can be imported again: the least important go first)."""
        stored = persona.card or {}
        data: dict[str, Any] = dict(stored.get("data") or {})
        lore: list[MemoryRow] = []
        every: list[MemoryRow] = []
        after = 0
        while True:
            page = await self._memory.page(user_id, persona.id, None, after, 1000)
            if not page:
                break
            every.extend(page)
            after = page[-1].rid
        lore = [m for m in every if m.metadata.get("source") == LORE and m.memory_type == "fact"]
        description = persona.description
        if not stored and persona.backstory:
            description = f"{description}\n\n{persona.backstory}".strip()
        data.update(
            name=persona.name,
            description=description,
            personality=data.get("personality") or ", ".join(persona.personality_traits),
        )
        for field in ("scenario", "first_mes", "mes_example", "creator_notes", "system_prompt",
                      "post_history_instructions", "creator", "character_version"):  # fmt: skip
            data.setdefault(field, "")
        data.setdefault("alternate_greetings", [])
        data.setdefault("tags", [])
        if not stored:
            data["creator_notes"] = f"Exported from persona-mcp {__version__}."
        book = self._book(data.get("character_book"), lore)
        if book is not None:
            data["character_book"] = book
        else:
            data.pop("character_book", None)
        state = self._personas.state(persona, user_id)
        mood = self._social.mood(user_id, persona.id)
        ext: dict[str, Any] = {
            "format": CARD_FORMAT,
            "version": CARD_VERSION,
            "exported_at": self._clock.now(),
            "server_version": __version__,
            "persona": {
                "description": persona.description,
                "personality_traits": persona.personality_traits,
                "backstory": persona.backstory,
                "topic_preferences": persona.topic_preferences,
                "model": persona.model,
                "social_energy": persona.rest_energy,
                "available_time": persona.rest_time,
            },
            "state": {
                "social_energy": state.social_energy,
                "available_time": state.available_time,
                "interaction_fatigue": state.interaction_fatigue,
                "current_priority": state.current_priority,
                "last_interaction": state.last_interaction,
                "mood": self._personas.mood(persona, user_id),
            },
            "mood": {
                "valence": mood.valence,
                "arousal": mood.arousal,
                "updated_at": mood.updated_at,
            },
        }
        data["extensions"] = {**dict(data.get("extensions") or {}), EXTENSION: ext}
        card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}
        # JSON escaping, then PNG (base64 in the chunk, base64 again in the reply) cost room.
        budget = self._settings.max_message_bytes - 64 * 1024
        budget = int(budget / 1.8) if fmt == "png" else int(budget / 1.05)
        included, left_out = 0, 0
        if include_memories:
            chosen, left_out = self._fit(every, budget - len(orjson.dumps(card)))
            ext["memories"] = chosen
            included = len(chosen)
        if fmt == "json":
            return card, included, left_out
        png = await asyncio.to_thread(card_png, card, persona.name)  # Pillow: off the loop
        return base64.b64encode(png).decode(), included, left_out

    @staticmethod
    def _book(stored: Any, lore: Sequence[MemoryRow]) -> dict[str, Any] | None:
        """The lorebook: the stored book's own fields and kept entries, and an entry for
        each lore memory as it is now."""
        book = dict(stored) if isinstance(stored, dict) else None
        entries = list(book.get("entries", [])) if book else []
        for m in lore:
            entry = dict(m.metadata.get("entry") or {})
            entry.setdefault("keys", [])
            entry.setdefault("extensions", {})
            entry.setdefault("enabled", True)
            entry.setdefault("insertion_order", len(entries))
            entry["content"] = m.content
            entries.append(entry)
        if book is None and not entries:
            return None
        book = book or {"extensions": {}}
        book.setdefault("extensions", {})
        book["entries"] = sorted(entries, key=lambda e: e.get("insertion_order", 0))
        return book

    @staticmethod
    def _fit(memories: Sequence[MemoryRow], budget: int) -> tuple[list[dict[str, Any]], int]:
        """Memories as the card carries them, as many as fit in `budget` bytes, the most
        important first; in their stored order."""
        rendered = [
            (
                m,
                {
                    "content": m.content,
                    "memory_type": m.memory_type,
                    "importance": m.importance,
                    "emotional_valence": m.emotional_valence,
                    "metadata": m.metadata,
                    "occurred_at": m.occurred_at,
                    "pinned": m.pinned,
                },
            )
            for m in memories
        ]
        keep: set[int] = set()
        used = 0
        for m, item in sorted(rendered, key=lambda r: (-r[0].importance, r[0].rid)):
            cost = len(orjson.dumps(item)) + 1
            if used + cost > budget:
                continue
            used += cost
            keep.add(m.rid)
        chosen = [item for m, item in rendered if m.rid in keep]
        return chosen, len(rendered) - len(chosen)


def card_png(card: dict[str, Any], name: str) -> bytes:
    """A portrait PNG (a colour from the name, its initial) holding the card in a
    `chara` tEXt chunk as base64 JSON, as the V2 ecosystem reads it."""
    digest = hashlib.sha256(name.encode()).digest()
    r, g, b = colorsys.hls_to_rgb(digest[0] / 255, 0.45, 0.55)
    top = (int(r * 255), int(g * 255), int(b * 255))
    image = Image.new("RGB", (256, 384), top)
    draw = ImageDraw.Draw(image)
    for y in range(384):  # a vertical gradient toward a darker shade
        shade = 1.0 - 0.5 * y / 384
        draw.line([(0, y), (255, y)], fill=tuple(int(c * shade) for c in top))
    draw.ellipse([48, 72, 208, 232], fill=(245, 240, 230))
    initial = (name.strip()[:1] or "?").upper()
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(size=110)
    except (OSError, TypeError):  # Pillow built without FreeType
        font = ImageFont.load_default()
    draw.text((128, 152), initial, fill=top, font=font, anchor="mm")
    info = PngImagePlugin.PngInfo()
    info.add_text("chara", base64.b64encode(orjson.dumps(card)).decode())
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, optimize=True)
    return out.getvalue()
