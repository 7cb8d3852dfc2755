"""The conversation engine: one exchange from message to committed turn.

Each persona keeps one current conversation per user. The prompt carries the persona's
character, the summary of older turns, recalled memories (as data) and the last
`context_messages` messages. An exchange (both messages, the persona's new state and
any memories it creates) is written in one transaction after the reply is complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from persona_mcp import nlp
from persona_mcp.clock import Clock, to_datetime
from persona_mcp.config import Settings
from persona_mcp.conversation import flow
from persona_mcp.conversation.prompt import Recalled, build_messages, day
from persona_mcp.conversation.summary import extractive_summary, llm_summary
from persona_mcp.errors import (
    Conflict,
    InvalidParams,
    NotFound,
    PersonaMCPError,
    Unavailable,
    check_text,
)
from persona_mcp.llm.base import ChatMessage, ChatRequest, LLMProvider, OnDelta, ResponderContext
from persona_mcp.llm.offline import OfflineProvider
from persona_mcp.personas.interest import topic_interest
from persona_mcp.personas.service import PersonaService
from persona_mcp.store import conversations as repo
from persona_mcp.store.api import Connection, Database
from persona_mcp.store.conversations import ConversationRow, MessageRow
from persona_mcp.store.personas import PersonaRow

log = logging.getLogger(__name__)

SUMMARY_STEP = 10  # re-summarize once this many messages have left the window


@dataclass(frozen=True)
class RecalledMemory:
    id: str
    content: str
    memory_type: str
    occurred_at: float
    score: float
    speaker: str = "user"  # user | persona | api
    why: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Exchange:
    """What an exchange hands to memory for storage in the turn's own transaction."""

    user_id: str
    persona: PersonaRow
    conversation_id: str
    turn_number: int
    user_message: str
    reply: str
    model: str
    valence: float
    interest: float
    topics: list[str]
    now: float
    recalled_ids: list[str] = field(default_factory=list)  # counted as accessed


class ConversationTiers(Protocol):
    """What the engine needs from MemoryOS's tiers: what to tell the model about the
    user, and a page for each exchange."""

    async def prompt_context(self, user_id: str, persona: PersonaRow, message: str) -> list[str]:
        """The user profile and the knowledge relevant to `message`, as lines of data."""
        ...

    async def add_page(
        self, user_id: str, persona: PersonaRow, user_input: str, agent_response: str
    ) -> Any: ...


class ConversationVisual(Protocol):
    """What the engine needs to show the model what the persona currently sees."""

    async def prompt_lines(self, user_id: str, persona: PersonaRow) -> list[str]:
        """The current visual context as lines of data (none when there is none)."""
        ...


class ConversationMemory(Protocol):
    """What the engine needs from long-term memory (kept narrow so each side can change)."""

    async def recall(self, user_id: str, persona: PersonaRow, query: str) -> list[RecalledMemory]:
        """Relevant memories, those of the turns still in the window included."""
        ...

    async def prepare_exchange(self, exchange: Exchange) -> Any:
        """Work done before the transaction (forming, scoring, embedding)."""
        ...

    def write_exchange(self, conn: Connection, prepared: Any) -> list[str]:
        """Write the exchange's memories, and the accesses of those it used, inside the
        turn's transaction; returns the ids of the memories it left."""
        ...

    def exchange_committed(self, prepared: Any) -> None: ...

    async def store_summary(
        self, user_id: str, persona: PersonaRow, conversation_id: str, summary: str, turns: int
    ) -> list[str]: ...


@dataclass
class ChatOutcome:
    response: str
    persona_id: str
    conversation_id: str
    turn_number: int
    continue_score: float
    response_type: str
    tokens_used: int
    processing_time: float
    model: str
    memories_used: list[RecalledMemory] = field(default_factory=list)
    stored_memory_ids: list[str] = field(default_factory=list)


