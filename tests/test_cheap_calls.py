"""The cheapest calls are kept cheap by reusing what did not change (settled persona
models, the JSON of an unchanged result); these tests hold them to being always right:
every write shows at once, and time still moves what recovers with time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp import Client

from persona_mcp.app import App
from persona_mcp.auth.principal import LOCAL
from persona_mcp.client import PersonaClient
from persona_mcp.clock import ManualClock
from persona_mcp.operations.registry import CallContext
from tests.conftest import make_settings, serve


def by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in listing["personas"]}


async def test_persona_list_shows_every_write_at_once(client: PersonaClient) -> None:
    first = await client.call("persona.list")
    assert await client.call("persona.list") == first
    kira = by_name(first)["Kira"]

    await client.call("persona.update", {"persona_id": "Kira", "description": "A new page"})
    assert by_name(await client.call("persona.list"))["Kira"]["description"] == "A new page"

    await client.call("persona.switch", {"persona_id": "Kira"})
    assert (await client.call("persona.list"))["active_persona_id"] == kira["id"]

    await client.call("persona.chat", {"message": "Tell me about the old libraries."})
    tired = by_name(await client.call("persona.list"))["Kira"]["interaction_state"]
    assert tired["social_energy"] < kira["interaction_state"]["social_energy"]
    assert tired["last_interaction"] is not None

    created = (await client.call("persona.create", {"name": "Milo"}))["persona"]
    assert "Milo" in by_name(await client.call("persona.list"))
    await client.call("persona.delete", {"persona_id": created["id"]})
    assert "Milo" not in by_name(await client.call("persona.list"))


async def test_persona_list_follows_recovery_as_time_passes(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = make_settings(tmp_path / "data")
    async with serve(settings, App(settings, clock=clock)) as server, server.client() as client:
        rested = by_name(await client.call("persona.list"))["Aria"]["interaction_state"]
        await client.call("persona.chat", {"persona_id": "Aria", "message": "Sing for me!"})

        def energy(listing: dict[str, Any]) -> float:
            return float(by_name(listing)["Aria"]["interaction_state"]["social_energy"])

        tired = energy(await client.call("persona.list"))
        clock.advance(3 * 60)
        recovering = energy(await client.call("persona.list"))
        clock.advance(24 * 3600)
        recovered = await client.call("persona.list")
        assert tired < recovering < energy(recovered) == rested["social_energy"]
        state = by_name(recovered)["Aria"]["interaction_state"]
        assert state["interaction_fatigue"] == 0
        assert await client.call("persona.list") == recovered

        await client.call("persona.chat", {"persona_id": "Aria", "message": "Once more!"})
        assert energy(await client.call("persona.list")) < energy(recovered)


async def test_both_doors_list_the_same_personas(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    async with serve(settings) as server:
        async with server.client() as client:
            await client.call("persona.update", {"persona_id": "Aria", "backstory": "Ünïcode ✓"})
            over_ws = await client.call("persona.list")
        async with Client(f"{server.http_url}/mcp", mode="legacy") as mcp:
            result = await mcp.call_tool("persona.list", {})
            again = await mcp.call_tool("persona.list", {})
    assert result.structured_content is not None
    assert by_name(result.structured_content) == by_name(over_ws)
    assert by_name(over_ws)["Aria"]["backstory"] == "Ünïcode ✓"
    assert again.structured_content == result.structured_content


async def test_immediate_operations_answer_without_ever_waiting(
    app_factory: Callable[..., Any],
) -> None:
    app = await app_factory()
    session = await app.sessions.open("local", "websocket")
    ctx = CallContext(app=app, session=session, principal=LOCAL)
    immediate = [op for op in app.registry if op.immediate]
    assert [op.name for op in immediate] == ["persona.list"]
    for op in immediate:
        step = op.handler(ctx, op.params())
        try:
            step.send(None)  # the WebSocket door runs these inline: one step must finish
        except StopIteration:
            continue
        step.close()
        raise AssertionError(f"{op.name} is immediate but waited on something")


async def test_a_list_sent_after_a_switch_sees_the_switch(client: PersonaClient) -> None:
    kira = by_name(await client.call("persona.list"))["Kira"]
    switched, listed = await asyncio.gather(
        client.call("persona.switch", {"persona_id": "Kira"}), client.call("persona.list")
    )
    assert switched["active_persona"]["id"] == kira["id"]
    assert listed["active_persona_id"] == kira["id"]
