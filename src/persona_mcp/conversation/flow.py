"""The continue score: how likely a persona is to keep the conversation going."""

from __future__ import annotations

import math

from persona_mcp.personas.state import StateValues

CONTINUE_AT = 0.55
WRAP_UP_AT = 0.3

# Weights of the continue score's terms (they sum to 1; the mood term adds up to +/-0.05).
W_ENERGY = 0.30
W_FRESHNESS = 0.20
W_INTEREST = 0.25
W_RELATIONSHIP = 0.10  # relationships.warmth: 0.5 for a stranger, higher for a friend
W_LENGTH = 0.15
W_MOOD = 0.05  # mood.score_term: valence x intensity, in [-1, 1]


def continue_score(
    state: StateValues,
    interest: float,
    turns: int,
    relationship: float = 0.5,
    mood: float = 0.0,
) -> float:
    """A score in [0, 1] from energy, fatigue, topic interest, relationship, mood and length."""
    energy = state.social_energy / 100.0
    freshness = 1.0 - state.interaction_fatigue / 100.0
    # Long conversations tire: the length factor halves every 40 turns.
    length = math.exp(-turns * math.log(2) / 40.0)
    score = (
        W_ENERGY * energy
        + W_FRESHNESS * freshness
        + W_INTEREST * interest
        + W_RELATIONSHIP * relationship
        + W_LENGTH * length
        + W_MOOD * mood
    )
    # Out of time, even an eager persona must stop.
    time_factor = min(1.0, 0.4 + state.available_time / 30.0)
    return round(max(0.0, min(1.0, score * time_factor)), 4)


def response_type(score: float) -> str:
    if score >= CONTINUE_AT:
        return "continue"
    if score >= WRAP_UP_AT:
        return "wrap_up"
    return "end"
