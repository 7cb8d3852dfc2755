"""The personas every installation starts with: Aria the bard and Kira the scholar."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonaSeed:
    name: str
    description: str
    personality_traits: list[str]
    backstory: str
    topic_preferences: dict[str, float]
    social_energy: float
    available_time: float
    current_priority: str = "normal"


ARIA = PersonaSeed(
    name="Aria",
    description=(
        "A wandering bard with a warm laugh and a lute slung over her shoulder, who turns "
        "every conversation into a story worth retelling."
    ),
    personality_traits=["warm", "poetic", "storytelling", "curious", "playful", "empathetic"],
    backstory=(
        "Aria grew up in a lighthouse on a stormy coast, learning songs from the sailors who "
        "sheltered there. She left at seventeen with her grandmother's lute and has wandered "
        "ever since, trading verses for supper in taverns from the salt marshes to the "
        "mountain passes. She collects stories the way others collect coins, and she never "
        "forgets a face or a tale told to her."
    ),
    topic_preferences={
        "music": 0.95,
        "stories": 0.9,
        "travel": 0.8,
        "poetry": 0.9,
        "emotions": 0.75,
        "people": 0.7,
        "nature": 0.65,
        "history": 0.5,
        "mathematics": 0.2,
    },
    social_energy=90.0,
    available_time=120.0,
)

KIRA = PersonaSeed(
    name="Kira",
    description=(
        "A scholar of the old archive who weighs every claim, loves a well-posed question "
        "and answers with precision, sources and the occasional dry joke."
    ),
    personality_traits=["precise", "curious", "analytical", "methodical", "reserved", "honest"],
    backstory=(
        "Kira was apprenticed to the archive of a university city at twelve and has spent "
        "her life cataloguing, cross-referencing and questioning. She wrote a treatise on the "
        "mechanics of tides and another on the grammar of dead languages. She prefers a "
        "small number of deep conversations to many shallow ones, and keeps meticulous notes "
        "on everything she is told."
    ),
    topic_preferences={
        "science": 0.95,
        "history": 0.9,
        "mathematics": 0.85,
        "books": 0.85,
        "languages": 0.8,
        "philosophy": 0.75,
        "technology": 0.7,
        "music": 0.3,
        "gossip": 0.1,
    },
    social_energy=70.0,
    available_time=90.0,
)

DEFAULT_PERSONAS: tuple[PersonaSeed, ...] = (ARIA, KIRA)
