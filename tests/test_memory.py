"""Semantic memory through the WebSocket door, with the real embedding model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from persona_mcp.app import App
from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.config import Settings
from persona_mcp.embeddings.base import Vectors
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from tests.conftest import RunningServer, make_settings, serve, store_env

FACTS = [
    "My sister Mara moved to Lisbon last spring to study marine biology.",
    "I burned the lasagna again on Sunday; the smoke alarm went off twice.",
    "Our team finally shipped the billing migration after three months.",
    "The cat knocked my grandmother's vase off the shelf this morning.",
    "I have started training for a half marathon in October.",
]


async def store_all(client: PersonaClient, texts: list[str], **extra: Any) -> list[dict[str, Any]]:
    return [(await client.call("memory.store", {"content": t, **extra}))["memory"] for t in texts]


async def test_a_stored_memory_is_found_by_a_paraphrased_question(mclient: PersonaClient) -> None:
    await store_all(mclient, FACTS)
    found = await mclient.call("memory.search", {"query": "Which city does my sibling live in?"})
    assert found["semantic"] is True
    assert found["results"][0]["memory"]["content"] == FACTS[0]
    running = await mclient.call("memory.search", {"query": "preparing for a long race"})
    assert running["results"][0]["memory"]["content"] == FACTS[4]


async def test_a_deleted_memory_is_never_returned_again(mclient: PersonaClient) -> None:
    stored = await store_all(mclient, FACTS)
    target = stored[0]
    deleted = await mclient.call("memory.delete", {"memory_id": target["id"]})
    assert deleted == {"deleted": True, "memory_id": target["id"]}
    for query in ["sister Mara Lisbon", "Where does my sibling live?", "marine biology"]:
        found = await mclient.call("memory.search", {"query": query, "limit": 100})
        assert target["id"] not in [r["memory"]["id"] for r in found["results"]]
    for method in ("memory.get", "memory.delete"):
        with pytest.raises(RpcError) as missing:
            await mclient.call(method, {"memory_id": target["id"]})
        assert missing.value.code == -32001


async def test_a_batch_of_600_round_trips_its_metadata(mclient: PersonaClient) -> None:
    batch = [
        {
            "content": f"Observation {i}: the tide was {i % 7} feet at dawn near pier {i % 13}.",
            "memory_type": "observation",
            "metadata": {"index": i, "tags": ["tide", f"pier-{i % 13}"], "nested": {"ok": True}},
        }
        for i in range(600)
    ]
    result = await mclient.call("memory.store_batch", {"memories": batch})
    assert result["count"] == 600
    assert [m["metadata"] for m in result["memories"]] == [b["metadata"] for b in batch]
    some = result["memories"][123]
    fetched = (await mclient.call("memory.get", {"memory_id": some["id"]}))["memory"]
    assert fetched["metadata"] == {"index": 123, "tags": ["tide", "pier-6"], "nested": {"ok": True}}
    stats = await mclient.call("memory.stats")
    assert stats["total"] == 600
    assert stats["by_type"] == {"observation": 600}
    assert stats["index"]["pending_embeddings"] == 0


async def test_a_batch_with_one_bad_item_stores_nothing(mclient: PersonaClient) -> None:
    batch = [{"content": "fine"}, {"content": ""}, {"content": "also fine"}]
    with pytest.raises(RpcError) as bad:
        await mclient.call("memory.store_batch", {"memories": batch})
    assert bad.value.code == -32602
    assert bad.value.data["errors"][0]["field"] == "memories.1.content"
    assert (await mclient.call("memory.stats"))["total"] == 0


async def test_a_fact_told_in_chat_is_recalled_two_conversations_later(
    mclient: PersonaClient,
) -> None:
    told = await mclient.call(
        "persona.chat", {"message": "My daughter Ines is allergic to peanuts, please remember."}
    )
    assert len(told["stored_memory_ids"]) == 1
    await mclient.call("conversation.end")
    await mclient.call("persona.chat", {"message": "Let us talk about sea shanties."})
    await mclient.call("conversation.end")
    later = await mclient.call(
        "persona.chat", {"message": "What food must my daughter avoid at the party?"}
    )
    assert later["conversation_id"] != told["conversation_id"]
    recalled = [m["content"] for m in later["memories_used"]]
    assert any("peanuts" in c for c in recalled)
    # The offline responder shows what it recalled.
    assert "peanuts" in later["response"]


async def test_importance_is_scored_in_range_with_a_breakdown_unless_given(
    mclient: PersonaClient,
) -> None:
    auto = (await mclient.call("memory.store", {"content": FACTS[0]}))["memory"]
    assert 0.5 <= auto["importance"] <= 0.8
    factors = auto["importance_breakdown"]["factors"]
    assert set(factors) == {
        "emotional", "context", "interests", "engagement", "relationship", "recency"
    }  # fmt: skip
    given = (await mclient.call("memory.store", {"content": "x marks", "importance": 0.95}))[
        "memory"
    ]
    assert given["importance"] == 0.95
    assert given["importance_breakdown"] is None
    grief = (await mclient.call("memory.store", {"content": "My father died last night."}))[
        "memory"
    ]
    trivia = (await mclient.call("memory.store", {"content": "the bus was on time"}))["memory"]
    assert grief["emotional_valence"] < 0
    assert grief["importance"] > trivia["importance"]


async def test_search_filters_by_type_importance_and_time(mclient: PersonaClient) -> None:
    await mclient.call(
        "memory.store",
        {"content": "Ate ramen in Kyoto", "memory_type": "episode",
         "occurred_at": "2023-05-01T12:00:00Z", "importance": 0.9},
    )  # fmt: skip
    await mclient.call(
        "memory.store",
        {"content": "Ate ramen in Osaka", "memory_type": "fact",
         "occurred_at": "2024-05-01T12:00:00Z", "importance": 0.6},
    )  # fmt: skip

    async def contents(**params: Any) -> list[str]:
        found = await mclient.call("memory.search", {"query": "ramen", **params})
        return sorted(r["memory"]["content"] for r in found["results"])

    assert await contents() == ["Ate ramen in Kyoto", "Ate ramen in Osaka"]
    assert await contents(memory_type="fact") == ["Ate ramen in Osaka"]
    assert await contents(min_importance=0.8) == ["Ate ramen in Kyoto"]
    assert await contents(since="2024-01-01T00:00:00Z") == ["Ate ramen in Osaka"]
    assert await contents(until="2024-01-01T00:00:00Z") == ["Ate ramen in Kyoto"]


async def test_each_search_hit_counts_as_an_access(mclient: PersonaClient) -> None:
    stored = (await store_all(mclient, [FACTS[1]]))[0]
    assert stored["access_count"] == 0
    for expected in (1, 2):
        hit = (await mclient.call("memory.search", {"query": "burned lasagna"}))["results"][0]
        assert hit["memory"]["access_count"] == expected
        assert hit["memory"]["last_accessed_at"] is not None
    stats = await mclient.call("memory.get_stats")
    assert stats["access"]["total_accesses"] == 2


async def test_bad_memory_input_is_refused_and_nothing_is_stored(
    mclient: PersonaClient, settings: Settings
) -> None:
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("memory.store", {"content": ""}, -32602),
        ("memory.store", {"content": "   "}, -32602),
        ("memory.store", {"content": "y" * (settings.max_content_bytes + 1)}, -32602),
        ("memory.store", {"content": "ok", "memory_type": "dream"}, -32602),
        ("memory.store", {"content": "ok", "importance": 1.5}, -32602),
        ("memory.store", {"content": "ok", "metadata": ["not", "an", "object"]}, -32602),
        ("memory.store", {"content": "ok", "persona_id": "Nobody"}, -32001),
        ("memory.search", {"query": "x", "limit": 0}, -32602),
        ("memory.search", {"query": "x", "limit": 101}, -32602),
        ("memory.search", {"query": "x", "persona_id": "Nobody"}, -32001),
        ("memory.store_batch", {"memories": []}, -32602),
    ]
    for method, params, code in cases:
        with pytest.raises(RpcError) as bad:
            await mclient.call(method, params)
        assert bad.value.code == code, (method, params)
    assert (await mclient.call("memory.stats"))["total"] == 0


async def test_memories_survive_a_restart_and_stay_searchable(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    settings = make_settings(tmp_path / "data")
    async with serve(settings, App(settings, embedder=minilm)) as server, server.client() as c:
        await store_all(c, FACTS, persona_id="Kira")
    async with serve(settings, App(settings, embedder=minilm)) as server, server.client() as c:
        found = await c.call(
            "memory.search", {"query": "sibling relocated abroad", "persona_id": "kira"}
        )
        assert found["results"][0]["memory"]["content"] == FACTS[0]
        assert (await c.call("persona.status", {"persona_id": "Kira"}))["memory_count"] == 5


async def test_personas_keep_separate_memories(mclient: PersonaClient) -> None:
    await mclient.call("memory.store", {"content": "Aria's secret chord", "persona_id": "Aria"})
    found = await mclient.call("memory.search", {"query": "secret chord", "persona_id": "Kira"})
    assert found["results"] == []
    alias = await mclient.call("persona.memory", {"query": "secret chord", "persona_id": "Aria"})
    assert alias["results"][0]["memory"]["content"] == "Aria's secret chord"


async def test_importance_weights_are_validated_and_persisted(
    memory_server: RunningServer, mclient: PersonaClient
) -> None:
    changed = await mclient.call(
        "memory.set_importance_weights", {"emotional": 0.0, "context": 0.9, "cap": 0.75}
    )
    assert changed["weights"]["context"] == 0.9
    assert changed["cap"] == 0.75
    for bad in ({"base": 0.9}, {"emotional": -1}):
        with pytest.raises(RpcError) as refused:
            await mclient.call("memory.set_importance_weights", bad)
        assert refused.value.code == -32602
    memory = memory_server.app.memory
    memory._config.clear()  # forget the cache: the value must come from SQLite
    config = await memory.importance_config("default")
    assert config.weights["context"] == 0.9
    scored = (await mclient.call("memory.store", {"content": "I was promoted today!"}))["memory"]
    assert scored["importance"] <= 0.75


class GatedEmbedder:
    """The real model behind a gate: not ready until the test opens it."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.gate = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.gate.is_set()

    @property
    def dim(self) -> int | None:
        return self.inner.dim

    async def start(self) -> None:
        return None

    async def wait_ready(self) -> None:
        await self.gate.wait()

    async def embed(self, texts: list[str]) -> Vectors:
        await self.gate.wait()
        return await self.inner.embed(texts)

    def status(self) -> dict[str, Any]:
        return {"provider": self.name, "ready": self.ready}

    async def aclose(self) -> None:
        return None


