"""How much a text touches a persona's topic preferences (0-1)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

# Words that signal a topic without naming it, by topic name.
_RELATED: dict[str, tuple[str, ...]] = {
    "music": ("song", "sing", "lute", "melod", "tune", "ballad", "guitar", "piano", "concert"),
    "stories": ("tale", "legend", "myth", "fable", "narrat", "saga"),
    "travel": ("journey", "voyage", "trip", "road", "wander", "explor", "abroad"),
    "poetry": ("poem", "verse", "rhyme", "sonnet", "lyric", "poet"),
    "emotions": ("feel", "sad", "happy", "love", "fear", "anger", "joy", "grief", "lonely"),
    "people": ("friend", "family", "person", "neighbour", "neighbor", "stranger"),
    "nature": ("forest", "sea", "river", "mountain", "tree", "bird", "flower", "ocean"),
    "history": ("ancient", "empire", "century", "war", "medieval", "king", "queen", "past"),
    "mathematics": ("math", "equation", "number", "proof", "theorem", "algebra", "geometr"),
    "science": ("experiment", "physic", "chemi", "biolog", "hypothes", "research", "theory"),
    "books": ("read", "library", "novel", "author", "manuscript", "archive"),
    "languages": ("grammar", "word", "linguist", "dialect", "translat", "vocabular"),
    "philosophy": ("ethic", "meaning", "truth", "moral", "reason", "existence"),
    "technology": ("computer", "software", "machine", "code", "program", "robot", "ai"),
    "gossip": ("rumou", "rumor", "scandal", "heard that"),
}

NEUTRAL_INTEREST = 0.4


def stem(word: str) -> str:
    """A deliberately small stemmer: enough to meet 'stories' and 'story' at 'stor'."""
    for suffix in ("ies", "ied", "ing", "es", "s", "y", "al", "ics", "ic"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


_RELATED_BY_STEM = {stem(topic): words for topic, words in _RELATED.items()}


def _signals(topic: str) -> tuple[str, ...]:
    """The topic's stem and its related signals, longest first."""
    key = stem(topic.lower())
    return tuple(sorted({key, *_RELATED_BY_STEM.get(key, ())}, key=len, reverse=True))


@lru_cache(maxsize=1024)
def _matcher(topics: tuple[str, ...]) -> tuple[re.Pattern[str], tuple[tuple[str, ...], ...]]:
    """One scan for every topic of a preference set: the pattern finds each word start
    where some signal begins, and each topic then checks its own signals there (a topic
    matches where one of its signals starts a word)."""
    signals = tuple(_signals(topic) for topic in topics)
    every = sorted({s for group in signals for s in group}, key=len, reverse=True)
    return re.compile(r"\b(?=" + "|".join(re.escape(s) for s in every) + ")"), signals


def topic_interest(text: str, preferences: Mapping[str, float]) -> tuple[float, list[str]]:
    """The strongest matching preference and the topics matched; neutral when none match."""
    if not preferences:
        return NEUTRAL_INTEREST, []
    lowered = text.lower()
    pattern, signals = _matcher(tuple(preferences))
    starts = [m.start() for m in pattern.finditer(lowered)]
    if not starts:
        return NEUTRAL_INTEREST, []
    matched = sorted(
        (
            (float(weight), topic)
            for (topic, weight), own in zip(preferences.items(), signals, strict=True)
            if any(lowered.startswith(own, start) for start in starts)
        ),
        reverse=True,
    )
    if not matched:
        return NEUTRAL_INTEREST, []
    return max(0.0, min(1.0, matched[0][0])), [topic for _, topic in matched]
