"""The offline responder: deterministic replies in the persona's voice, with no model.

It says plainly that it is offline, answers from what it has (the message, the
conversation so far, the memories recalled for this turn) and never pretends to know
what only a language model could produce.
"""

from __future__ import annotations

import hashlib
import re

from persona_mcp import nlp
from persona_mcp.llm.base import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    LLMProvider,
    ModelInfo,
    OnDelta,
    ProviderHealth,
    ResponderContext,
)

OFFLINE_MODEL = "offline"
OFFLINE_NOTICE = "(Offline: no language model is connected, so this reply comes from my notes.)"

_VOICES: dict[str, dict[str, list[str]]] = {
    "bard": {
        "open": [
            "Ah, {topic}! That has the makings of a ballad.",
            "{topic}, you say? My lute strings hum at the very word.",
            "Now there's a thread worth weaving into a tale: {topic}.",
        ],
        "question": [
            "I cannot fetch the answer from the wider world tonight, but I'll not pretend to it.",
        ],
        "memory": [
            "I remember you once told me: \u201c{memory}\u201d",
            "A verse of yours still rings in my ear: \u201c{memory}\u201d",
        ],
        "earlier": ["Earlier you spoke of {earlier}; the two tales may yet meet."],
        "continue": [
            "Tell me more, and I'll set it to music.",
            "What happened next? Every good song needs its second verse.",
        ],
        "wrap_up": ["My voice is growing hoarse, friend; one more verse and then a rest?"],
        "end": ["The fire burns low and so do I; let us take this up another evening."],
    },
    "scholar": {
        "open": [
            "On {topic}: a subject worth examining carefully.",
            "{topic}. Let me set down what I can say with confidence.",
            "A fair question about {topic}; precision first.",
        ],
        "question": [
            "Without my language model I cannot consult the references, so I will not guess.",
        ],
        "memory": [
            "My notes record that you said: \u201c{memory}\u201d",
            "For the record, you told me: \u201c{memory}\u201d",
        ],
        "earlier": ["This connects to what you raised earlier about {earlier}."],
        "continue": [
            "What evidence do you have in mind? I'd like to note it.",
            "Which aspect should we examine first?",
        ],
        "wrap_up": ["I should close my notebook soon; shall we summarise where we stand?"],
        "end": ["I must return to the archive now; let's resume when I'm rested."],
    },
    "neutral": {
        "open": [
            "You're asking about {topic}.",
            "Let's talk about {topic}.",
        ],
        "question": ["I can't research that while offline, so I won't make something up."],
        "memory": ["I remember you said: \u201c{memory}\u201d"],
        "earlier": ["Earlier you mentioned {earlier}."],
        "continue": ["Tell me more?", "What would you like to explore next?"],
        "wrap_up": ["I'm getting tired; shall we wrap up soon?"],
        "end": ["I need to rest now; let's continue another time."],
    },
}

_BARD = {"poetic", "bard", "storytelling", "musical", "lyrical"}
_SCHOLAR = {"analytical", "precise", "scholar", "methodical", "academic", "scientific"}


def _voice(ctx: ResponderContext) -> dict[str, list[str]]:
    marks = {t.lower() for t in ctx.personality_traits} | set(nlp.words(ctx.description))
    if marks & _BARD:
        return _VOICES["bard"]
    if marks & _SCHOLAR:
        return _VOICES["scholar"]
    return _VOICES["neutral"]


def _pick(options: list[str], seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return options[digest[0] % len(options)]


def _clip(text: str, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def compose(ctx: ResponderContext) -> str:
    """The offline reply for this turn; the same inputs give the same reply."""
    voice = _voice(ctx)
    seed = f"{ctx.persona_name}|{ctx.user_message}|{len(ctx.history)}"
    topic_words = nlp.keywords(ctx.user_message, 2)
    topic = " and ".join(topic_words) if topic_words else "that"
    parts = [OFFLINE_NOTICE, _pick(voice["open"], seed).format(topic=topic)]
    parts[1] = parts[1][0].upper() + parts[1][1:]
    if "?" in ctx.user_message:
        parts.append(_pick(voice["question"], seed))
    if ctx.memories:
        parts.append(_pick(voice["memory"], seed).format(memory=_clip(ctx.memories[0])))
    earlier = [m.content for m in ctx.history if m.role == "user"]
    if earlier:
        earlier_topics = [w for w in nlp.keywords(earlier[-1], 2) if w not in topic_words]
        if earlier_topics:
            parts.append(_pick(voice["earlier"], seed).format(earlier=" and ".join(earlier_topics)))
    parts.append(_pick(voice.get(ctx.response_type, voice["continue"]), seed))
    return " ".join(parts)


class OfflineProvider:
    name = "offline"
    default_model = OFFLINE_MODEL

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        ctx = request.context or ResponderContext(
            persona_name="assistant",
            description="",
            personality_traits=[],
            user_message=next(
                (m.content for m in reversed(request.messages) if m.role == "user"), ""
            ),
            history=[ChatMessage(m.role, m.content) for m in request.messages[:-1]],
        )
        text = compose(ctx)
        if on_delta is not None:
            # Stream word by word so clients exercise the same path as with a real model.
            pieces = re.findall(r"\S+\s*", text)
            for piece in pieces:
                await on_delta(piece)
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        return ChatResult(
            text=text,
            model=OFFLINE_MODEL,
            provider=self.name,
            # No tokenizer runs offline: this is the word count of prompt and reply.
            tokens_used=prompt_words + len(text.split()),
        )

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(name=OFFLINE_MODEL)]

    async def health(self) -> ProviderHealth:
        return ProviderHealth(self.name, True, "deterministic offline responder (no LLM)")

    async def resolve(self) -> LLMProvider:
        return self

    async def aclose(self) -> None:
        return None
