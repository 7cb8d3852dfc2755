"""Summaries of older conversation turns: by the LLM when one is connected, else extractive."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from persona_mcp import nlp
from persona_mcp.llm.base import ChatMessage, ChatRequest, LLMProvider
from persona_mcp.store.conversations import MessageRow

MAX_SUMMARY_CHARS = 1200


def extractive_summary(
    previous: str, messages: Sequence[MessageRow], max_sentences: int = 8
) -> str:
    """The most content-bearing sentences, in order, the user's weighted above the persona's."""
    candidates: list[tuple[int, str, str]] = []
    for i, sentence in enumerate(nlp.sentences(previous)):
        candidates.append((i, "", sentence))
    offset = len(candidates)
    for m in messages:
        who = "User" if m.role == "user" else "Persona"
        for sentence in nlp.sentences(m.content):
            if sentence.startswith("(Offline:"):
                continue  # the offline notice carries no content
            candidates.append((offset + len(candidates), who, sentence))
    if not candidates:
        return previous
    freq = Counter(w for _, _, s in candidates for w in nlp.content_words(s))

    def score(item: tuple[int, str, str]) -> float:
        _, who, sentence = item
        ws = nlp.content_words(sentence)
        if not ws:
            return 0.0
        base = sum(freq[w] for w in set(ws)) / math.sqrt(len(ws))
        return base * (1.5 if who == "User" else 1.0) * (1.2 if who == "" else 1.0)

    best = sorted(candidates, key=score, reverse=True)[:max_sentences]
    chosen = sorted(best, key=lambda item: item[0])
    text = " ".join(f"{who}: {s}" if who else s for _, who, s in chosen)
    return text[:MAX_SUMMARY_CHARS]


async def llm_summary(
    llm: LLMProvider,
    model: str | None,
    persona_name: str,
    previous: str,
    messages: Sequence[MessageRow],
) -> str:
    transcript = "\n".join(
        f"{'User' if m.role == 'user' else persona_name}: {m.content}" for m in messages
    )
    prompt = (
        "Summarize this conversation for long-term context in at most 120 words. Keep facts "
        "the user shared about themselves, decisions, open questions and the emotional tone. "
        "Write plain prose, no preamble.\n\n"
        + (f"Summary so far:\n{previous}\n\n" if previous else "")
        + f"New turns:\n{transcript}"
    )
    result = await llm.generate(
        ChatRequest(messages=[ChatMessage("user", prompt)], model=model, temperature=0.2)
    )
    return result.text.strip()[:MAX_SUMMARY_CHARS]
