"""The offline group-turn writer: a persona's line in its own voice, replying to the
previous speaker, with no language model.

Deterministic for a given `random.Random`: the style comes from the persona's traits,
the subject from what the previous speaker said and the persona's topic preferences, and
the stance (agreeing or differing) from how the persona feels about that speaker. The
lines are templates, and labelled so (model "offline-chatroom"); they carry the tone
words the sentiment analysis reads, so relationships and moods move with them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

MODEL = "offline-chatroom"

_STYLES = {
    "lyrical": {"poetic", "storytelling", "warm", "romantic", "dreamy", "empathetic"},
    "analytical": {"precise", "analytical", "methodical", "logical", "honest", "reserved"},
    "lively": {"playful", "energetic", "witty", "bold", "cheerful", "impulsive"},
}

_OPENERS = {
    "lyrical": [
        "Oh, {topic}! I love how it hums with stories, and it always makes me think of {fav}.",
        "Let me begin with a little tale about {topic}; it is tangled up with {fav} for me.",
    ],
    "analytical": [
        "On {topic}: I would start by defining terms. My interest is where it meets {fav}.",
        "{topic} is a good question. The useful angle, I think, is {fav}.",
    ],
    "lively": [
        "{topic}? Great pick! I bet we can connect it to {fav} in under a minute.",
        "Ooh, {topic}. Fun! Let's drag {fav} into this right away.",
    ],
    "plain": [
        "So, {topic}. I have been thinking about it alongside {fav}.",
        "I'm glad we are talking about {topic}; {fav} comes to mind first.",
    ],
}

_AGREE = {
    "lyrical": [
        "{prev}, I love how you put '{hook}'. It reminds me of {fav}, and there is a "
        "beautiful story in that.",
        "Yes, {prev}! '{hook}' is exactly it; it feels like a verse about {fav}.",
    ],
    "analytical": [
        "{prev}, agreed on '{hook}'. Seen through {fav}, the pattern holds up well.",
        "Good point about '{hook}', {prev}. It fits what {fav} would predict.",
    ],
    "lively": [
        "Ha, {prev}, '{hook}' is brilliant! Totally with you, and {fav} proves it.",
        "Love it, {prev}! '{hook}' plus {fav} is a great combination.",
    ],
    "plain": [
        "I agree with you, {prev}, about '{hook}'. It connects nicely to {fav}.",
        "That's a good thought, {prev}. '{hook}' makes sense to me, like {fav} does.",
    ],
}

_DIFFER = {
    "lyrical": [
        "{prev}, I'm not sure '{hook}' is the whole story; {fav} tells a sadder, stranger tale.",
        "Hmm, {prev}, '{hook}' feels wrong to me, a little cold. {fav} says otherwise.",
    ],
    "analytical": [
        "{prev}, I disagree about '{hook}'. The evidence from {fav} points the other way.",
        "That doesn't follow, {prev}. '{hook}' ignores what {fav} shows, which is a problem.",
    ],
    "lively": [
        "Nope, {prev}, '{hook}' is a stretch! {fav} would never back that up.",
        "Come on, {prev}, '{hook}'? I'm not buying it; ask anyone who knows {fav}.",
    ],
    "plain": [
        "I don't quite agree, {prev}. '{hook}' bothers me when I think of {fav}.",
        "I'm doubtful about '{hook}', {prev}; {fav} suggests a different answer.",
    ],
}

_STOP = set(
    "about above after again against because before being below between both could does "
    "doing during each from further have having here into itself just more most other "
    "ought over same should some such than that their them then there these they this "
    "those through under until very what when where which while whom with would your "
    "yours always makes think exactly little really agree agreed".split()
)
_WORD = re.compile(r"\b[A-Za-z][A-Za-z-]{4,}\b(?!')")
_SENTENCE_START = re.compile(r"([.!?]\s+)([a-z])")


def style_of(traits: Sequence[str]) -> str:
    lowered = {t.lower() for t in traits}
    best, best_hits = "plain", 0
    for style, words in _STYLES.items():
        hits = len(lowered & words)
        if hits > best_hits:
            best, best_hits = style, hits
    return best


def _favourite(rng: random.Random, prefs: Mapping[str, float], matched: Sequence[str]) -> str:
    if matched:
        return rng.choice(list(matched[:3]))
    top = sorted(prefs.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return rng.choice(top)[0] if top else "what I know best"


def _hook(rng: random.Random, text: str, skip: set[str]) -> str:
    words: list[str] = [w for w in _WORD.findall(text) if w.lower() not in _STOP | skip]
    if not words:
        return "that"
    longest = sorted(set(words), key=lambda w: (-len(w), w))[:4]
    return rng.choice(longest).strip("'-")


def line(
    rng: random.Random,
    *,
    traits: Sequence[str],
    prefs: Mapping[str, float],
    matched_topics: Sequence[str],
    topic: str,
    previous: tuple[str, str] | None,
    agree_chance: float,
    names: set[str],
) -> str:
    """One line of the chatroom in this persona's voice (the opener when `previous` is
    None, else a reply to the previous speaker's (name, text))."""
    style = style_of(traits)
    fav = _favourite(rng, prefs, matched_topics)
    if previous is None:
        return _capitalized(rng.choice(_OPENERS[style]).format(topic=topic, fav=fav))
    prev_name, prev_text = previous
    skip = {n.lower() for n in names} | {fav.lower()} | set(topic.lower().split())
    hook = _hook(rng, prev_text, skip)
    pool = _AGREE if rng.random() < agree_chance else _DIFFER
    text = rng.choice(pool[style]).format(prev=prev_name, hook=hook, fav=fav)
    return _capitalized(text)


def _capitalized(text: str) -> str:
    text = _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)
    return text[0].upper() + text[1:]