class ConversationEngine:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        personas: PersonaService,
        llm: LLMProvider,
        memory: ConversationMemory | None = None,
        tiers: ConversationTiers | None = None,
        visual: ConversationVisual | None = None,
    ) -> None:
        self._tiers = tiers
        self.visual = visual
        self._db = db
        self._clock = clock
        self._settings = settings
        self._personas = personas
        self._llm = llm
        self.memory = memory
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _lock(self, user_id: str, persona_id: str) -> asyncio.Lock:
        return self._locks.setdefault((user_id, persona_id), asyncio.Lock())

    # -- lookups -------------------------------------------------------------------

    async def get(self, user_id: str, conversation_id: str) -> ConversationRow:
        conv = await self._db.read(lambda conn: repo.get(conn, conversation_id))
        if conv is None or conv.user_id != user_id:
            raise NotFound(
                f"No conversation {conversation_id!r}", {"conversation_id": conversation_id}
            )
        return conv

    async def current(self, user_id: str, persona: PersonaRow) -> ConversationRow | None:
        return await self._db.read(lambda conn: repo.current(conn, user_id, persona.id))

    # -- chat ----------------------------------------------------------------------

    async def chat(
        self,
        user_id: str,
        persona: PersonaRow,
        message: str,
        conversation_id: str | None = None,
        on_delta: OnDelta | None = None,
    ) -> ChatOutcome:
        check_text(message, "message", self._settings.max_content_bytes)
        async with self._lock(user_id, persona.id):
            return await self._chat(user_id, persona, message, conversation_id, on_delta)

    async def _chat(
        self,
        user_id: str,
        persona: PersonaRow,
        message: str,
        conversation_id: str | None,
        on_delta: OnDelta | None,
    ) -> ChatOutcome:
        started = time.perf_counter()
        window_size = self._settings.context_messages

        def read(conn: Connection) -> tuple[ConversationRow | None, list[MessageRow]]:
            conv = (
                repo.get(conn, conversation_id)
                if conversation_id
                else repo.current(conn, user_id, persona.id)
            )
            window = repo.recent_messages(conn, conv.id, window_size) if conv else []
            return conv, window

        conv, window = await self._db.read(read)
        if conversation_id and (conv is None or conv.user_id != user_id):
            raise NotFound(
                f"No conversation {conversation_id!r}", {"conversation_id": conversation_id}
            )
        if conv is not None and conv.persona_id != persona.id:
            raise InvalidParams.field("conversation_id", "belongs to a different persona")
        if conv is not None and conv.status != "active":
            raise Conflict(
                "That conversation has ended; start a new one with conversation.start",
                {"conversation_id": conv.id},
            )

        recalled = await self.memory.recall(user_id, persona, message) if self.memory else []
        interest, topics = topic_interest(message, persona.topic_preferences)
        state = self._personas.state(persona, user_id)
        turns_before = conv.turn_count if conv else 0
        score = flow.continue_score(
            state, interest, turns_before + 1, *self._personas.social_terms(persona, user_id)
        )
        rtype = flow.response_type(score)
        mood = self._personas.mood(persona, user_id)
        prompt = build_messages(
            persona,
            state,
            mood,
            rtype,
            conv.summary if conv else "",
            window,
            [Recalled(m.content, day(m.occurred_at), m.memory_type) for m in recalled],
            message,
            await self._tiers.prompt_context(user_id, persona, message) if self._tiers else [],
            await self.visual.prompt_lines(user_id, persona) if self.visual else [],
        )
        request = ChatRequest(
            messages=prompt,
            model=persona.model,
            context=ResponderContext(
                persona_name=persona.name,
                description=persona.description,
                personality_traits=persona.personality_traits,
                user_message=message,
                history=[ChatMessage(m.role, m.content) for m in window],
                memories=[m.content for m in recalled if m.speaker in ("user", "api")],
                persona_notes=[m.content for m in recalled if m.speaker in ("persona", "summary")],
                found_by={m.content: m.why["found_by"] for m in recalled if "found_by" in m.why},
                topics=topics,
                response_type=rtype,
                mood=mood,
            ),
        )
        result = await self._llm.generate(request, on_delta)
        if not result.text.strip():
            raise Unavailable(f"The {result.provider} provider returned an empty reply")
        elapsed = time.perf_counter() - started

        now = self._clock.now()
        valence = nlp.sentiment(message)
        new_state = self._personas.exchange_state(persona, user_id, message, interest, valence)
        conv_id = conv.id if conv else str(uuid.uuid4())
        # The turn number is only final inside the transaction; memory scoring needs one
        # now, and the per-persona lock guarantees it matches.
        exchange = Exchange(
            user_id=user_id,
            persona=persona,
            conversation_id=conv_id,
            turn_number=turns_before + 1,
            user_message=message,
            reply=result.text,
            model=result.model,
            valence=valence,
            interest=interest,
            topics=topics,
            now=now,
            recalled_ids=[m.id for m in recalled],
        )
        prepared = await self.memory.prepare_exchange(exchange) if self.memory else None

        def write(conn: Connection) -> tuple[int, list[str], int]:
            if conv is None:
                repo.insert(conn, _new_conversation(conv_id, user_id, persona.id, None, now))
            turn = repo.append_exchange(
                conn,
                conv_id,
                message,
                result.text,
                now,
                model=result.model,
                tokens_used=result.tokens_used,
                processing_time=elapsed,
                continue_score=score,
                response_type=rtype,
            )
            self._personas.write_state(conn, new_state)
            stored = self.memory.write_exchange(conn, prepared) if self.memory else []
            return turn, stored, repo.message_count(conn, conv_id)

        async def commit() -> tuple[int, list[str], int]:
            written = await self._db.write(write)
            self._personas.state_committed(new_state)
            if self.memory:
                self.memory.exchange_committed(prepared)
            if self._tiers:  # each exchange is also a MemoryOS page (its own transaction)
                try:
                    await self._tiers.add_page(user_id, persona, message, result.text)
                except PersonaMCPError:
                    log.warning("the exchange could not be added to the tiers", exc_info=True)
            return written

        # Once the turn is being written it is finished whole, even if the request is
        # cancelled now: no half turn, and the in-memory indexes match the record.
        turn, stored_ids, total_messages = await asyncio.shield(commit())
        self._maybe_summarize(conv_id, persona, total_messages, conv.summary_upto if conv else 0)
        return ChatOutcome(
            response=result.text,
            persona_id=persona.id,
            conversation_id=conv_id,
            turn_number=turn,
            continue_score=score,
            response_type=rtype,
            tokens_used=result.tokens_used,
            processing_time=round(time.perf_counter() - started, 4),
            model=result.model,
            memories_used=recalled,
            stored_memory_ids=stored_ids,
        )

    # -- summaries -----------------------------------------------------------------

    def _maybe_summarize(
        self, conv_id: str, persona: PersonaRow, total: int, summarized: int
    ) -> None:
        if total <= self._settings.summary_threshold:
            return
        upto = total - self._settings.context_messages
        if upto - summarized < SUMMARY_STEP and summarized > 0:
            return
        task = asyncio.create_task(self._summarize(conv_id, persona, summarized, upto))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _summarize(self, conv_id: str, persona: PersonaRow, start: int, upto: int) -> None:
        try:
            conv, older = await self._db.read(
                lambda conn: (
                    repo.get(conn, conv_id),
                    repo.messages_between(conn, conv_id, start + 1, upto),
                )
            )
            if conv is None:
                return
            text, source = await self._summary_text(persona, conv.summary, older)
            await self._db.write(lambda conn: repo.set_summary(conn, conv_id, text, upto, source))
        except Exception:
            log.exception("summarizing conversation %s failed; will retry on a later turn", conv_id)

    async def _summary_text(
        self, persona: PersonaRow, previous: str, messages: list[MessageRow]
    ) -> tuple[str, str]:
        provider = await self._llm.resolve()
        if not isinstance(provider, OfflineProvider):
            try:
                text = await llm_summary(provider, persona.model, persona.name, previous, messages)
                if text:
                    return text, "llm"
            except Unavailable as exc:
                log.warning("LLM summary failed (%s); using an extractive summary", exc.message)
        return extractive_summary(previous, messages), "extractive"

    async def drain(self) -> None:
        """Wait for background summaries (on shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- start, end, status ---------------------------------------------------------

    async def start(self, user_id: str, persona: PersonaRow, title: str | None) -> dict[str, Any]:
        async with self._lock(user_id, persona.id):
            previous = await self.current(user_id, persona)
            ended = await self._end(user_id, persona, previous) if previous else None
            now = self._clock.now()
            conv_id = str(uuid.uuid4())
            await self._db.write(
                lambda conn: repo.insert(
                    conn, _new_conversation(conv_id, user_id, persona.id, title, now)
                )
            )
        return {
            "conversation_id": conv_id,
            "persona_id": persona.id,
            "title": title,
            "previous_conversation_id": previous.id if previous else None,
            "previous_summary": ended["summary"] if ended else None,
        }

    async def end(
        self, user_id: str, persona: PersonaRow, conversation_id: str | None
    ) -> dict[str, Any]:
        async with self._lock(user_id, persona.id):
            conv = (
                await self.get(user_id, conversation_id)
                if conversation_id
                else await self.current(user_id, persona)
            )
            if conv is None:
                raise NotFound(f"{persona.name} has no active conversation to end")
            if conv.status != "active":
                raise Conflict("That conversation has already ended", {"conversation_id": conv.id})
            return await self._end(user_id, persona, conv)

    async def _end(
        self, user_id: str, persona: PersonaRow, conv: ConversationRow
    ) -> dict[str, Any]:
        messages = await self._db.read(
            lambda conn: repo.messages_between(conn, conv.id, conv.summary_upto + 1, 1 << 62)
        )
        summary, source = (
            await self._summary_text(persona, conv.summary, messages)
            if messages
            else (conv.summary, conv.summary_source or "extractive")
        )
        now = self._clock.now()
        await self._db.write(lambda conn: repo.end(conn, conv.id, now, summary, source))
        stored: list[str] = []
        if self.memory and summary and conv.turn_count > 0:
            stored = await self.memory.store_summary(
                user_id, persona, conv.id, summary, conv.turn_count
            )
        return {
            "conversation_id": conv.id,
            "persona_id": persona.id,
            "summary": summary,
            "summary_source": source,
            "turns": conv.turn_count,
            "stored_memory_ids": stored,
        }

    async def status(
        self, user_id: str, persona: PersonaRow, conversation_id: str | None
    ) -> dict[str, Any]:
        conv = (
            await self.get(user_id, conversation_id)
            if conversation_id
            else await self.current(user_id, persona)
        )
        state = self._personas.state(persona, user_id)
        if conv is None:
            score = flow.continue_score(state, 0.4, 0)
            return {
                "conversation_id": None,
                "persona_id": persona.id,
                "status": "none",
                "title": None,
                "turns": 0,
                "messages": 0,
                "recent_messages": [],
                "summary": "",
                "summary_covers_messages": 0,
                "continue_score": score,
                "response_type": flow.response_type(score),
                "started_at": None,
                "updated_at": None,
            }
        window, count = await self._db.read(
            lambda conn: (
                repo.recent_messages(conn, conv.id, self._settings.context_messages),
                repo.message_count(conn, conv.id),
            )
        )
        score = (
            conv.last_continue_score
            if conv.last_continue_score is not None
            else flow.continue_score(state, 0.4, conv.turn_count)
        )
        return {
            "conversation_id": conv.id,
            "persona_id": conv.persona_id,
            "status": conv.status,
            "title": conv.title,
            "turns": conv.turn_count,
            "messages": count,
            "recent_messages": [
                {
                    "role": m.role,
                    "content": m.content,
                    "turn_number": m.turn_number,
                    "created_at": to_datetime(m.created_at),
                    "model": m.model,
                }
                for m in window
            ],
            "summary": conv.summary,
            "summary_covers_messages": conv.summary_upto,
            "continue_score": score,
            "response_type": flow.response_type(score),
            "started_at": to_datetime(conv.started_at),
            "updated_at": to_datetime(conv.updated_at),
        }


def _new_conversation(
    conv_id: str, user_id: str, persona_id: str, title: str | None, now: float
) -> ConversationRow:
    return ConversationRow(
        id=conv_id,
        user_id=user_id,
        persona_id=persona_id,
        title=title,
        status="active",
        started_at=now,
        updated_at=now,
        ended_at=None,
        turn_count=0,
        summary="",
        summary_upto=0,
        summary_source=None,
        last_continue_score=None,
    )
