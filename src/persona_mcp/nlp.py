"""Small text tools shared by the offline responder, summaries and importance scoring."""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from persona_mcp.sentiment import compound

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")

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


def sentiment(text: str) -> float:
    """Emotional valence in [-1, 1]: VADER's compound score (see `sentiment`)."""
    return compound(text)


# -- what kind of sentence: statement, question or filler ---------------------------

Kind = Literal["statement", "question", "filler"]
FILLER_WORDS = frozenset(
    """ok okay k kk cool nice great thanks thank thx ty yes yeah yep yup no nope nah sure
    hmm hm mm lol lmao haha hahaha hehe wow oh ah right alright fine good bye goodbye hi
    hello hey yo morning evening night gn gm sup indeed true agreed awesome perfect
    please welcome np cheers""".split()
)
_GREETINGS = frozenset(
    "hi hello hey yo hiya howdy morning evening thanks thank cheers bye goodbye good".split()
)
_QUESTION_OPENERS = re.compile(
    r"^(who|whom|whose|what|what's|when|where|where's|why|how|how's|which|do|does|did|is|"
    r"isn't|are|aren't|was|were|can|could|would|will|should|shall|may|might|have|has|had|"
    r"am|tell me|remind me|any idea|guess)\b",
    re.IGNORECASE,
)


def kind_of(sentence: str) -> Kind:
    """A statement (something to remember), a question, or filler ("ok", "thanks")."""
    text = sentence.strip()
    found = words(text)
    if not found or all(w in FILLER_WORDS for w in found):
        return "filler"
    if text.endswith("?") or _QUESTION_OPENERS.match(text):
        return "question"
    if found[0] in _GREETINGS and len(found) <= 4:
        return "filler"  # "hi Kira!", "thanks so much", "good morning you"
    content = [w for w in content_words(text) if w not in FILLER_WORDS]
    if not content and len(found) <= 3:
        return "filler"
    return "statement"
