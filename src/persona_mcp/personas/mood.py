"""Mood rules: a persona's mood as valence and arousal, moved by exchanges, restored by time.

- valence    [-1, 1]  unpleasant to pleasant; rests at 0.
- arousal    [0, 1]   calm to stirred up; rests at REST_AROUSAL.
- intensity  [0, 1]   how far the mood is from rest (0: at rest, 1: as far as it goes).
- label      one word from valence and arousal ("calm" near rest).

Each exchange pulls valence toward the tone of what was said (VALENCE_PULL) and stirs
arousal by how engaging it was; with time both return to rest with a half-life of
MOOD_HALF_LIFE_HOURS (the injected clock, so tests never sleep).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

REST_AROUSAL = 0.3
MOOD_HALF_LIFE_HOURS = 2.0
VALENCE_PULL = 0.35  # share of the gap to the exchange's tone closed by one exchange
AROUSAL_PER_EXCHANGE = 0.03
AROUSAL_PER_INTEREST = 0.08
AROUSAL_PER_HEAT = 0.08  # strong feelings either way stir more
CALM_BELOW = 0.15  # intensity under which the label is "calm"

# How the mood enters the continue score: +/- MOOD_WEIGHT * valence * intensity.
MOOD_WEIGHT = 0.05


@dataclass(frozen=True)
class MoodValues:
    valence: float = 0.0
    arousal: float = REST_AROUSAL
    updated_at: float | None = None

    @property
    def intensity(self) -> float:
        dv = self.valence
        da = (self.arousal - REST_AROUSAL) / (1.0 - REST_AROUSAL)
        return round(min(1.0, math.hypot(dv, da)), 4)

    @property
    def label(self) -> str:
        return label(self.valence, self.arousal, self.intensity)


def label(valence: float, arousal: float, intensity: float) -> str:
    if intensity < CALM_BELOW:
        return "calm"
    high = arousal >= 0.5
    if valence >= 0.15:
        return "excited" if high else "content"
    if valence <= -0.15:
        return "irritated" if high else "gloomy"
    return "alert" if high else "calm"


def restored(mood: MoodValues, now: float) -> MoodValues:
    """The mood after the time since its last change (heading back to rest)."""
    if mood.updated_at is None or now <= mood.updated_at:
        return mood
    factor = math.pow(0.5, (now - mood.updated_at) / 3600.0 / MOOD_HALF_LIFE_HOURS)
    return replace(
        mood,
        valence=mood.valence * factor,
        arousal=REST_AROUSAL + (mood.arousal - REST_AROUSAL) * factor,
        updated_at=now,
    )


def after_exchange(mood: MoodValues, *, valence: float, interest: float, now: float) -> MoodValues:
    """The mood after one exchange of the given tone ([-1, 1]) and interest ([0, 1])."""
    current = restored(mood, now)
    valence = max(-1.0, min(1.0, valence))
    new_valence = current.valence + VALENCE_PULL * (valence - current.valence)
    stir = (
        AROUSAL_PER_EXCHANGE
        + AROUSAL_PER_INTEREST * (interest - 0.4)
        + AROUSAL_PER_HEAT * abs(valence)
    )
    return MoodValues(
        valence=round(max(-1.0, min(1.0, new_valence)), 6),
        arousal=round(max(0.0, min(1.0, current.arousal + stir)), 6),
        updated_at=now,
    )


def score_term(mood: MoodValues | None) -> float:
    """The mood as a signed input to the continue score, in [-1, 1]."""
    if mood is None:
        return 0.0
    return round(mood.valence * mood.intensity, 4)
