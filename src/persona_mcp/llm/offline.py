"""The offline responder: deterministic replies in the persona's voice, with no model.

It says plainly that it is offline, answers from what it has (the message, the
conversation so far, the memories recalled for this turn) and never pretends to know
what only a language model could produce.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from persona_mcp import nlp
from persona_mcp.errors import Unavailable
from persona_mcp.llm.base import (
    NO_LLM,
    ChatMessage,
    ChatRequest,
    ChatResult,
    LLMProvider,
    ModelInfo,
    OnDelta,
    ProviderHealth,
    ResponderContext,
    StructuredResult,
)
from persona_mcp.memory import formation

OFFLINE_MODEL = "offline"
OFFLINE_NOTICE = "(Offline: no language model is connected, so this reply comes from my notes.)"

_VOICES: dict[str, dict[str, list[str]]] = {
    "bard": {
        "memory": [
            "I remember you once told me: \u201c{memory}\u201d",
            "A verse of yours still rings in my ear: \u201c{memory}\u201d",
        ],
        "unknown": [
            "You've never sung me a verse about {topic}, so I won't invent one.",
            "Nothing in my songbook tells of {topic}, and I'll not make up a tale.",
        ],
        "ack": [
            "I'll tuck that into my songbook: \u201c{statement}\u201d",
            "Noted in my verses: \u201c{statement}\u201d",
        ],
        "filler": ["Mm, I'm listening.", "Ha! Go on, then."],
        "greet": ["Well met, friend!", "Ah, a familiar face by the fire!"],
        "wellbeing": [
            "I'm {mood} tonight, thank you for asking!",
            "Feeling {mood}, friend, and glad of the company.",
        ],
        "continue": [
            "Tell me more, and I'll set it to music.",
            "What happened next? Every good song needs its second verse.",
        ],
        "wrap_up": ["My voice is growing hoarse, friend; one more verse and then a rest?"],
        "end": ["The fire burns low and so do I; let us take this up another evening."],
    },
    "scholar": {
        "memory": [
            "My notes record that you said: \u201c{memory}\u201d",
            "For the record, you told me: \u201c{memory}\u201d",
        ],
        "unknown": [
            "My notes hold nothing on {topic}, so I will not guess.",
            "You have not told me about {topic}, and I will not guess.",
        ],
        "ack": [
            "Noted: \u201c{statement}\u201d",
            "I have written that down: \u201c{statement}\u201d",
        ],
        "filler": ["Understood.", "Go on."],
        "greet": ["Hello. Good to see you again.", "Greetings."],
        "wellbeing": ["I am {mood} today, thank you.", "Quite {mood}, thank you for asking."],
        "continue": [
            "What evidence do you have in mind? I'd like to note it.",
            "Which aspect should we examine first?",
        ],
        "wrap_up": ["I should close my notebook soon; shall we summarise where we stand?"],
        "end": ["I must return to the archive now; let's resume when I'm rested."],
    },
    "neutral": {
        "memory": ["I remember you said: \u201c{memory}\u201d"],
        "unknown": ["You haven't told me about {topic}, so I won't guess."],
        "ack": ["Got it: \u201c{statement}\u201d"],
        "filler": ["Okay.", "Sure."],
        "greet": ["Hello!"],
        "wellbeing": ["I'm {mood}, thanks for asking."],
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


_IRREGULAR = {
    "grew": "grow", "grown": "grow", "went": "go", "gone": "go", "had": "have",
    "made": "make", "got": "get", "bought": "buy", "met": "meet", "left": "leave",
    "born": "birth", "ate": "eat", "drove": "drive", "wrote": "write", "taught": "teach",
    "lost": "lose", "won": "win", "began": "begin", "fell": "fall", "felt": "feel",
    "called": "name", "named": "name", "job": "work", "occupation": "work",
    "profession": "work", "employer": "work", "home": "live", "reside": "live",
    "moved": "live", "move": "live", "moving": "live", "relocated": "live",
}  # fmt: skip


def _stems(text: str) -> set[str]:
    out = set()
    for word in nlp.content_words(re.sub(r"(\w)['’]s\b", r"\1", text)):
        word = _IRREGULAR.get(word, word)
        for suffix in ("ing", "ies", "es", "ed", "s"):
            if len(word) > len(suffix) + 2 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        out.add(word)
    return out


def _facts(ctx: ResponderContext) -> tuple[list[str], dict[str, str]]:
    """What the user stated: recalled memories first (best first), then the statements
    of this conversation's recent turns, newest first. Never their questions. Also which
    stated fact corrects which earlier one (recalled corrections, and those made within
    the conversation: "Tomas lives in Oslo." ... "Actually, Tomas moved to Bergen.")."""
    facts = list(ctx.memories)
    found_by = dict(ctx.found_by)
    spoken: list[str] = []
    for message in reversed(ctx.history):
        if message.role != "user":
            continue
        for sentence in reversed(nlp.sentences(message.content)):
            if nlp.kind_of(sentence) == "statement" and sentence not in facts:
                facts.append(sentence)
                spoken.append(sentence)
    for i, newer in enumerate(spoken):  # newest first
        for older in spoken[i + 1 :]:
            if newer not in found_by and formation.contradicts(newer, older):
                found_by[newer] = older
    return facts, found_by


# Questions that ask how the persona is, not for a fact: "how are you?", "how's it going?"
_WELLBEING = re.compile(
    r"\b(how\s+(are|r)\s+(you|u|ya)(\s+(doing|feeling))?|how('s|\s+is)\s+(it\s+going|life)"
    r"|how\s+are\s+things|how\s+have\s+you\s+been|how\s+do\s+you\s+(do|feel)"
    r"|what'?s\s+up|(are\s+)?you\s+(ok|okay|alright))"
    r"(\s+(today|now|tonight|lately|these\s+days|this\s+(morning|evening)))?\W*$",
    re.I,
)


def asks_how_i_am(question: str) -> bool:
    return _WELLBEING.search(question) is not None


def answer_from(question: str, facts: list[str], found_by: dict[str, str]) -> str | None:
    """The stated fact sharing most words with the question (a correction also by the
    words of what it corrected: `found_by`); None when none does: never a guess. A fact
    that a recalled correction replaced is not an answer: the correction is."""
    wanted = _stems(question)
    corrected = set(found_by.values())
    best, best_overlap = None, 0
    for fact in facts:
        if fact in corrected:
            continue
        overlap = len(wanted & (_stems(fact) | _stems(found_by.get(fact, ""))))
        if overlap > best_overlap:
            best, best_overlap = fact, overlap
    return best


def compose(ctx: ResponderContext) -> str:
    """The offline reply for this turn; the same inputs give the same reply."""
    voice = _voice(ctx)
    seed = f"{ctx.persona_name}|{ctx.user_message}|{len(ctx.history)}"
    parts = [OFFLINE_NOTICE]
    sentences = nlp.sentences(ctx.user_message) or [ctx.user_message]
    kinds = [nlp.kind_of(s) for s in sentences]
    statements = [s for s, k in zip(sentences, kinds, strict=True) if k == "statement"]
    questions = [s for s, k in zip(sentences, kinds, strict=True) if k == "question"]
    if statements:
        parts.append(_pick(voice["ack"], seed).format(statement=_clip(" ".join(statements))))
    greeting = nlp.words(ctx.user_message)[:1] in (["hi"], ["hello"], ["hey"], ["morning"])
    name = ctx.persona_name.lower()
    for question in questions[:2]:
        if asks_how_i_am(question):
            if greeting:
                parts.append(_pick(voice["greet"], seed))
            line = _pick(voice["wellbeing"], seed + question)
            parts.append(line.format(mood=ctx.mood or "well"))
            continue
        fact = answer_from(question, *_facts(ctx))
        if fact is not None:
            parts.append(_pick(voice["memory"], seed + question).format(memory=_clip(fact)))
        else:
            words = [w for w in nlp.keywords(question, 3) if w != name][:2]
            topic = " and ".join(words) if words else "that"
            parts.append(_pick(voice["unknown"], seed + question).format(topic=topic))
    if not statements and not questions:
        parts.append(_pick(voice["greet" if greeting else "filler"], seed))
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

    async def generate_json(self, request: ChatRequest, schema: dict[str, Any]) -> StructuredResult:
        raise Unavailable(NO_LLM, {"provider": self.name})

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(name=OFFLINE_MODEL)]

    async def health(self) -> ProviderHealth:
        return ProviderHealth(self.name, True, "deterministic offline responder (no LLM)")

    async def resolve(self) -> LLMProvider:
        return self

    async def aclose(self) -> None:
        return None
