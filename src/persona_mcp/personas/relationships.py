"""Relationship rules: pure functions over a relationship's values and what happened.

A relationship is one persona's view of someone else: the user (`other_id = "user"`) or
another persona (its id). Directional: Kira's view of Aria is not Aria's view of Kira.

Ranges (documented in the README too):
- affinity     [-1, 1]  how much the persona likes the other; starts at 0.
- trust        [0, 1]   how safe the persona feels with the other; starts at 0.3.
- familiarity  [0, 1]   how well it knows the other; starts at 0, grows with each
                        exchange and fades with absence (half-life FAMILIARITY_HALF_LIFE_DAYS
                        once ABSENCE_GRACE_DAYS have passed without an exchange).

An exchange moves them from what happened: the tone (sentiment in [-1, 1]), interest in
the topic ([0, 1], 0.4 neutral), the length of what was said and how frequent the
exchanges are. Gains shrink as a value nears its bound, so no value jumps to an end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

USER = "user"

START_AFFINITY = 0.0
START_TRUST = 0.3
START_FAMILIARITY = 0.0

AFFINITY_PER_VALENCE = 0.12  # a fully warm message (+1) moves affinity up to +0.12
AFFINITY_PER_INTEREST = 0.05  # a favourite topic (1.0 vs the neutral 0.4) adds ~0.03
TRUST_GAIN = 0.03  # a non-hostile exchange
TRUST_LOSS = 0.08  # a hostile one (scaled by how hostile)
FAMILIARITY_GAIN = 0.04  # per exchange, up to x1.5 for long messages, x0.5 if rare
FAMILIARITY_HALF_LIFE_DAYS = 30.0
ABSENCE_GRACE_DAYS = 7.0
FREQUENT_WITHIN_HOURS = 24.0  # exchanges closer than this count as frequent
NEUTRAL_INTEREST = 0.4

# How the relationship enters the continue score: a warmth in [0, 1], 0.5 for a stranger.
WARMTH_BASE = 0.5
WARMTH_AFFINITY = 0.35
WARMTH_TRUST = 0.1
WARMTH_FAMILIARITY = 0.1


@dataclass(frozen=True)
class RelationshipValues:
    affinity: float = START_AFFINITY
    trust: float = START_TRUST
    familiarity: float = START_FAMILIARITY
    interaction_count: int = 0
    first_interaction: float | None = None
    last_interaction: float | None = None


@dataclass(frozen=True)
class Change:
    """One entry of a relationship's history: the deltas and why."""

    affinity: float
    trust: float
    familiarity: float
    reason: str


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _toward(value: float, delta: float, low: float, high: float) -> float:
    """Add `delta`, shrunk by how close the value already is to the bound it heads for."""
    room = (high - value) if delta > 0 else (value - low)
    factor = min(1.0, max(0.0, room) / ((high - low) / 2.0))
    return _clamp(value + delta * factor, low, high)


def faded(rel: RelationshipValues, now: float) -> RelationshipValues:
    """Familiarity after the absence since the last interaction (nothing else fades)."""
    if rel.last_interaction is None:
        return rel
    idle_days = (now - rel.last_interaction) / 86400.0 - ABSENCE_GRACE_DAYS
    if idle_days <= 0:
        return rel
    factor = math.pow(0.5, idle_days / FAMILIARITY_HALF_LIFE_DAYS)
    return replace(rel, familiarity=rel.familiarity * factor)


def reason_for(valence: float, interest: float, where: str = "") -> str:
    """A short human reason for an exchange's effect."""
    suffix = f" in the {where}" if where else ""
    if valence >= 0.3:
        base = "agreement" if where else "warm message"
    elif valence <= -0.3:
        base = "disagreement" if where else "hostile message"
    else:
        base = "neutral exchange"
    if interest >= 0.6:
        base += " on a favourite topic"
    return base + suffix


def after_exchange(
    rel: RelationshipValues,
    *,
    valence: float,
    interest: float,
    words: int,
    now: float,
    where: str = "",
) -> tuple[RelationshipValues, list[Change]]:
    """The relationship after one exchange, and the history entries it makes (a "long
    absence" entry first when familiarity faded since the last exchange)."""
    changes: list[Change] = []
    current = faded(rel, now)
    if current.familiarity < rel.familiarity - 1e-6:
        changes.append(Change(0.0, 0.0, current.familiarity - rel.familiarity, "long absence"))
    valence = _clamp(valence, -1.0, 1.0)
    interest = _clamp(interest, 0.0, 1.0)
    d_aff = AFFINITY_PER_VALENCE * valence + AFFINITY_PER_INTEREST * (interest - NEUTRAL_INTEREST)
    d_trust = TRUST_GAIN if valence > -0.3 else -TRUST_LOSS * abs(valence)
    length = 1.0 + 0.5 * min(words, 100) / 100.0
    frequent = (
        current.last_interaction is None
        or (now - current.last_interaction) / 3600.0 <= FREQUENT_WITHIN_HOURS
    )
    d_fam = FAMILIARITY_GAIN * length * (1.0 if frequent else 0.5)
    after = replace(
        current,
        affinity=_toward(current.affinity, d_aff, -1.0, 1.0),
        trust=_toward(current.trust, d_trust, 0.0, 1.0),
        familiarity=_toward(current.familiarity, d_fam, 0.0, 1.0),
        interaction_count=current.interaction_count + 1,
        first_interaction=current.first_interaction if current.first_interaction else now,
        last_interaction=now,
    )
    changes.append(
        Change(
            round(after.affinity - current.affinity, 6),
            round(after.trust - current.trust, 6),
            round(after.familiarity - current.familiarity, 6),
            reason_for(valence, interest, where),
        )
    )
    return after, changes


