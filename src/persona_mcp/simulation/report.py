"""Run a chatroom and report it as lines of text (the `simulate` command's output)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from persona_mcp.auth.principal import LOCAL_USER
from persona_mcp.personas.relationships import RelationshipValues

if TYPE_CHECKING:
    from persona_mcp.app import App


async def run_and_print(
    app: App,
    names: list[str],
    topic: str,
    turns: int,
    seed: int | None,
    emit: Callable[[str], None],
    user_id: str = LOCAL_USER,
) -> str:
    """Run a simulation to its end, emitting each turn as it happens, then a summary of
    how relationships and moods moved; returns the simulation's id."""
    personas = [app.personas.resolve(user_id, n) for n in names]
    before_rel = {
        (a.id, b.id): app.social.relationship(user_id, a.id, b.id) or RelationshipValues()
        for a in personas
        for b in personas
        if a.id != b.id
    }
    before_mood = {p.id: app.social.mood(user_id, p.id) for p in personas}
    sub = app.events.subscribe(user_id, ["simulation.turn"])
    sim = await app.simulations.start(
        user_id, [p.id for p in personas], topic, turns, seed, background=False
    )
    emit(f"chatroom {sim.id} on {sim.topic!r} (seed {sim.seed}): {', '.join(names)}")

    async def show() -> None:
        async for event in sub:
            if event.params["simulation_id"] != sim.id:
                continue
            p = event.params
            emit(f"[{p['turn']}] {p['speaker']} (continue {p['continue_score']:.2f}): {p['text']}")
            for name in p["left"]:
                emit(f"    {name} leaves the room")

    printer = asyncio.create_task(show())
    try:
        done = await app.simulations.run(sim.id)
    finally:
        sub.close()
        await printer
    emit(f"{done.status} after {done.turns} turns ({done.end_reason})")
    emit("relationships (affinity, trust, familiarity: before -> after):")
    for a in personas:
        for b in personas:
            if a.id == b.id:
                continue
            old = before_rel[(a.id, b.id)]
            new = app.social.relationship(user_id, a.id, b.id) or RelationshipValues()
            emit(
                f"  {a.name} -> {b.name}: affinity {old.affinity:+.3f} -> {new.affinity:+.3f}, "
                f"trust {old.trust:.3f} -> {new.trust:.3f}, "
                f"familiarity {old.familiarity:.3f} -> {new.familiarity:.3f}"
            )
    emit("moods (label intensity: before -> after):")
    for p in personas:
        old_m, new_m = before_mood[p.id], app.social.mood(user_id, p.id)
        emit(
            f"  {p.name}: {old_m.label} {old_m.intensity:.2f} -> "
            f"{new_m.label} {new_m.intensity:.2f} (valence {new_m.valence:+.2f})"
        )
    return sim.id
