"""Chatroom operations: start, status, stop, list and transcript of simulations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from persona_mcp.clock import to_datetime
from persona_mcp.operations.common import PersonaRef
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result
from persona_mcp.simulation.chatroom import DEFAULT_TURNS, MAX_PERSONAS, MAX_TURNS, MIN_PERSONAS
from persona_mcp.store.social import SimulationRow
from persona_mcp.store.social import SimulationStatus as Status

ops = OperationSet()

SimulationId = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class SimulationStartParams(Params):
    personas: list[PersonaRef] = Field(
        min_length=MIN_PERSONAS, max_length=MAX_PERSONAS, description="2-8 ids or names"
    )
    topic: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    max_turns: int = Field(DEFAULT_TURNS, ge=1, le=MAX_TURNS)
    seed: int | None = Field(
        None, ge=0, le=2**31, description="The same seed replays the same offline run"
    )


class SimulationStartResult(Result):
    simulation_id: str
    seed: int


@ops("simulation.start", open_world=True, title="Start a chatroom simulation")
async def simulation_start(
    ctx: CallContext, params: SimulationStartParams
) -> SimulationStartResult:
    """Start 2-8 personas talking about a topic in a group conversation, in the
    background. Turns arrive as `simulation.turn` events to subscribers."""
    sim = await ctx.app.simulations.start(
        ctx.session.user_id, list(params.personas), params.topic, params.max_turns, params.seed
    )
    return SimulationStartResult(simulation_id=sim.id, seed=sim.seed)


class SimulationRef(Params):
    simulation_id: SimulationId


class SimulationStatus(Result):
    simulation_id: str
    status: Status
    topic: str
    turns: int
    max_turns: int
    seed: int
    personas: list[str] = Field(description="Names of everyone who joined")
    remaining: list[str] = Field(
        description="Names of those still in the room (at the end, once it has ended)"
    )
    end_reason: str | None
    started_at: datetime
    ended_at: datetime | None


def status_model(ctx: CallContext, sim: SimulationRow) -> SimulationStatus:
    def name(pid: str) -> str:
        found = [p for p in ctx.app.personas.visible(sim.user_id) if p.id == pid]
        return found[0].name if found else pid

    return SimulationStatus(
        simulation_id=sim.id,
        status=sim.status,
        topic=sim.topic,
        turns=sim.turns,
        max_turns=sim.max_turns,
        seed=sim.seed,
        personas=[name(p) for p in sim.personas],
        remaining=[name(p) for p in sim.remaining],
        end_reason=sim.end_reason,
        started_at=to_datetime(sim.started_at) or datetime.min,
        ended_at=to_datetime(sim.ended_at),
    )


@ops("simulation.status", read_only=True, title="Simulation status")
async def simulation_status(ctx: CallContext, params: SimulationRef) -> SimulationStatus:
    """A simulation's status (running, completed or stopped), turns so far and who is
    still in the room."""
    return status_model(
        ctx, await ctx.app.simulations.get(ctx.session.user_id, params.simulation_id)
    )


@ops("simulation.stop", idempotent=True, title="Stop a simulation")
async def simulation_stop(ctx: CallContext, params: SimulationRef) -> SimulationStatus:
    """Stop a running simulation after the turn in progress; a simulation that is not
    running is a conflict (-32002)."""
    sim = await ctx.app.simulations.stop(ctx.session.user_id, params.simulation_id)
    return status_model(ctx, sim)


class SimulationListParams(Params):
    limit: int = Field(50, ge=1, le=500)


class SimulationListResult(Result):
    simulations: list[SimulationStatus]


@ops("simulation.list", read_only=True, title="List simulations")
async def simulation_list(ctx: CallContext, params: SimulationListParams) -> SimulationListResult:
    """Your simulations, newest first."""
    rows = await ctx.app.simulations.listing(ctx.session.user_id, params.limit)
    return SimulationListResult(simulations=[status_model(ctx, s) for s in rows])


class Turn(Result):
    turn: int
    speaker: str
    speaker_id: str
    text: str
    continue_score: float
    model: str = Field(description='The LLM model, or "offline-chatroom"')
    at: datetime


class SimulationTranscriptResult(Result):
    simulation_id: str
    status: Status
    turns: list[Turn]


@ops("simulation.transcript", read_only=True, title="A simulation's transcript")
async def simulation_transcript(
    ctx: CallContext, params: SimulationRef
) -> SimulationTranscriptResult:
    """Every turn of a simulation's group conversation, in order."""
    user = ctx.session.user_id
    sim = await ctx.app.simulations.get(user, params.simulation_id)
    rows = await ctx.app.simulations.transcript(user, params.simulation_id)
    return SimulationTranscriptResult(
        simulation_id=sim.id,
        status=sim.status,
        turns=[
            Turn(
                turn=r.turn,
                speaker=r.speaker,
                speaker_id=r.speaker_id,
                text=r.text,
                continue_score=r.continue_score,
                model=r.model,
                at=to_datetime(r.at) or datetime.min,
            )
            for r in rows
        ],
    )
