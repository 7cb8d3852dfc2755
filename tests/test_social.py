"""Relationships, moods and the chatroom, through the WebSocket door (and the command)."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from persona_mcp.app import App
from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.config import Settings
from persona_mcp.conversation.flow import continue_score
from persona_mcp.personas import mood as mood_rules
from persona_mcp.personas import relationships as rel_rules
from persona_mcp.personas.state import StateValues
from tests.conftest import make_settings, serve
from tests.fakes.llm_server import FakeLLMServer

EXE = Path(sys.executable).parent / "persona-mcp"
WARM = [
    "Kira, I love how carefully you explain things, thank you so much!",
    "You are wonderful to talk to, and your notes on history are brilliant.",
    "I really appreciate your honesty, it makes me happy every time.",
]


async def recv(ws: Any) -> Any:
    return orjson.loads(await asyncio.wait_for(ws.recv(), 30))


def request(id_: int, method: str, params: dict[str, Any] | None = None) -> str:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}
    ).decode()


async def wait_until_done(client: PersonaClient, simulation_id: str) -> dict[str, Any]:
    """Poll (bounded) until the simulation is no longer running."""
    status: dict[str, Any] = {}
    for _ in range(1200):  # bounded: at most ~60 s
        status = await client.call("simulation.status", {"simulation_id": simulation_id})
        if status["status"] != "running":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"simulation still running: {status}")


# -- the user's relationship -------------------------------------------------------------


async def test_three_warm_messages_raise_kiras_affinity_with_the_user_and_count_three(
    client: PersonaClient,
) -> None:
    for message in WARM:
        await client.call("persona.chat", {"message": message, "persona_id": "Kira"})
    result = await client.call("persona.relationship", {"persona_id": "Kira", "other_id": "user"})
    (rel,) = result["relationships"]
    assert rel["other_id"] == "user"
    assert rel["affinity"] > 0.1
    assert rel["interaction_count"] == 3
    assert rel["first_interaction"] is not None
    assert rel["last_interaction"] >= rel["first_interaction"]
    assert len(rel["history"]) == 3
    assert all(h["reason"].startswith("warm message") for h in rel["history"])
    assert all(h["affinity_delta"] > 0 for h in rel["history"])


async def test_persona_status_shows_the_mood_with_intensity_and_the_user_relationship(
    client: PersonaClient,
) -> None:
    before = await client.call("persona.status", {"persona_id": "Kira"})
    assert before["user_relationship"] is None
    assert before["mood_state"]["intensity"] == 0
    for message in WARM:
        await client.call("persona.chat", {"message": message, "persona_id": "Kira"})
    after = await client.call("persona.status", {"persona_id": "Kira"})
    assert after["mood_state"]["intensity"] > 0.15
    assert after["mood_state"]["valence"] > 0
    assert after["mood"] == after["mood_state"]["label"]
    assert len(after["mood_state"]["history"]) == 3
    assert after["mood_state"]["history"][0]["reason"].startswith("warm message")
    assert after["user_relationship"]["interaction_count"] == 3


async def test_all_relationships_are_listed_without_other_id(client: PersonaClient) -> None:
    await client.call("persona.chat", {"message": "Hello Kira, lovely day!", "persona_id": "Kira"})
    result = await client.call("persona.relationship", {"persona_id": "Kira"})
    assert [r["other_id"] for r in result["relationships"]] == ["user"]
    assert result["relationships"][0]["history"][0]["reason"]


async def test_a_relationship_with_oneself_is_invalid_params(client: PersonaClient) -> None:
    with pytest.raises(RpcError) as err:
        await client.call("persona.relationship", {"persona_id": "Kira", "other_id": "Kira"})
    assert err.value.code == -32602


async def test_aria_and_kira_compatibility_is_in_the_unit_interval_with_its_parts(
    client: PersonaClient,
) -> None:
    result = await client.call("persona.compatibility", {"persona_id": "Aria", "other_id": "Kira"})
    assert 0.0 <= result["compatibility"] <= 1.0
    parts = {p["name"]: p for p in result["parts"]}
    assert set(parts) == {"topics", "traits", "social_energy"}
    assert all(0.0 <= p["score"] <= 1.0 for p in parts.values())
    assert "curious" in parts["traits"]["detail"]
    total = sum(p["score"] * p["weight"] for p in parts.values())
    assert result["compatibility"] == pytest.approx(total, abs=1e-3)


# -- the rules ----------------------------------------------------------------------------


def test_familiarity_fades_slowly_with_absence_and_the_absence_is_a_reason() -> None:
    rel, _ = rel_rules.after_exchange(
        rel_rules.RelationshipValues(), valence=0.5, interest=0.4, words=10, now=0.0
    )
    week = 7 * 86400.0
    assert rel_rules.faded(rel, week).familiarity == rel.familiarity  # the grace period
    later = rel_rules.faded(rel, week + 30 * 86400.0)
    assert later.familiarity == pytest.approx(rel.familiarity / 2)
    _, changes = rel_rules.after_exchange(
        rel, valence=0.5, interest=0.4, words=10, now=week + 30 * 86400.0
    )
    assert changes[0].reason == "long absence"
    assert changes[0].familiarity < 0


def test_a_hostile_message_lowers_affinity_and_trust() -> None:
    rel, (change,) = rel_rules.after_exchange(
        rel_rules.RelationshipValues(), valence=-0.8, interest=0.4, words=10, now=0.0
    )
    assert rel.affinity < 0
    assert rel.trust < rel_rules.START_TRUST
    assert change.reason == "hostile message"


def test_time_restores_the_mood_toward_rest() -> None:
    stirred = mood_rules.after_exchange(mood_rules.MoodValues(), valence=0.9, interest=1, now=0)
    assert stirred.intensity > 0.2
    two_hours = mood_rules.restored(stirred, 2 * 3600.0)
    assert two_hours.valence == pytest.approx(stirred.valence / 2)
    assert mood_rules.restored(stirred, 48 * 3600.0).label == "calm"


def test_the_continue_score_weighs_the_relationship_and_the_mood() -> None:
    state = StateValues(70.0, 60.0, 10.0, "normal", None, 70.0, 60.0)
    friend = rel_rules.RelationshipValues(affinity=0.8, trust=0.8, familiarity=0.6)
    assert continue_score(state, 0.5, 3, rel_rules.warmth(friend)) > continue_score(
        state, 0.5, 3, rel_rules.warmth(None)
    )
    assert continue_score(state, 0.5, 3, 0.5, mood=-0.6) < continue_score(state, 0.5, 3, 0.5)


# -- the chatroom --------------------------------------------------------------------------


async def test_a_chatroom_of_aria_kira_and_a_new_persona_runs_moves_relationships_and_survives_a_restart(  # noqa: E501
    settings: Settings,
) -> None:
    async with serve(settings) as server, server.client() as client:
        await client.call(
            "persona.create",
            {
                "name": "Milo",
                "description": "A cheerful sailor.",
                "personality_traits": ["playful", "energetic", "bold"],
                "topic_preferences": {"travel": 0.9, "music": 0.7, "nature": 0.6},
            },
        )
        async with websockets.connect(server.ws_url) as watcher:
            await watcher.send(request(1, "events.subscribe", {"topics": ["simulation.turn"]}))
            assert (await recv(watcher))["result"]["topics"] == ["simulation.turn"]
            started = await client.call(
                "simulation.start",
                {"personas": ["Aria", "Kira", "Milo"], "topic": "music at sea", "max_turns": 9,
                 "seed": 7},
            )  # fmt: skip
            sim_id = started["simulation_id"]
            events = [await recv(watcher) for _ in range(9)]
        assert all(e["method"] == "simulation.turn" for e in events)
        assert [e["params"]["turn"] for e in events] == list(range(1, 10))
        done = await wait_until_done(client, sim_id)
        assert done["status"] == "completed"
        assert done["turns"] == 9
        transcript = await client.call("simulation.transcript", {"simulation_id": sim_id})
        speakers = [t["speaker"] for t in transcript["turns"]]
        assert len(set(speakers)) >= 2
        assert all(a != b for a, b in itertools.pairwise(speakers))
        assert [t["text"] for t in transcript["turns"]] == [e["params"]["text"] for e in events]
        assert all(t["model"] == "offline-chatroom" for t in transcript["turns"])

        moved = {}
        for name in ("Aria", "Kira", "Milo"):
            rels = (await client.call("persona.relationship", {"persona_id": name}))[
                "relationships"
            ]
            assert rels, name
            assert all(r["interaction_count"] > 0 for r in rels)
            assert all(r["history"][0]["reason"].endswith("in the chatroom") for r in rels)
            moved[name] = {r["other_name"]: r for r in rels}
        assert any(abs(r["affinity"]) > 0 for rels in moved.values() for r in rels.values())
        moods = {
            n: (await client.call("persona.status", {"persona_id": n}))["mood_state"]
            for n in ("Aria", "Kira", "Milo")
        }
        assert any(m["intensity"] > 0 for m in moods.values())

        # Each persona remembers what the others said, in its own memory.
        first = transcript["turns"][0]
        listener = next(n for n in ("Aria", "Kira", "Milo") if n != first["speaker"])
        found = await client.call(
            "memory.search", {"query": "chatroom", "persona_id": listener, "limit": 50}
        )
        heard = [h["memory"] for h in found["results"]]
        assert any(
            m["metadata"].get("simulation_id") == sim_id
            and m["metadata"].get("speaker") == first["speaker"]
            for m in heard
        )
        assert all(m["metadata"].get("speaker") != listener for m in heard)

    async with serve(settings) as server, server.client() as client:
        again = await client.call("simulation.transcript", {"simulation_id": sim_id})
        assert again["turns"] == transcript["turns"]
        assert again["status"] == "completed"
        for name, before in moved.items():
            rels = (await client.call("persona.relationship", {"persona_id": name}))[
                "relationships"
            ]
            after = {r["other_name"]: r for r in rels}
            assert after.keys() == before.keys()
            for other, rel in after.items():
                assert rel["affinity"] == before[other]["affinity"]
                assert rel["interaction_count"] == before[other]["interaction_count"]
        for name, mood in moods.items():
            now = (await client.call("persona.status", {"persona_id": name}))["mood_state"]
            assert now["valence"] == pytest.approx(mood["valence"], abs=1e-3)
        listed = await client.call("simulation.list")
        assert [s["simulation_id"] for s in listed["simulations"]] == [sim_id]


async def test_the_same_seed_replays_the_same_offline_chatroom(
    app_factory: Callable[..., Any],
) -> None:
    transcripts = []
    for _ in range(2):
        app: App = await app_factory()
        sim = await app.simulations.start(
            "default", ["Aria", "Kira"], "old stories", 6, seed=42, background=False
        )
        await app.simulations.run(sim.id)
        rows = await app.simulations.transcript("default", sim.id)
        transcripts.append([(r.speaker, r.text) for r in rows])
    assert transcripts[0] == transcripts[1]
    assert len(transcripts[0]) == 6


async def test_a_chatroom_of_one_persona_is_invalid_params(client: PersonaClient) -> None:
    with pytest.raises(RpcError) as err:
        await client.call("simulation.start", {"personas": ["Aria"], "topic": "music"})
    assert err.value.code == -32602


async def test_turns_come_from_the_configured_llm_and_a_run_can_be_stopped(
    tmp_path: Path,
) -> None:
    async with FakeLLMServer(models=["llama3.1:8b"]) as fake:
        settings = make_settings(tmp_path / "data", llm_provider="ollama", ollama_host=fake.url)
        async with serve(settings) as server, server.client() as client:
            started = await client.call(
                "simulation.start", {"personas": ["Aria", "Kira"], "topic": "tea", "max_turns": 2}
            )
            done = await wait_until_done(client, started["simulation_id"])
            assert done["status"] == "completed"
            turns = (
                await client.call(
                    "simulation.transcript", {"simulation_id": started["simulation_id"]}
                )
            )["turns"]
            assert [t["model"] for t in turns] == ["llama3.1:8b", "llama3.1:8b"]
            assert all(t["text"].startswith("echo:") for t in turns)
            assert "group chat" in fake.last("/api/chat").json["messages"][-1]["content"]

            fake.delay = 30.0  # the next turn waits on the model until it is stopped
            slow = await client.call(
                "simulation.start", {"personas": ["Aria", "Kira"], "topic": "tea"}
            )
            stopped = await client.call("simulation.stop", {"simulation_id": slow["simulation_id"]})
            assert stopped["status"] == "stopped"
            with pytest.raises(RpcError) as err:
                await client.call("simulation.stop", {"simulation_id": slow["simulation_id"]})
            assert err.value.code == -32002
            fake.delay = 0.0


async def test_serve_simulate_runs_a_chatroom_of_the_default_personas_after_start(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data", simulate_turns=3)
    async with serve(settings) as server, server.client() as client:
        listed: dict[str, Any] = {"simulations": []}
        for _ in range(200):  # bounded: the lifespan starts the run
            listed = await client.call("simulation.list")
            if listed["simulations"]:
                break
            await asyncio.sleep(0.05)
        (sim,) = listed["simulations"]
        assert sim["personas"] == ["Aria", "Kira"]
        done = await wait_until_done(client, sim["simulation_id"])
        assert done["turns"] == 3


def test_the_simulate_command_prints_the_turns_and_a_summary_and_exits_0(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVER_", "LLM_"))}
    env["EMBEDDING_PROVIDER"] = "none"
    done = subprocess.run(
        [str(EXE), "simulate", "--personas", "Aria,Kira", "--topic", "music", "--turns", "4",
         "--seed", "1", "--llm", "offline", "--data-dir", str(tmp_path / "data"),
         "--env-file", str(tmp_path / "none.env")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    turns = [line for line in lines if line.startswith("[")]
    assert [t.split("]")[0] for t in turns] == ["[1", "[2", "[3", "[4"]
    assert all("(continue 0." in t for t in turns)
    assert any(line.strip().startswith("Aria -> Kira: affinity") for line in lines)
    assert any(line.strip().startswith("Kira:") for line in lines)


async def test_deleting_a_persona_removes_the_others_relationships_with_it(
    client: PersonaClient,
) -> None:
    await client.call("persona.create", {"name": "Pip", "personality_traits": ["playful"]})
    started = await client.call(
        "simulation.start",
        {"personas": ["Aria", "Pip"], "topic": "songs", "max_turns": 4, "seed": 3},
    )
    await wait_until_done(client, started["simulation_id"])
    before = await client.call("persona.relationship", {"persona_id": "Aria", "other_id": "Pip"})
    assert before["relationships"][0]["interaction_count"] > 0
    await client.call("persona.delete", {"persona_id": "Pip"})
    after = await client.call("persona.relationship", {"persona_id": "Aria"})
    assert after["relationships"] == []


async def test_a_persona_too_tired_to_go_on_leaves_and_the_room_ends_with_fewer_than_two(
    app_factory: Callable[..., Any],
) -> None:
    app: App = await app_factory()
    await app.personas.create(
        "default",
        name="Dozy",
        description="Half asleep.",
        personality_traits=["reserved"],
        backstory="",
        topic_preferences={},
        model=None,
        social_energy=5.0,
        available_time=0.0,
    )
    sub = app.events.subscribe("default", ["simulation.turn"])
    sim = await app.simulations.start(
        "default", ["Aria", "Dozy"], "lullabies", 10, seed=5, background=False
    )
    done = await app.simulations.run(sim.id)
    assert done.status == "completed"
    assert done.end_reason == "fewer than two personas remain"
    assert done.turns == 1
    event = await asyncio.wait_for(sub.next(), 5)
    assert event is not None
    assert event.params["left"] == ["Dozy"]
    assert event.params["remaining"] == ["Aria"]
    sub.close()
