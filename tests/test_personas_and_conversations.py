"""Personas and conversations through the WebSocket door, across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.config import Settings
from tests.conftest import RunningServer, make_settings, serve


async def test_first_start_offers_aria_and_kira(client: PersonaClient) -> None:
    result = await client.call("persona.list")
    names = [p["name"] for p in result["personas"]]
    assert names == ["Aria", "Kira"]
    aria = result["personas"][0]
    assert aria["personality_traits"] and aria["backstory"] and aria["topic_preferences"]
    assert result["active_persona_id"] == aria["id"]


async def test_created_persona_and_its_conversation_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    async with serve(settings) as server, server.client() as c:
        created = await c.call(
            "persona.create",
            {
                "name": "Orin",
                "description": "A lighthouse keeper",
                "personality_traits": ["patient"],
                "topic_preferences": {"sea": 0.9},
            },
        )
        orin = created["persona"]
        await c.call("persona.switch", {"persona_id": "orin"})
        first = await c.call("persona.chat", {"message": "The lamp needs new oil tonight."})

    async with serve(settings) as server, server.client() as c:
        names = [p["name"] for p in (await c.call("persona.list"))["personas"]]
        assert names == ["Aria", "Kira", "Orin"]
        status = await c.call("conversation.status", {"persona_id": orin["id"]})
        assert status["conversation_id"] == first["conversation_id"]
        assert status["turns"] == 1
        assert status["recent_messages"][0]["content"] == "The lamp needs new oil tonight."
        again = await c.call("persona.chat", {"message": "Is it lit?", "persona_id": "Orin"})
        assert again["conversation_id"] == first["conversation_id"]
        assert again["turn_number"] == 2


async def test_switch_by_name_ignores_case_and_reports_the_previous_persona(
    client: PersonaClient,
) -> None:
    listing = await client.call("persona.list")
    aria_id = listing["personas"][0]["id"]
    switched = await client.call("persona.switch", {"persona_id": "kIRA"})
    assert switched["active_persona"]["name"] == "Kira"
    assert switched["previous_persona_id"] in (None, aria_id)
    back = await client.call("persona.switch", {"persona_id": aria_id})
    assert back["previous_persona_id"] == switched["active_persona"]["id"]
    assert (await client.call("persona.list"))["active_persona_id"] == aria_id


async def test_chat_answers_offline_with_a_growing_turn_number(client: PersonaClient) -> None:
    one = await client.call("persona.chat", {"message": "Hello Aria, sing me a song of the sea"})
    two = await client.call("persona.chat", {"message": "Another verse, please"})
    assert one["model"] == "offline"
    assert one["response"].startswith("(Offline:")
    assert (one["turn_number"], two["turn_number"]) == (1, 2)
    assert one["conversation_id"] == two["conversation_id"]
    for reply in (one, two):
        assert 0.0 <= reply["continue_score"] <= 1.0
        assert reply["response_type"] in {"continue", "wrap_up", "end"}
        assert reply["tokens_used"] > 0
        assert reply["processing_time"] >= 0


async def test_switching_away_and_back_continues_the_same_conversation(
    client: PersonaClient,
) -> None:
    await client.call("persona.switch", {"persona_id": "Aria"})
    first = await client.call("persona.chat", {"message": "Remember the harbour song"})
    await client.call("persona.switch", {"persona_id": "Kira"})
    kira = await client.call("persona.chat", {"message": "What is a tide?"})
    assert kira["conversation_id"] != first["conversation_id"]
    switched = await client.call("persona.switch", {"persona_id": "Aria"})
    assert switched["conversation_id"] == first["conversation_id"]
    assert switched["turns"] == 1
    again = await client.call("persona.chat", {"message": "Now the second verse"})
    assert again["conversation_id"] == first["conversation_id"]
    assert again["turn_number"] == 2


async def test_streaming_chat_sends_deltas_that_add_up_to_the_reply(
    client: PersonaClient,
) -> None:
    result = await client.call("persona.chat", {"message": "Tell me a story", "stream": True})
    pieces = []
    while not client.notifications.empty():
        note = client.notifications.get_nowait()
        assert note["method"] == "persona.chat.delta"
        pieces.append(note["params"]["delta"])
    assert len(pieces) > 1
    assert "".join(pieces) == result["response"]


async def test_duplicate_persona_name_is_a_conflict(client: PersonaClient) -> None:
    with pytest.raises(RpcError) as conflict:
        await client.call("persona.create", {"name": "aria"})
    assert conflict.value.code == -32002


async def test_unknown_persona_is_not_found(client: PersonaClient) -> None:
    for method, params in [
        ("persona.switch", {"persona_id": "Nobody"}),
        ("persona.chat", {"message": "hi", "persona_id": "Nobody"}),
        ("persona.status", {"persona_id": "Nobody"}),
        ("persona.delete", {"persona_id": "Nobody"}),
    ]:
        with pytest.raises(RpcError) as missing:
            await client.call(method, params)
        assert missing.value.code == -32001, method


async def test_empty_or_oversized_message_is_rejected_and_nothing_stored(
    client: PersonaClient, settings: Settings
) -> None:
    for message in ["", "   ", "x" * (settings.max_content_bytes + 1)]:
        with pytest.raises(RpcError) as bad:
            await client.call("persona.chat", {"message": message})
        assert bad.value.code == -32602
        assert bad.value.data["errors"][0]["field"] == "message"
    assert (await client.call("conversation.status"))["turns"] == 0


async def test_update_changes_only_given_fields(client: PersonaClient) -> None:
    created = (await client.call("persona.create", {"name": "Vex", "backstory": "old"}))["persona"]
    updated = await client.call(
        "persona.update", {"persona_id": created["id"], "description": "a fox"}
    )
    assert updated["persona"]["description"] == "a fox"
    assert updated["persona"]["backstory"] == "old"
    with pytest.raises(RpcError) as taken:
        await client.call("persona.update", {"persona_id": "Vex", "name": "Kira"})
    assert taken.value.code == -32002


async def test_delete_removes_the_persona_and_its_conversations(client: PersonaClient) -> None:
    created = (await client.call("persona.create", {"name": "Temp"}))["persona"]
    chat = await client.call("persona.chat", {"message": "hello", "persona_id": "Temp"})
    await client.call("persona.switch", {"persona_id": "Temp"})
    deleted = await client.call("persona.delete", {"persona_id": created["id"]})
    assert deleted["deleted"] is True
    names = [p["name"] for p in (await client.call("persona.list"))["personas"]]
    assert "Temp" not in names
    with pytest.raises(RpcError) as gone:
        await client.call("conversation.status", {"conversation_id": chat["conversation_id"]})
    assert gone.value.code == -32001
    # The session falls back to a persona that exists.
    assert (await client.call("persona.status"))["persona"]["name"] == "Aria"


async def test_conversation_end_summarizes_and_the_next_chat_starts_afresh(
    client: PersonaClient,
) -> None:
    first = await client.call("persona.chat", {"message": "My sister Mara plays the violin."})
    ended = await client.call("conversation.end")
    assert ended["conversation_id"] == first["conversation_id"]
    assert ended["turns"] == 1
    assert "Mara" in ended["summary"]
    assert ended["summary_source"] == "extractive"
    with pytest.raises(RpcError) as again:
        await client.call("conversation.end", {"conversation_id": first["conversation_id"]})
    assert again.value.code == -32002
    fresh = await client.call("persona.chat", {"message": "Hello again"})
    assert fresh["conversation_id"] != first["conversation_id"]
    assert fresh["turn_number"] == 1


async def test_conversation_start_replaces_the_current_one(client: PersonaClient) -> None:
    first = await client.call("persona.chat", {"message": "Old topic"})
    started = await client.call("conversation.start", {"title": "New chapter"})
    assert started["previous_conversation_id"] == first["conversation_id"]
    reply = await client.call("persona.chat", {"message": "New topic"})
    assert reply["conversation_id"] == started["conversation_id"]
    assert reply["turn_number"] == 1


async def test_long_conversations_keep_a_window_and_summarize_older_turns(
    server: RunningServer, client: PersonaClient
) -> None:
    await client.call("persona.chat", {"message": "My dog is called Pepper and she loves rivers."})
    for i in range(29):
        await client.call("persona.chat", {"message": f"Verse number {i} about wandering roads"})
    await server.app.conversations.drain()
    status = await client.call("conversation.status")
    assert status["turns"] == 30
    assert status["messages"] == 60
    assert len(status["recent_messages"]) == 20
    assert status["summary_covers_messages"] >= 30
    assert "Pepper" in status["summary"]


async def test_persona_status_reports_state_conversation_and_memory_count(
    client: PersonaClient,
) -> None:
    await client.call("persona.chat", {"message": "A long tale about mountains and rivers"})
    status = await client.call("persona.status", {"persona_id": "Aria"})
    state = status["interaction_state"]
    assert state["social_energy"] < 90
    assert state["interaction_fatigue"] > 0
    assert state["last_interaction"] is not None
    assert status["conversation"]["turns"] == 1
    assert status["mood"]
    assert status["memory_count"] >= 0


async def test_system_status_tells_the_truth_about_the_llm(client: PersonaClient) -> None:
    status = await client.call("system.status")
    assert status["llm"]["provider"] == "offline"
    assert status["llm"]["active"] == "offline"
    assert status["connections"] >= 1
    assert status["counts"]["personas"] == 2
    models = await client.call("system.models")
    assert models["models"] == [
        {"name": "offline", "size": None, "modified_at": None, "family": None}
    ]