async def test_memories_stored_while_the_model_loads_are_embedded_once_it_is_ready(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    settings = make_settings(tmp_path / "data")
    gated = GatedEmbedder(minilm)
    app = App(settings, embedder=gated)  # type: ignore[arg-type]
    async with serve(settings, app) as server, server.client() as c:
        await store_all(c, FACTS)
        early = await c.call("memory.search", {"query": "Lisbon"})
        assert early["semantic"] is False
        assert early["results"][0]["memory"]["content"] == FACTS[0]
        assert (await c.call("memory.stats"))["index"]["pending_embeddings"] == 5
        gated.gate.set()
        for _ in range(200):  # bounded wait for the background pass
            if (await c.call("memory.stats"))["index"]["pending_embeddings"] == 0:
                break
            await asyncio.sleep(0.05)
        found = await c.call("memory.search", {"query": "Which city does my sibling live in?"})
        assert found["semantic"] is True
        assert found["results"][0]["memory"]["content"] == FACTS[0]


async def test_chat_reports_the_memories_it_used_and_stored(
    memory_server: RunningServer, mclient: PersonaClient
) -> None:
    first = await mclient.call("persona.chat", {"message": "I keep bees on my roof in Porto."})
    memory = await mclient.call("memory.get", {"memory_id": first["stored_memory_ids"][0]})
    assert memory["memory"]["source"] == "chat"
    assert memory["memory"]["metadata"]["conversation_id"] == first["conversation_id"]
    # Same conversation: a fact said a minute ago is used, with where it came from.
    second = await mclient.call("persona.chat", {"message": "How are my bees doing?"})
    used = second["memories_used"]
    assert [m["content"] for m in used] == ["I keep bees on my roof in Porto."]
    assert used[0]["speaker"] == "user"
    assert used[0]["source"]["turn_number"] == 1
    assert "bees" in used[0]["why"]["matched_terms"]
    assert second["stored_memory_ids"] == []  # a question leaves no memory
    await mclient.call("conversation.start")
    third = await mclient.call("persona.chat", {"message": "Any advice for my bees?"})
    assert any("Porto" in m["content"] for m in third["memories_used"])


async def test_reindex_embeds_every_memory_with_the_configured_model(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    import subprocess
    import sys

    lexical_only = make_settings(tmp_path / "data", embedding_provider="none")
    async with serve(lexical_only) as server, server.client() as c:
        await store_all(c, FACTS)
        assert (await c.call("memory.stats"))["index"]["embedding_provider"] == "none"
    env = {"PATH": "/usr/bin:/bin", **store_env(tmp_path / "data")}
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "persona-mcp"), "reindex",
         "--env-file", str(tmp_path / "none.env")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "re-embedded 5 memories" in done.stdout
    settings = make_settings(tmp_path / "data")
    app = App(settings, embedder=minilm)
    async with serve(settings, app) as server, server.client() as c:
        stats = await c.call("memory.stats")
        assert stats["index"]["pending_embeddings"] == 0
        found = await c.call("memory.search", {"query": "Which city does my sibling live in?"})
        assert found["results"][0]["memory"]["content"] == FACTS[0]
