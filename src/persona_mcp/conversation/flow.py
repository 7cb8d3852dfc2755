"""The continue score: how likely a persona is to keep the conversation going."""

from __future__ import annotations

import math

from persona_mcp.personas.state import StateValues

CONTINUE_AT = 0.55
WRAP_UP_AT = 0.3


def continue_score(
    state: StateValues, interest: float, turns: int, relationship: float = 0.5
) -> float:
    """A score in [0, 1] from energy, fatigue, topic interest, relationship and length."""
    energy = state.social_energy / 100.0
    freshness = 1.0 - state.interaction_fatigue / 100.0
    # Long conversations tire: the length factor halves every 40 turns.
    length = math.exp(-turns * math.log(2) / 40.0)
    score = 0.30 * energy + 0.20 * freshness + 0.25 * interest + 0.10 * relationship + 0.15 * length
    # Out of time, even an eager persona must stop.
    time_factor = min(1.0, 0.4 + state.available_time / 30.0)
    return round(max(0.0, min(1.0, score * time_factor)), 4)


def response_type(score: float) -> str:
    if score >= CONTINUE_AT:
        return "continue"
    if score >= WRAP_UP_AT:
        return "wrap_up"
    return "end"
