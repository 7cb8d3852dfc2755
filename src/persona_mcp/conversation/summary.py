"""Summaries of older conversation turns: by the LLM when one is connected, else extractive."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from persona_mcp import nlp
from persona_mcp.llm.base import ChatMessage, ChatRequest, LLMProvider
from persona_mcp.store.conversations import MessageRow

MAX_SUMMARY_CHARS = 1200


_SELF_FACT = re.compile(r"\b(my|i am|i'm|i have|i've|i love|i like|i hate|i work|i live)\b", re.I)
_NAME_OR_NUMBER = re.compile(r"(?<!^)(?<![.!?] )\b([A-Z][a-z]+|\d+)")


def extractive_summary(
    previous: str, messages: Sequence[MessageRow], max_sentences: int = 8
) -> str:
    """Distinctive sentences, in order: what the user stated (never their questions or
    filler) and what a real model replied (never the offline responder's stock phrases);
    rare words, names, numbers and what the user says about themselves score high, and
    near-duplicates of a chosen sentence are skipped."""
    candidates: list[tuple[int, str, str]] = [
        (i, "", s) for i, s in enumerate(nlp.sentences(previous))
    ]
    for m in messages:
        if m.role != "user" and m.content.startswith("(Offline:"):
            continue  # the offline responder only restates what is known: stock phrases
        who = "User" if m.role == "user" else "Persona"
        for sentence in nlp.sentences(m.content):
            if who == "User" and nlp.kind_of(sentence) != "statement":
                continue  # what the user asked or filler is not what happened
            candidates.append((len(candidates), who, sentence))
    if not candidates:
        return previous
    bags = [set(nlp.content_words(s)) for _, _, s in candidates]
    df = Counter(w for bag in bags for w in bag)
    n = len(candidates)

    def score(index: int) -> float:
        _, who, sentence = candidates[index]
        bag = bags[index]
        if not bag:
            return 0.0
        rarity = sum(math.log(1 + n / df[w]) for w in bag) / math.sqrt(len(bag))
        bonus = 1.0
        if who == "User" and _SELF_FACT.search(sentence):
            bonus += 0.6
        if _NAME_OR_NUMBER.search(sentence):
            bonus += 0.3
        if who == "":
            bonus += 0.4  # the previous summary already passed this filter once
        elif who == "User":
            bonus += 0.2
        return rarity * bonus

    chosen: list[int] = []
    for index in sorted(range(n), key=score, reverse=True):
        if len(chosen) == max_sentences or score(index) == 0.0:
            break
        bag = bags[index]
        if any(len(bag & bags[j]) / max(1, len(bag | bags[j])) > 0.5 for j in chosen):
            continue
        chosen.append(index)
    text = " ".join(
        f"{candidates[i][1]}: {candidates[i][2]}" if candidates[i][1] else candidates[i][2]
        for i in sorted(chosen)
    )
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