def warmth(rel: RelationshipValues | None) -> float:
    """The relationship as the continue score's term in [0, 1] (0.5 for a stranger)."""
    if rel is None:
        return WARMTH_BASE
    value = (
        WARMTH_BASE
        + WARMTH_AFFINITY * rel.affinity
        + WARMTH_TRUST * (rel.trust - START_TRUST)
        + WARMTH_FAMILIARITY * rel.familiarity
    )
    return round(_clamp(value, 0.0, 1.0), 4)


# -- compatibility between two personas --------------------------------------------------

COMPAT_TOPICS = 0.5
COMPAT_TRAITS = 0.3
COMPAT_ENERGY = 0.2

# Traits that suit each other without being the same word.
_COMPLEMENTS = {
    frozenset({"curious", "knowledgeable"}),
    frozenset({"warm", "reserved"}),
    frozenset({"storytelling", "analytical"}),
    frozenset({"empathetic", "honest"}),
    frozenset({"playful", "precise"}),
    frozenset({"curious", "storytelling"}),
}
_CLASHES = {
    frozenset({"playful", "serious"}),
    frozenset({"impulsive", "methodical"}),
    frozenset({"blunt", "empathetic"}),
}


@dataclass(frozen=True)
class CompatibilityPart:
    name: str
    score: float
    weight: float
    detail: str


def compatibility(
    traits_a: Sequence[str],
    topics_a: Mapping[str, float],
    energy_a: float,
    traits_b: Sequence[str],
    topics_b: Mapping[str, float],
    energy_b: float,
) -> tuple[float, list[CompatibilityPart]]:
    """Compatibility in [0, 1]: weighted overlap of topic preferences (0.5), traits shared
    or complementary minus clashes (0.3), and closeness of resting social energy (0.2)."""
    union = set(topics_a) | set(topics_b)
    if union:
        low = sum(min(topics_a.get(t, 0.0), topics_b.get(t, 0.0)) for t in union)
        high = sum(max(topics_a.get(t, 0.0), topics_b.get(t, 0.0)) for t in union)
        topic_score = low / high if high else 0.0
        shared = sorted(
            (t for t in union if min(topics_a.get(t, 0.0), topics_b.get(t, 0.0)) >= 0.5),
            key=lambda t: -min(topics_a[t], topics_b[t]),
        )
        topic_detail = "shared interests: " + (", ".join(shared[:5]) or "none")
    else:
        topic_score, topic_detail = 0.5, "no topic preferences to compare"

    ta = {t.lower() for t in traits_a}
    tb = {t.lower() for t in traits_b}
    if ta and tb:
        same = ta & tb
        complements = [p for p in _COMPLEMENTS if len(p & ta) and len(p & tb) and p & ta != p & tb]
        clashes = [p for p in _CLASHES if len(p & ta) and len(p & tb) and p & ta != p & tb]
        base = len(same) / len(ta | tb)
        trait_score = _clamp(base + 0.15 * len(complements) - 0.2 * len(clashes), 0.0, 1.0)
        trait_detail = (
            f"shared: {', '.join(sorted(same)) or 'none'}; "
            f"complementary pairs: {len(complements)}; clashes: {len(clashes)}"
        )
    else:
        trait_score, trait_detail = 0.5, "no traits to compare"

    energy_score = 1.0 - min(abs(energy_a - energy_b), 100.0) / 100.0
    parts = [
        CompatibilityPart("topics", round(topic_score, 4), COMPAT_TOPICS, topic_detail),
        CompatibilityPart("traits", round(trait_score, 4), COMPAT_TRAITS, trait_detail),
        CompatibilityPart(
            "social_energy",
            round(energy_score, 4),
            COMPAT_ENERGY,
            f"resting energy {energy_a:.0f} vs {energy_b:.0f}",
        ),
    ]
    total = sum(p.score * p.weight for p in parts)
    return round(_clamp(total, 0.0, 1.0), 4), parts
