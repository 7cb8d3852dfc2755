"""The fast VADER (persona_mcp.sentiment) scores exactly as the library does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from persona_mcp.sentiment import compound

LOCOMO = Path(__file__).resolve().parents[2] / "shared/benchmarks/locomo/locomo-dev.json"

# One or more sentences for each of VADER's rules.
RULES = [
    "",
    "   ",
    "The book was good.",
    "The book was GOOD, really good.",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "good but good but bad",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "no problem, no worries",
    "There is no love or hate here",
    "I never so loved a day",
    "without doubt the best",
    "this is the shit",
    "that movie was the bomb",
    "yeah right, great idea",
    "the kiss of death for the plan",
    "a cake to die for",
    "the least bad option",
    "at least good",
    "very least happy",
    "sort of happy",
    "I was sort of kind of happy",
    "Is it good?? Really???? Amazing!!!!!",
    "HAPPY",
    "I am so HAPPY and SAD",
    "I don't like rainy days",
    "I cant stand it",
    "it was NOT BAD",
    "he hardly ever smiles",
    "sorta good",
    "bus stop",
]


def texts_from_locomo() -> list[str]:
    data = json.loads(LOCOMO.read_text())
    return [
        turn["text"]
        for conversation in data
        for key, session in conversation["conversation"].items()
        if key.startswith("session_") and isinstance(session, list)
        for turn in session
    ]


@pytest.mark.parametrize("text", RULES)
def test_each_vader_rule_scores_as_the_library_does(text: str) -> None:
    assert compound(text) == SentimentIntensityAnalyzer().polarity_scores(text)["compound"]


@pytest.mark.skipif(not LOCOMO.exists(), reason="the LoCoMo dev split is not beside this clone")
def test_every_locomo_turn_scores_as_the_library_does() -> None:
    analyzer = SentimentIntensityAnalyzer()
    texts = texts_from_locomo()
    differ = [t for t in texts if compound(t) != analyzer.polarity_scores(t)["compound"]]
    assert len(texts) > 2000
    assert differ == []


def test_random_sentences_of_sentiment_words_negations_and_boosters_score_as_the_library_does() -> (
    None
):
    import random

    from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE, SPECIAL_CASES

    analyzer = SentimentIntensityAnalyzer()
    rng = random.Random(11)
    lexicon = sorted(analyzer.lexicon)
    glue = "a the it was is and or nor but so this never without doubt least at very kind of no"
    vocabulary = [
        *rng.sample(lexicon, 400),
        *BOOSTER_DICT,
        *NEGATE,
        *" ".join(SPECIAL_CASES).split(),
        *glue.split() * 8,
    ]
    differ = []
    for _ in range(5000):
        words = []
        for word in rng.choices(vocabulary, k=rng.randint(1, 14)):
            roll = rng.random()
            words.append(word.upper() if roll < 0.1 else word.title() if roll < 0.2 else word)
        text = " ".join(words) + rng.choice(["", ".", "!", "!!!", "?", "??", "????", " :)", ","])
        if compound(text) != analyzer.polarity_scores(text)["compound"]:
            differ.append(text)
    assert differ == []
