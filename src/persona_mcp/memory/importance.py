"""Importance scoring: weighted factors, each in [0, 1], mapped into [base, cap].

Factors (default weights, from the seed): emotional 0.25, context/significance 0.20,
persona interests 0.15, engagement 0.10, relationship 0.10, recency 0.05. The weighted
mean of the factors lifts a memory from `base` (0.5) towards `cap` (0.8), so automatic
scores never claim the protected range a caller can give explicitly. The breakdown is
kept with the memory so every score explains itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from persona_mcp.personas.interest import topic_interest

DEFAULT_WEIGHTS: dict[str, float] = {
    "emotional": 0.25,
    "context": 0.20,
    "interests": 0.15,
    "engagement": 0.10,
    "relationship": 0.10,
    "recency": 0.05,
}

_LIFE_EVENTS = re.compile(
    r"\b(born|birth|died|death|passed away|funeral|married|wedding|engaged|divorce|pregnan\w*|"
    r"graduat\w*|promot\w*|new job|hired|fired|quit|retir\w*|moved|moving|diagnos\w*|"
    r"surgery|hospital|accident|anniversary|birthday|adopt\w*|lost my|broke up)\b",
    re.I,
)
_SIGNIFICANCE = re.compile(
    r"\b(remember|important|never forget|always|promise|secret|dream|goal|plan\w*|"
    r"decid\w*|first time|last time|favou?rite|allergic|afraid of)\b",
    re.I,
)
_SELF_FACT = re.compile(
    r"\b(my name is|i am|i'm|i was|i have|i've|i live|i work|i study|"
    r"my (?:\w+ ){0,2}(?:is|are|was))\b",
    re.I,
)
_SPECIFIC = re.compile(r"\b(\d{1,4}|[A-Z][a-z]{2,})\b")
_SOCIAL = re.compile(
    r"\b(you|your|we|us|our|together|friend\w*|thank\w*|miss(?:ed)? you|love you|trust)\b",
    re.I,
)


@dataclass(frozen=True)
class ImportanceConfig:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    base: float = 0.5
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
    words = content.split()
    n_words = len(words)
    exclaims = content.count("!")
    emotional = min(1.0, abs(valence) * 0.85 + min(exclaims, 3) * 0.05)

    context = 0.0
    if _LIFE_EVENTS.search(content):
        context += 0.55
    if _SIGNIFICANCE.search(content):
        context += 0.25
    if _SELF_FACT.search(content):
        context += 0.25
    specifics = len(_SPECIFIC.findall(content))
    context += min(0.2, specifics * 0.05)
    context = min(1.0, context)

    interests = topic_interest(content, topic_preferences or {})[0]

    # Engagement: substance of the message (length saturating near 40 words) and questions.
    engagement = min(1.0, math.log1p(n_words) / math.log1p(40)) * 0.85
    engagement = min(1.0, engagement + (0.15 if "?" in content else 0.0))

    social = len(_SOCIAL.findall(content))
    relationship = min(1.0, social * 0.2)
    if persona_name and persona_name.lower() in content.lower():
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
    importance = config.base + (config.cap - config.base) * mean
    return ImportanceScore(
        importance=max(config.base, min(config.cap, importance)),
        factors=factors,
        weights=dict(weights),
    )
