"""Personas and their interaction state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["low", "normal", "high"]


class InteractionState(BaseModel):
    """How ready a persona is to talk to this user right now (recovers with time)."""

    model_config = ConfigDict(frozen=True)

    social_energy: float = Field(ge=0, le=100, description="0 (drained) to 100 (eager)")
    available_time: float = Field(ge=0, description="Minutes the persona can still give")
    interaction_fatigue: float = Field(ge=0, le=100, description="0 (fresh) to 100 (exhausted)")
    current_priority: Priority = "normal"
    last_interaction: datetime | None = None


class Persona(BaseModel):
    # Frozen: the persona service hands the same model to every reader while it is
    # unchanged (see PersonaService.to_model).
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    description: str
    personality_traits: list[str]
    backstory: str
    topic_preferences: dict[str, float]
    model: str | None = None
    builtin: bool = False
    created_at: datetime
    updated_at: datetime
    interaction_state: InteractionState
    mood: str
    card: dict[str, Any] | None = Field(
        None,
        description="For a persona imported from a Character Card: the card's spec and its "
        "fields beyond these (personality, scenario, first_mes, mes_example, tags, "
        "creator_notes, ...)",
    )
