"""Relationship operations: a persona's relationships, and compatibility between two."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import Field

from persona_mcp.clock import to_datetime
from persona_mcp.errors import InvalidParams
from persona_mcp.operations.common import PersonaRef, target_persona
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result
from persona_mcp.personas.mood import MoodValues
from persona_mcp.personas.relationships import USER, RelationshipValues
from persona_mcp.personas.social import SocialService
from persona_mcp.store.social import MoodChangeRow, RelationshipChangeRow

ops = OperationSet()

HISTORY = 20


class RelationshipChange(Result):
    at: datetime
    affinity_delta: float
    trust_delta: float
    familiarity_delta: float
    reason: str


class Relationship(Result):
    persona_id: str
    other_id: str = Field(description='"user", or the other persona\'s id')
    other_name: str
    affinity: float = Field(ge=-1, le=1, description="-1 (dislike) to 1 (fondness); starts 0")
    trust: float = Field(ge=0, le=1, description="0 to 1; starts 0.3")
    familiarity: float = Field(ge=0, le=1, description="0 to 1; fades with long absence")
    interaction_count: int
    first_interaction: datetime | None
    last_interaction: datetime | None
    history: list[RelationshipChange] = Field(
        default_factory=list, description="Recent changes, newest first"
    )


class MoodChange(Result):
    at: datetime
    label: str
    intensity: float
    valence: float
    arousal: float
    reason: str


class Mood(Result):
    label: str
    intensity: float = Field(ge=0, le=1, description="0 at rest to 1")
    valence: float = Field(ge=-1, le=1, description="-1 unpleasant to 1 pleasant")
    arousal: float = Field(ge=0, le=1, description="0 calm to 1 stirred up")
    updated_at: datetime | None
    history: list[MoodChange] = Field(
        default_factory=list, description="Recent changes, newest first"
    )


def mood_model(mood: MoodValues, history: Sequence[MoodChangeRow] = ()) -> Mood:
    return Mood(
        label=mood.label,
        intensity=mood.intensity,
        valence=round(mood.valence, 4),
        arousal=round(mood.arousal, 4),
        updated_at=to_datetime(mood.updated_at),
        history=[
            MoodChange(
                at=to_datetime(h.at) or datetime.min,
                label=h.label,
                intensity=round(h.intensity, 4),
                valence=round(h.valence, 4),
                arousal=round(h.arousal, 4),
                reason=h.reason,
            )
            for h in history
        ],
    )


def relationship_model(
    social: SocialService,
    user_id: str,
    persona_id: str,
    other_id: str,
    rel: RelationshipValues,
    history: list[RelationshipChangeRow],
) -> Relationship:
    other_name = USER if other_id == USER else social.personas_name(user_id, other_id)
    return Relationship(
        persona_id=persona_id,
        other_id=other_id,
        other_name=other_name,
        affinity=round(rel.affinity, 4),
        trust=round(rel.trust, 4),
        familiarity=round(rel.familiarity, 4),
        interaction_count=rel.interaction_count,
        first_interaction=to_datetime(rel.first_interaction),
        last_interaction=to_datetime(rel.last_interaction),
        history=[
            RelationshipChange(
                at=to_datetime(h.at) or datetime.min,
                affinity_delta=round(h.affinity_delta, 4),
                trust_delta=round(h.trust_delta, 4),
                familiarity_delta=round(h.familiarity_delta, 4),
                reason=h.reason,
            )
            for h in history
        ],
    )


class PersonaRelationshipParams(Params):
    persona_id: PersonaRef | None = Field(None, description="Whose view (default: active)")
    other_id: PersonaRef | None = Field(
        None, description='"user", or another persona\'s id or name; omit for all'
    )


class PersonaRelationshipResult(Result):
    persona_id: str
    relationships: list[Relationship] = Field(
        description="One (with its recent history) when other_id is given, else all"
    )


@ops("persona.relationship", read_only=True, title="A persona's relationships")
async def persona_relationship(
    ctx: CallContext, params: PersonaRelationshipParams
) -> PersonaRelationshipResult:
    """A persona's relationship with the user ("user") or another persona: affinity
    [-1, 1], trust [0, 1], familiarity [0, 1], interaction count, first and last
    interaction, and the recent history of changes with their reasons. Without other_id,
    all of the persona's relationships (each with its latest change)."""
    app, user = ctx.app, ctx.session.user_id
    persona = await target_persona(ctx, params.persona_id)
    social = app.social
    if params.other_id is not None:
        other = social.other_id(user, params.other_id)
        if other == persona.id:
            raise InvalidParams.field("other_id", "must name someone other than the persona")
        rel = social.relationship(user, persona.id, other) or RelationshipValues()
        history = await social.history(user, persona.id, other, HISTORY)
        return PersonaRelationshipResult(
            persona_id=persona.id,
            relationships=[relationship_model(social, user, persona.id, other, rel, history)],
        )
    out = []
    for other, rel in social.relationships(user, persona.id):
        history = await social.history(user, persona.id, other, 1)
        out.append(relationship_model(social, user, persona.id, other, rel, history))
    return PersonaRelationshipResult(persona_id=persona.id, relationships=out)


class PersonaCompatibilityParams(Params):
    persona_id: PersonaRef
    other_id: PersonaRef


class CompatibilityPart(Result):
    name: str
    score: float = Field(ge=0, le=1)
    weight: float
    detail: str


class PersonaCompatibilityResult(Result):
    persona_id: str
    other_id: str
    compatibility: float = Field(ge=0, le=1)
    parts: list[CompatibilityPart]


@ops("persona.compatibility", read_only=True, title="Compatibility of two personas")
async def persona_compatibility(
    ctx: CallContext, params: PersonaCompatibilityParams
) -> PersonaCompatibilityResult:
    """Compatibility in [0, 1] between two personas from their topic preferences
    (weight 0.5), traits (0.3) and resting social energy (0.2), with each part's score."""
    app, user = ctx.app, ctx.session.user_id
    a = app.personas.resolve(user, params.persona_id)
    b = app.personas.resolve(user, params.other_id)
    score, parts = app.social.compatibility(a, b)
    return PersonaCompatibilityResult(
        persona_id=a.id,
        other_id=b.id,
        compatibility=score,
        parts=[
            CompatibilityPart(name=p.name, score=p.score, weight=p.weight, detail=p.detail)
            for p in parts
        ],
    )
