"""What becomes a memory: the rules that decide, per chat message, what is kept.

A message is split into sentences; each is a *question* (ends with "?" or opens like
one), *filler* (greetings, thanks, "ok", "cool", "lol": nothing of its own to remember)
or a *statement* (a fact, preference, plan or event). Only statements become memories of
what the user said; a message with none leaves no memory (the conversation log keeps
it). The persona's own replies are stored as the persona's, never as the user's.

The rules also find when two statements say the same thing (a duplicate reinforces the
memory already held) and when a new one corrects an older one (it supersedes it): the
same subject with the same kind of attribute ("lives in", "works at", "is") and a
different value, as in "Mara lives in Lisbon" → "Mara moved to Porto".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from persona_mcp import nlp
from persona_mcp.nlp import FILLER_WORDS as _FILLER
from persona_mcp.nlp import Kind, kind_of, sentences

Speaker = Literal["user", "persona"]

_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "location": ("live", "lives", "living", "lived", "moved", "move", "moving", "relocated",
                 "based", "resides", "reside", "stays", "staying"),
    "work": ("work", "works", "working", "worked", "job", "employed", "joined"),
    "study": ("study", "studies", "studying", "studied", "student", "major", "majors"),
    "name": ("called", "named", "name"),
    "age": ("old", "aged", "age"),
    "likes": ("love", "loves", "like", "likes", "prefer", "prefers", "favourite", "favorite"),
    "is": ("is", "am", "are", "was", "'s", "'m", "'re"),
}  # fmt: skip
_VERB_TO_ATTRIBUTE = {verb: attr for attr, verbs in _ATTRIBUTES.items() for verb in verbs}
_TOKEN = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|\d+")
_SUBJECT_NORMAL = {"i": "user", "i'm": "user", "me": "user", "my": "user's", "mine": "user's"}
_CHANGE_WORDS = frozenset({"now", "no", "longer", "anymore", "actually", "instead", "moved"})


@dataclass(frozen=True)
class Formed:
    """What a message leaves: the statement text to remember (or None), and its kind."""

    kind: Kind
    statement: str | None


def form(message: str) -> Formed:
    """Decide what a user's message leaves as a memory."""
    parts = sentences(message) or [message]
    kinds = [kind_of(p) for p in parts]
    kept = [p for p, k in zip(parts, kinds, strict=True) if k == "statement"]
    if kept:
        return Formed("statement", " ".join(kept))
    return Formed("question" if "question" in kinds else "filler", None)


# -- duplicates and corrections --------------------------------------------------------


def _normal_words(text: str) -> set[str]:
    """Content words and numbers: "zebra number 1" and "zebra number 2" differ."""
    tokens = (t.lower() for t in _TOKEN.findall(text.replace("’", "'")))
    return {t for t in tokens if t not in nlp.STOPWORDS and t not in _FILLER}


def is_duplicate(new: str, old: str, cosine: float | None) -> bool:
    """The same statement again: the same content words (or near-identical meaning)."""
    a, b = _normal_words(new), _normal_words(old)
    if a and a == b:
        return True
    if cosine is None:
        return False
    return cosine >= 0.95 and (a <= b or b <= a)


@dataclass(frozen=True)
class Claim:
    subject: tuple[str, ...]
    attribute: str
    value: tuple[str, ...]


def claim(sentence: str) -> Claim | None:
    """Subject, attribute and value of a simple statement ("My car is red" →
    (user's car), is, (red)); None when the sentence has no recognisable attribute."""
    tokens = [t.lower() for t in _TOKEN.findall(sentence.replace("’", "'"))]
    for i, token in enumerate(tokens):
        attribute = _VERB_TO_ATTRIBUTE.get(token)
        if attribute is None and token.endswith(("'s", "'m", "'re")) and i == 0:
            attribute = "is"
        if attribute is None:
            continue
        subject = tuple(
            _SUBJECT_NORMAL.get(t, t)
            for t in tokens[:i]
            if (t not in nlp.STOPWORDS or t in _SUBJECT_NORMAL)
            and t not in _CHANGE_WORDS
            and t not in ("just", "still", "also", "really")
        )
        if token in _SUBJECT_NORMAL or (token.endswith(("'m",)) and i == 0):
            subject = ("user",)
        value = tuple(
            t
            for t in tokens[i + 1 :]
            if t not in nlp.STOPWORDS and t not in _CHANGE_WORDS and t not in _VERB_TO_ATTRIBUTE
        )
        if subject and value:
            return Claim(subject, attribute, value)
        return None
    return None


_OWNER = frozenset({"user", "user's"})
# Attributes a person may hold many of at once: a new one adds, it does not correct.
_MULTI_VALUED = frozenset({"likes"})


def same_subject(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """ "My sister Mara" and "Mara" are one subject; "my car" and "my bike" are two."""
    return a == b or bool((set(a) & set(b)) - _OWNER)


# "…, not York": the value a correction says was wrong (an article or preposition between).
_NOT_THIS = re.compile(r"\bnot\s+(?:(?:the|a|an|in|at|on|to|from)\s+)?([^\W_]+)", re.IGNORECASE)


def names_the_mistake(new: str, old: str) -> bool:
    """Whether `new` says a value of `old` was wrong and gives another in its place, about
    the same thing ("Actually, it's the Manchester half marathon, not York" corrects "I'm
    training for the York half marathon"): the named value is one of `old`'s words, the
    two share other content words, and `new` brings one of its own."""
    a, b = _normal_words(new), _normal_words(old)
    wrong = {w.lower() for w in _NOT_THIS.findall(new.replace("’", "'"))} & b
    return bool(wrong) and bool((a & b) - wrong) and bool(a - b - wrong - _CHANGE_WORDS)


def contradicts(new: str, old: str, cosine: float | None = None) -> bool:
    """Whether `new` corrects `old`: same subject, same kind of attribute, other value,
    or it names one of `old`'s values as wrong (`names_the_mistake`). A bare "is" ("I am
    a nurse" / "I am allergic") also needs close meaning (cosine)."""
    if names_the_mistake(new, old):
        return True
    a, b = claim(new), claim(old)
    if a is None or b is None or not same_subject(a.subject, b.subject):
        return False
    if a.attribute in _MULTI_VALUED or b.attribute in _MULTI_VALUED:
        return False
    if a.attribute != b.attribute:
        return False
    if a.attribute == "is" and (cosine is None or cosine < IS_MIN_COSINE):
        return False
    return set(a.value) != set(b.value) and not set(a.value) <= set(b.value)


IS_MIN_COSINE = 0.6
