"""MemoryOS's rules, as pure functions: keywords, segment similarity, heat, and the
offline (rule-based) extraction of a user profile and knowledge from pages.

Heat (MemoryOS): `heat = α·N_visit + β·L_interaction + γ·R_recency`, where N_visit is how
often retrieval visited the segment, L_interaction its number of pages and
`R_recency = exp(-Δt / τ)` with Δt the time since the last visit. Our weights: α = 1.0,
β = 0.5, γ = 1.0, τ = 10⁷ s (MemoryOS's μ). With β = 0.5 a fresh segment of a few pages
stays below the promotion threshold (5.0) until retrieval has visited it a few times,
so what is promoted is what keeps being asked about, not merely what was long.

A page joins the segment it is most similar to when `cos(page, segment) +
Jaccard(keywords)` reaches JOIN_THRESHOLD (0.6, MemoryOS's value), else it starts one.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from persona_mcp import nlp
from persona_mcp.embeddings.base import Vectors

HEAT_VISITS = 1.0
HEAT_LENGTH = 0.5
HEAT_RECENCY = 1.0
RECENCY_TAU_SECONDS = 1e7
JOIN_THRESHOLD = 0.6
KEYWORDS_PER_SEGMENT = 12


def heat(visits: int, pages: int, last_visit_at: float, now: float) -> float:
    recency = math.exp(-max(0.0, now - last_visit_at) / RECENCY_TAU_SECONDS)
    return HEAT_VISITS * visits + HEAT_LENGTH * pages + HEAT_RECENCY * recency


_POSSESSIVE = re.compile(r"(\w)['’]s\b")


def keywords(text: str, limit: int = KEYWORDS_PER_SEGMENT) -> list[str]:
    """Content words, possessives folded in ("dog's" counts as "dog")."""
    return nlp.keywords(_POSSESSIVE.sub(r"\1", text), limit)


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def cosine(a: Vectors | None, b: Vectors | None) -> float:
    if a is None or b is None or a.shape != b.shape:
        return 0.0
    return float(np.dot(a, b))


def similarity(
    vector: Vectors | None, words: Sequence[str], other: Vectors | None, other_words: Sequence[str]
) -> float:
    """MemoryOS's F-score of a page (or query) against a segment: semantic + keywords."""
    return cosine(vector, other) + jaccard(words, other_words)


def merged_keywords(old: Sequence[str], new: Sequence[str]) -> list[str]:
    counts = Counter(old) + Counter(new)
    order = {w: i for i, w in enumerate([*old, *new]) if w not in old[:i]}
    ranked = sorted(counts, key=lambda w: (-counts[w], order.get(w, 0)))
    return ranked[:KEYWORDS_PER_SEGMENT]


def mean_vector(old: Vectors | None, old_n: int, new: Vectors | None) -> Vectors | None:
    """The running mean of a segment's page vectors, kept at unit length."""
    if new is None:
        return old
    if old is None or old.shape != new.shape:
        return new
    merged = old * old_n + new
    norm = float(np.linalg.norm(merged))
    return (merged / norm).astype(np.float32) if norm else new


def segment_summary(keywords_: Sequence[str], first_input: str, pages: int) -> str:
    topic = ", ".join(keywords_[:5]) or "small talk"
    opening = first_input.strip().replace("\n", " ")
    if len(opening) > 120:
        opening = opening[:117].rstrip() + "..."
    return f"{pages} exchange{'s' if pages != 1 else ''} about {topic}, starting: “{opening}”"


# -- offline extraction ------------------------------------------------------------------

_QUESTION_START = re.compile(
    r"^(who|what|when|where|why|how|which|whose|do|does|did|is|are|was|were|can|could|"
    r"would|will|should|shall|may|might|have|has|had|am)\b",
    re.IGNORECASE,
)
_FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'll|i'd|my|mine|me|myself)\b", re.IGNORECASE)
_LIKE = re.compile(
    r"\bI\s+(?:really\s+|truly\s+|absolutely\s+)?(love|like|enjoy|prefer|adore)\s+(.+)", re.I
)
_DISLIKE = re.compile(
    r"\bI\s+(?:really\s+)?(hate|dislike|can't stand|cannot stand|don't like|do not like)\s+(.+)",
    re.I,
)
_IDENTITY = re.compile(
    r"\b(?:I am|I'm)\s+(?:a|an)\s+([a-z][a-z \-]{2,40}?)(?:[.,;!]|$| and | who )", re.I
)
_NAME = re.compile(r"\b(?:my name is|call me)\s+([A-Z][a-zA-Z\-]+)", re.I)
_PROMISE = re.compile(
    r"\b(I will|I'll|I promise|I can|I know|I remember|I recommend|let me|I suggest)\b", re.I
)
_IRREGULAR = {
    "am": "is", "'m": "is", "have": "has", "'ve": "has", "do": "does", "was": "was",
    "were": "was", "'ll": "will", "'d": "would", "go": "goes",
}  # fmt: skip
_MODALS = {"can", "could", "will", "would", "should", "shall", "may", "might", "must", "did"}


