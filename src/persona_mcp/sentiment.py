"""VADER's compound sentiment score, computed the way `vaderSentiment` computes it, fast.

The library (Hutto & Gilbert, 2014) lowercases the whole sentence again for every
sentiment word it meets, several times over, and walks every character looking for
emoji: about 150 µs a chat message, most of the cost of storing a memory. Here each
sentence is split and lowercased once and the same rules run over that one list, with
the library's own lexicon, booster words, negations and idioms. An ASCII text cannot
hold an emoji; any other text goes to the library unchanged. `tests/test_sentiment.py`
checks that both give the same score on every LoCoMo turn and on each rule's cases.
"""

from __future__ import annotations

import math
import string
from functools import lru_cache
from typing import Any

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    C_INCR,
    N_SCALAR,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
)

_NEGATIONS = frozenset(NEGATE)


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    # Built lazily: reading the lexicon takes a moment, never spent at import time.
    return SentimentIntensityAnalyzer()


def compound(text: str) -> float:
    """VADER's compound score in [-1, 1] (rounded to 4 places, as the library does)."""
    analyzer = _analyzer()
    if not text.isascii():
        return float(analyzer.polarity_scores(text)["compound"])
    text = text.strip()
    tokens = [_strip_punctuation(word) for word in text.split()]
    lower = [token.lower() for token in tokens]
    lexicon: dict[str, float] = analyzer.lexicon
    if not any(word in lexicon for word in lower):
        return 0.0
    caps_differ = 0 < sum(1 for token in tokens if not token.isupper()) < len(tokens)
    sentiments: list[float] = []
    last = len(tokens) - 1
    for i, word in enumerate(lower):
        if (
            word in BOOSTER_DICT
            or word not in lexicon
            or (word == "kind" and i < last and lower[i + 1] == "of")
        ):
            sentiments.append(0.0)
            continue
        sentiments.append(_valence(tokens, lower, i, lexicon, caps_differ))
    if "but" in lower:
        _but(lower.index("but"), sentiments)
    total = float(sum(sentiments))
    emphasis = min(text.count("!"), 4) * 0.292 + _question_emphasis(text.count("?"))
    if total > 0:
        total += emphasis
    elif total < 0:
        total -= emphasis
    score = total / math.sqrt(total * total + 15)
    return round(max(-1.0, min(1.0, score)), 4)


def _strip_punctuation(token: str) -> str:
    stripped = token.strip(string.punctuation)
    return token if len(stripped) <= 2 else stripped  # short: an emoticon such as ":)"


def _valence(
    tokens: list[str], lower: list[str], i: int, lexicon: dict[str, float], caps_differ: bool
) -> float:
    """One sentiment word's valence, with the words before it applied."""
    word = lower[i]
    valence = lexicon[word]
    if word == "no" and i != len(lower) - 1 and lower[i + 1] in lexicon:
        valence = 0.0  # "no" negates the next word instead of counting itself
    if (
        (i > 0 and lower[i - 1] == "no")
        or (i > 1 and lower[i - 2] == "no")
        or (i > 2 and lower[i - 3] == "no" and lower[i - 1] in ("or", "nor"))
    ):
        valence = lexicon[word] * N_SCALAR
    if tokens[i].isupper() and caps_differ:
        valence += C_INCR if valence > 0 else -C_INCR
    for back in range(3):
        j = i - (back + 1)
        if j < 0 or lower[j] in lexicon:
            continue
        scalar = _booster(tokens[j], lower[j], valence, caps_differ)
        if scalar != 0:
            scalar *= (1.0, 0.95, 0.9)[back]
        valence += scalar
        valence = _negation(valence, lower, back, i)
        if back == 2:
            valence = _idioms(valence, lower, i)
    return _least(valence, lower, i, lexicon)


def _booster(token: str, word: str, valence: float, caps_differ: bool) -> float:
    scalar: float | None = BOOSTER_DICT.get(word)
    if scalar is None:
        return 0.0
    if valence < 0:
        scalar *= -1
    if token.isupper() and caps_differ:
        scalar += C_INCR if valence > 0 else -C_INCR
    return scalar


def _negated(word: str) -> bool:
    return word in _NEGATIONS or "n't" in word


def _negation(valence: float, lower: list[str], back: int, i: int) -> float:
    if back == 0:
        if _negated(lower[i - 1]):
            valence *= N_SCALAR
    elif back == 1:
        if lower[i - 2] == "never" and lower[i - 1] in ("so", "this"):
            valence *= 1.25
        elif lower[i - 2] == "without" and lower[i - 1] == "doubt":
            pass
        elif _negated(lower[i - 2]):
            valence *= N_SCALAR
    else:
        if (lower[i - 3] == "never" and lower[i - 2] in ("so", "this")) or lower[i - 1] in (
            "so",
            "this",
        ):
            valence *= 1.25
        elif lower[i - 3] == "without" and "doubt" in (lower[i - 2], lower[i - 1]):
            pass
        elif _negated(lower[i - 3]):
            valence *= N_SCALAR
    return valence


def _idioms(valence: float, lower: list[str], i: int) -> float:
    before = (
        f"{lower[i - 1]} {lower[i]}",
        f"{lower[i - 2]} {lower[i - 1]} {lower[i]}",
        f"{lower[i - 2]} {lower[i - 1]}",
        f"{lower[i - 3]} {lower[i - 2]} {lower[i - 1]}",
        f"{lower[i - 3]} {lower[i - 2]}",
    )
    for sequence in before:
        if sequence in SPECIAL_CASES:
            valence = SPECIAL_CASES[sequence]
            break
    if len(lower) - 1 > i:
        pair = f"{lower[i]} {lower[i + 1]}"
        if pair in SPECIAL_CASES:
            valence = SPECIAL_CASES[pair]
    if len(lower) - 1 > i + 1:
        triple = f"{lower[i]} {lower[i + 1]} {lower[i + 2]}"
        if triple in SPECIAL_CASES:
            valence = SPECIAL_CASES[triple]
    for n_gram in (before[3], before[4], before[2]):  # "sort of", "kind of"
        if n_gram in BOOSTER_DICT:
            valence += BOOSTER_DICT[n_gram]
    return valence


def _least(valence: float, lower: list[str], i: int, lexicon: dict[str, float]) -> float:
    if (
        i > 0
        and lower[i - 1] == "least"
        and "least" not in lexicon
        and (i == 1 or lower[i - 2] not in ("at", "very"))
    ):
        valence *= N_SCALAR
    return valence


def _question_emphasis(count: int) -> float:
    if count <= 1:
        return 0.0
    return count * 0.18 if count <= 3 else 0.96


def _but(index: int, sentiments: list[float]) -> None:
    """Halve what comes before "but", raise what follows by half. As in the library,
    each value is looked up by its first occurrence, so equal values share a fate."""
    for sentiment in sentiments:
        si = sentiments.index(sentiment)
        if si < index:
            sentiments[si] = sentiment * 0.5
        elif si > index:
            sentiments[si] = sentiment * 1.5
