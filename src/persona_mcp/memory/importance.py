"""Importance scoring: weighted factors, each in [0, 1], mapped into [base, cap].

Factors (default weights, from the seed): emotional 0.25, context/significance 0.20,
persona interests 0.15, engagement 0.10, relationship 0.10, recency 0.05. Their weighted
mean lifts a memory from `base` (0.1) towards `cap` (0.8), so automatic scores never
claim the protected range (≥ 0.8) a caller can give explicitly.

Two rules make the range discriminate (a plain mean squeezes everything into the middle):
- significance carries: the mean is at least 0.9 × the context factor, so a
  bereavement, a wedding, a diagnosis or an allergy lands near the top whatever its
  length or tone, and a plain fact about the user ("my sister lives in Lisbon") in the
  middle;
- substance gates: a message with no content words ("ok", "cool", "thanks") keeps a
  quarter of its mean, and a question 60 %, since neither states anything to keep.
The breakdown is kept with the memory, so every score explains itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from persona_mcp import nlp
from persona_mcp.personas.interest import topic_interest

DEFAULT_WEIGHTS: dict[str, float] = {
    "emotional": 0.25,
    "context": 0.20,
    "interests": 0.15,
    "engagement": 0.10,
    "relationship": 0.10,
    "recency": 0.05,
}

# The word patterns run on the lowercased text: matching case-blind costs twice as much.
# Events that change a life: alone they put a memory near the top of the range.
_LIFE_EVENTS = re.compile(
    r"\b(born|gave birth|died|dead|death|passed away|funeral|grief|grieving|widow\w*|"
    r"married|marry|marrying|wedding|engaged|divorc\w*|pregnan\w*|miscarriage|"
    r"diagnos\w*|cancer|tumou?r|disease|illness|chronic|allerg\w*|anaphyla\w*|surgery|"
    r"hospitali[sz]ed|in (?:the )?hospital|accident|overdose|lost my (?:job|mother|father|mom|"
    r"dad|wife|husband|son|daughter|baby|child|brother|sister|friend))\b",
)
# Milestones: significant, though less so.
_MILESTONES = re.compile(
    r"\b(graduat\w*|promot\w*|new job|hired|fired|laid off|quit|retir\w*|moved|moving|"
    r"relocat\w*|anniversary|birthday|adopt\w*|broke up|break-?up|first (?:day|time)|"
    r"bought a (?:house|home|flat|car)|exam|interview)\b",
)
_SIGNIFICANCE = re.compile(
    r"\b(remember|important|never forget|always|promise|secret|dream|goal|plan\w*|"
    r"decid\w*|first time|last time|favou?rite|allergic|afraid of)\b",
)
_SELF_FACT = re.compile(
    r"(\b(my name is|i am|i'm|i was|i have|i've|i live|i work|i study|i love|i like|i hate|"
    r"i prefer|i need|i want|i plan|i will|i'll|my (?:\w+ ){0,2}(?:is|are|was|lives|works|"
    r"has|had|died|moved)|my \w+)\b)",
)
_HAS_CONTENT = re.compile(r"[A-Za-z]{3,}")
_SPECIFIC = re.compile(r"\b(\d{1,4}|[A-Z][a-z]{2,})\b")
_SOCIAL = re.compile(
    r"\b(you|your|we|us|our|together|friend\w*|thank\w*|miss(?:ed)? you|love you|trust)\b",
)


SIGNIFICANCE_CARRY = 0.9
NO_SUBSTANCE = 0.25
QUESTION = 0.6


@dataclass(frozen=True)
class ImportanceConfig:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    base: float = 0.1
    cap: float = 0.8

    def as_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "base": self.base, "cap": self.cap}


@dataclass(frozen=True)
class ImportanceScore:
    importance: float
    factors: dict[str, float]
    weights: dict[str, float]

    def breakdown(self) -> dict[str, Any]:
        return {
            "factors": {k: round(v, 4) for k, v in self.factors.items()},
            "weights": self.weights,
            "score": round(self.importance, 4),
        }


def score_importance(
    content: str,
    valence: float,
    config: ImportanceConfig,
    *,
    topic_preferences: Mapping[str, float] | None = None,
    persona_name: str | None = None,
    age_seconds: float = 0.0,
) -> ImportanceScore:
    """Score one memory. `valence` is its sentiment in [-1, 1], computed once by the caller."""
    lowered = content.lower()
    words = content.split()
    n_words = len(words)
    exclaims = content.count("!")
    emotional = min(1.0, abs(valence) * 0.85 + min(exclaims, 3) * 0.05)

    context = 0.0
    if _LIFE_EVENTS.search(lowered):
        context += 0.85
    elif _MILESTONES.search(lowered):
        context += 0.5
    if _SIGNIFICANCE.search(lowered):
        context += 0.2
    if _SELF_FACT.search(lowered):
        context += 0.3
    specifics = len(_SPECIFIC.findall(content))
    context += min(0.2, specifics * 0.05)
    context = min(1.0, context)

    interests = topic_interest(lowered, topic_preferences or {})[0]

    # Engagement: substance of the message (length saturating near 40 words) and questions.
    engagement = min(1.0, math.log1p(n_words) / math.log1p(40)) * 0.85
    engagement = min(1.0, engagement + (0.15 if "?" in content else 0.0))

    social = len(_SOCIAL.findall(lowered))
    relationship = min(1.0, social * 0.2)
    if persona_name and persona_name.lower() in lowered:
        relationship = min(1.0, relationship + 0.3)

    # Recency: new memories score 1; a memory about the past scores less (30-day half-life).
    recency = 0.5 ** (max(0.0, age_seconds) / (30 * 86400.0))

    factors = {
        "emotional": emotional,
        "context": context,
        "interests": interests,
        "engagement": engagement,
        "relationship": relationship,
        "recency": recency,
    }
    weights = config.weights
    total = sum(weights.values()) or 1.0
    mean = sum(factors[k] * weights.get(k, 0.0) for k in factors) / total
    mean = max(mean, SIGNIFICANCE_CARRY * context)
    kind = nlp.kind_of(content)
    if kind == "filler" or not _HAS_CONTENT.search(content):
        mean *= NO_SUBSTANCE
    elif kind == "question":
        mean *= QUESTION
    importance = config.base + (config.cap - config.base) * mean
    return ImportanceScore(
        importance=max(config.base, min(config.cap, importance)),
        factors=factors,
        weights=dict(weights),
    )
