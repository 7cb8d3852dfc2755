"""MemoryOS's tiers and its three tools, through the WebSocket door and MCP."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from persona_mcp.app import App
from persona_mcp.client import PersonaClient
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.memory import tier_rules
from tests.conftest import RunningServer, make_settings, serve, store_env

FACTS = [
    ("My sister Mara lives in Lisbon.", "Lisbon is lovely; does Mara like it there?"),
    ("I work as a nurse at the city hospital.", "Nursing is demanding work. I admire it."),
    ("I love hiking in the Alps every summer.", "I'll remember to ask about your next hike."),
    ("My dog is called Pepper and he is a beagle.", "Pepper the beagle sounds like fun!"),
    ("I am allergic to peanuts.", "I will keep that in mind: no peanuts."),
    ("I'm learning to play the cello.", "The cello has such a warm voice."),
    ("My favourite food is sushi.", "Sushi is a fine choice."),
    ("I hate cold coffee.", "Cold coffee is a crime, I agree."),
    ("I grew up in a small town near Porto.", "Porto has beautiful tiles."),
    ("My brother Tiago is a chef in Paris.", "A chef in Paris! He must cook well."),
    ("I prefer short answers.", "Understood. I will keep them short."),
    ("I'm training for a marathon in October.", "A marathon is a big goal."),
    ("My car is an old blue Volvo.", "Old Volvos last forever."),
    ("I read science fiction before bed.", "Any favourite authors?"),
    ("My mother Helen taught me to bake bread.", "Baking bread is a lovely tradition."),
]


async def add_all(call: Any) -> None:
    for i, (user_input, agent_response) in enumerate(FACTS):
        args = {"user_input": user_input, "agent_response": agent_response}
        # Half the calls wrapped as MemoryOS's own examples send them.
        await call("add_memory", {"params": args} if i % 2 else args)


async def promote(call: Any, query: str, rounds: int = 8) -> dict[str, Any]:
    """Retrieve the same fact until its segment is promoted (bounded)."""
    last: dict[str, Any] = {}
    for _ in range(rounds):
        last = await call("retrieve_memory", {"query": query})
        if last["promoted_segments"]:
            return last
    return last


def test_first_person_statements_are_retold_about_the_user() -> None:
    assert tier_rules.about_user("I love hiking") == "The user loves hiking."
    assert tier_rules.about_user("My sister lives in Lisbon.") == (
        "The user's sister lives in Lisbon."
    )
    assert tier_rules.about_user("I'm allergic to peanuts") == "The user is allergic to peanuts."
    extracted = tier_rules.extract([("What is my name?", "I do not know yet.")], "Kira")
    assert extracted.user_knowledge == []  # questions are never facts


async def test_the_tiers_fill_promote_and_survive_a_restart_over_websocket(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    settings = make_settings(tmp_path / "data")
    async with (
        serve(settings, App(settings, embedder=minilm)) as server,
        server.client() as client,
    ):
        await add_all(client.call)
        tiers = await client.call("memory.tiers")
        assert tiers["counts"]["short_term_pages"] == settings.short_term_capacity
        assert tiers["counts"]["mid_term_pages"] == len(FACTS) - settings.short_term_capacity
        assert tiers["counts"]["mid_term_segments"] >= 1

        found = await client.call("retrieve_memory", {"query": "Where does Mara live?"})
        assert found["status"] == "success"
        assert found["short_term_count"] == settings.short_term_capacity
        assert any("Lisbon" in p["user_input"] for p in found["retrieved_pages"])

        promoted = await promote(client.call, "Where does my sister Mara live?")
        assert promoted["promoted_segments"], promoted
        profile = await client.call(
            "get_user_profile", {"params": {"include_assistant_knowledge": True}}
        )
        facts = " ".join(k["knowledge"] for k in profile["user_knowledge"])
        assert "The user's sister Mara lives in Lisbon." in facts
        assert all("?" not in k["knowledge"] for k in profile["user_knowledge"])
        assert profile["profile"]["extractor"] == "rules"
        assert profile["user_profile"] != "No profile yet."
    async with (
        serve(settings, App(settings, embedder=minilm)) as server,
        server.client() as client,
    ):
        again = await client.call("get_user_profile")
        assert again["user_knowledge"] == profile["user_knowledge"]
        tiers = await client.call("memory.tiers")
        assert tiers["counts"]["short_term_pages"] == settings.short_term_capacity
        kept = {s["id"]: s for s in tiers["hottest_segments"]}
        assert all(kept[sid]["promoted_at"] is not None for sid in promoted["promoted_segments"])


async def test_the_tiers_belong_to_one_persona(mclient: PersonaClient) -> None:
    await mclient.call("add_memory", {"user_input": "I live in Oslo.", "agent_response": "Nice"})
    kira = await mclient.call("memory.tiers", {"persona_id": "Kira"})
    aria = await mclient.call("memory.tiers", {"persona_id": "Aria"})
    assert kira["counts"]["short_term_pages"] + aria["counts"]["short_term_pages"] == 1


async def test_a_user_id_argument_is_accepted_and_ignored(client: PersonaClient) -> None:
    args = {"user_input": "I like tea.", "agent_response": "Tea is good.", "user_id": "alice"}
    added = await client.call("add_memory", {"params": args})
    assert added["status"] == "success"
    found = await client.call("retrieve_memory", {"query": "tea", "user_id": "someone"})
    assert found["short_term_count"] == 1


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_memoryos_tools_work_over_mcp_http(
    memory_server: RunningServer, mode: str
) -> None:
    async with Client(f"{memory_server.http_url}/mcp", mode=mode) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {"add_memory", "retrieve_memory", "get_user_profile"} <= names

        async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            result = await mcp.call_tool(name, args)
            assert not result.is_error, result.content
            assert result.structured_content is not None
            return result.structured_content

        await add_all(call)
        found = await call("retrieve_memory", {"params": {"query": "Pepper the beagle"}})
        pages = found["retrieved_pages"] + found["short_term_memory"]
        assert any("Pepper" in p["user_input"] for p in pages)
        promoted = await promote(call, "Where does my sister Mara live?")
        assert promoted["promoted_segments"]
        profile = await call("get_user_profile", {})
        assert profile["user_knowledge"]


async def test_the_memoryos_tools_work_over_stdio(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **store_env(tmp_path / "data"),
        "EMBEDDING_PROVIDER": "none",
        "LLM_PROVIDER": "offline",
    }
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "persona-mcp"),
        args=["stdio", "--env-file", str(tmp_path / "none.env")],
        env=env,
    )
    async with Client(params) as mcp:

        async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            result = await mcp.call_tool(name, args)
            assert not result.is_error, result.content
            return json.loads(result.content[0].text)  # type: ignore[union-attr]

        await add_all(call)
        found = await call("retrieve_memory", {"query": "Where does my sister Mara live?"})
        assert any("Lisbon" in p["user_input"] for p in found["retrieved_pages"])
        promoted = await promote(call, "Where does my sister Mara live?")
        assert promoted["promoted_segments"]
        assert (await call("get_user_profile", {}))["user_knowledge"]


async def test_a_chat_after_promotion_is_given_the_profile_and_becomes_a_page(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    from tests.fakes.llm_server import FakeLLMServer

    async with FakeLLMServer(models=["llama3.1:8b"]) as ollama:
        settings = make_settings(tmp_path / "data", llm_provider="ollama", ollama_host=ollama.url)
        async with (
            serve(settings, App(settings, embedder=minilm)) as server,
            server.client() as client,
        ):
            await add_all(client.call)
            assert (await promote(client.call, "Where does my sister Mara live?"))[
                "promoted_segments"
            ]
            before = (await client.call("memory.tiers"))["counts"]
            await client.call("persona.chat", {"message": "Any plans for my sister's visit?"})
            system = ollama.last("/api/chat").json["messages"][0]["content"]
            assert "<user_profile>" in system
            assert "The user's sister Mara lives in Lisbon." in system
            after = (await client.call("memory.tiers"))["counts"]
            assert after["mid_term_pages"] + after["short_term_pages"] == (
                before["mid_term_pages"] + before["short_term_pages"] + 1
            )
