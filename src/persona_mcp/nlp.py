"""Small text tools shared by the offline responder, summaries and importance scoring."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")

# Standard English function words (and the fragments contractions leave behind).
STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out
    over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves s t d ll m re ve don didn doesn isn wasn aren weren hasn haven hadn
    won wouldn shouldn couldn""".split()
)
# Chat filler: carries no topic in a summary or a reply, though it can matter in a search.
FILLER = frozenset(
    """also really yes yeah oh ok okay well tell know think want get got going go one thing
    things something anything us please thanks thank hi hello hey today yesterday tomorrow
    just like""".split()
)


def words(text: str) -> list[str]:
    return [w.lower().strip("'-") for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and w not in FILLER and len(w) > 2]


def keywords(text: str, limit: int = 3) -> list[str]:
    """The most frequent content words, first occurrence breaking ties."""
    found = content_words(text)
    counts = Counter(found)
    order = {w: i for i, w in reversed(list(enumerate(found)))}
    return sorted(counts, key=lambda w: (-counts[w], order[w]))[:limit]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


@lru_cache(maxsize=1)
def _vader() -> Any:
    # Imported lazily: the lexicon takes a moment to load and is not needed at import time.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float:
    """Emotional valence in [-1, 1] from VADER's lexicon (compound score)."""
    if not text.strip():
        return 0.0
    return float(_vader().polarity_scores(text)["compound"])