def is_statement(sentence: str) -> bool:
    text = sentence.strip()
    return bool(text) and not text.endswith("?") and not _QUESTION_START.match(text)


def _third_person_verb(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _MODALS or low.endswith("ed"):
        return verb
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    if re.search(r"(s|sh|ch|x|z|o)$", low):
        return verb + "es"
    return verb + "s"


def about_user(sentence: str) -> str:
    """A first-person statement retold about the user: "I love Python" → "The user
    loves Python", "My sister lives in Lisbon" → "The user's sister lives in Lisbon"."""
    text = sentence.strip().rstrip(".!")
    text = re.sub(
        r"^I('m|'ve|'ll|'d)\b", lambda m: "The user " + _third_person_verb(m.group(1)), text
    )
    text = re.sub(
        r"^I\s+(\w+)", lambda m: "The user " + _third_person_verb(m.group(1)), text, count=1
    )
    text = re.sub(r"^My\b", "The user's", text)
    text = re.sub(r"\bmy\b", "their", text)
    text = re.sub(r"\bmyself\b", "themselves", text)
    text = re.sub(r"\bme\b", "them", text)
    text = re.sub(r"\bI('m| am)\b", "they are", text)
    text = re.sub(r"\bI\b", "they", text)
    return text + "."


@dataclass
class Extraction:
    user_knowledge: list[str] = field(default_factory=list)
    assistant_knowledge: list[str] = field(default_factory=list)
    likes: list[str] = field(default_factory=list)
    dislikes: list[str] = field(default_factory=list)
    traits: list[str] = field(default_factory=list)
    name: str | None = None
    style: dict[str, float | str] = field(default_factory=dict)


def _clip(phrase: str) -> str:
    phrase = re.split(r"[.,;!?]| but | because ", phrase.strip())[0].strip()
    return " ".join(phrase.split()[:6])


def extract(pairs: Sequence[tuple[str, str]], persona_name: str) -> Extraction:
    """Rule-based extraction from (user_input, agent_response) pages."""
    out = Extraction()
    user_words, questions, exclaims = 0, 0, 0
    for user_input, agent_response in pairs:
        sentences = nlp.sentences(user_input) or [user_input]
        user_words += len(nlp.words(user_input))
        questions += sum(1 for s in sentences if s.strip().endswith("?"))
        exclaims += user_input.count("!")
        for sentence in sentences:
            if not is_statement(sentence) or not _FIRST_PERSON.search(sentence):
                continue
            if len(nlp.content_words(sentence)) < 1:
                continue
            fact = about_user(sentence)
            if fact not in out.user_knowledge:
                out.user_knowledge.append(fact)
            if m := _LIKE.search(sentence):
                out.likes.append(_clip(m.group(2)))
            if m := _DISLIKE.search(sentence):
                out.dislikes.append(_clip(m.group(2)))
            if m := _IDENTITY.search(sentence):
                out.traits.append(m.group(1).strip())
            if m := _NAME.search(sentence):
                out.name = m.group(1)
        for sentence in nlp.sentences(agent_response):
            if _PROMISE.search(sentence) and is_statement(sentence):
                note = f"{persona_name} said: {sentence.strip()}"
                if note not in out.assistant_knowledge:
                    out.assistant_knowledge.append(note)
    n = max(len(pairs), 1)
    average = user_words / n
    out.style = {
        "average_words": round(average, 1),
        "length": "concise" if average < 15 else "detailed",
        "asks_questions": round(questions / n, 2),
        "tone": "enthusiastic" if exclaims / n >= 0.5 else "even",
    }
    return out


def profile_text(profile: dict[str, Any]) -> str:
    """The profile as MemoryOS returns it: one readable paragraph."""
    parts = []
    if profile.get("name"):
        parts.append(f"The user's name is {profile['name']}.")
    traits: list[str] = list(profile.get("traits") or [])
    if traits:
        parts.append("The user is " + ", ".join(f"a {t}" for t in traits) + ".")
    likes: list[str] = list(profile.get("likes") or [])
    if likes:
        parts.append("Likes: " + "; ".join(likes) + ".")
    dislikes: list[str] = list(profile.get("dislikes") or [])
    if dislikes:
        parts.append("Dislikes: " + "; ".join(dislikes) + ".")
    style = profile.get("style") or {}
    if isinstance(style, dict) and style:
        length, tone = style.get("length", ""), style.get("tone", "")
        parts.append(f"Writes {length} messages in an {tone} tone.")
    return " ".join(parts) or "No profile yet."
