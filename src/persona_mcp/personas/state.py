"""Interaction state rules: what an exchange costs a persona and how it recovers."""

from __future__ import annotations

from dataclasses import dataclass, replace

ENERGY_RECOVERY_PER_HOUR = 12.0
FATIGUE_RECOVERY_PER_HOUR = 20.0
TIME_RECOVERY_PER_HOUR = 30.0


@dataclass(frozen=True)
class StateValues:
    social_energy: float
    available_time: float
    interaction_fatigue: float
    current_priority: str
    last_interaction: float | None
    # Where recovery heads: the persona's own resting values.
    rest_energy: float
    rest_time: float


def recovered(state: StateValues, now: float) -> StateValues:
    """The state after resting since the last interaction."""
    if state.last_interaction is None or now <= state.last_interaction:
        return state
    hours = (now - state.last_interaction) / 3600.0
    return replace(
        state,
        social_energy=min(state.rest_energy, state.social_energy + ENERGY_RECOVERY_PER_HOUR * hours)
        if state.social_energy < state.rest_energy
        else state.social_energy,
        interaction_fatigue=max(0.0, state.interaction_fatigue - FATIGUE_RECOVERY_PER_HOUR * hours),
        available_time=min(state.rest_time, state.available_time + TIME_RECOVERY_PER_HOUR * hours)
        if state.available_time < state.rest_time
        else state.available_time,
    )


def after_exchange(state: StateValues, message: str, interest: float, now: float) -> StateValues:
    """Apply one exchange: talking costs energy and time, more so on dull or long messages."""
    state = recovered(state, now)
    words = len(message.split())
    length_cost = min(words / 80.0, 2.5)
    energy_cost = max(0.5, 2.0 + length_cost - 1.5 * interest)
    return replace(
        state,
        social_energy=max(0.0, state.social_energy - energy_cost),
        interaction_fatigue=min(100.0, state.interaction_fatigue + 2.5 + length_cost),
        available_time=max(0.0, state.available_time - (1.0 + words / 150.0)),
        last_interaction=now,
    )


def mood(state: StateValues, valence: float = 0.0) -> str:
    """A one-word mood from energy, fatigue and the tone of the last exchange."""
    if state.interaction_fatigue >= 75 or state.social_energy <= 15:
        return "exhausted"
    if state.interaction_fatigue >= 50 or state.social_energy <= 35:
        return "tired"
    if valence <= -0.4:
        return "concerned"
    if state.social_energy >= 70 and state.interaction_fatigue < 30:
        return "cheerful" if valence >= 0 else "thoughtful"
    return "content"
