"""The Persona knowledge graph through the WebSocket and MCP doors: ingestion into typed
memories and entities, temporal and typed edges, graph-aware search, entities with
aliases, `rag.query` and `ask`, persisted and across restarts."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from persona_mcp.app import App
from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.graph import aliases
from persona_mcp.graph.extract import classify, extract, when
from persona_mcp.graph.ner import NoRecognizer
from tests.conftest import RunningServer, make_settings, serve
from tests.fakes.llm_server import FakeLLMServer

DIARY = (
    "Yesterday I went hiking with my mother Helen near Lisbon. It rained the whole time. "
    "I love rainy days and I am a shy person. Next month I plan to run the Berlin "
    "marathon. I need to buy new running shoes."
)
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "relation": {"enum": ["mother", "father", "friend"]},
        "cities": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["name", "relation", "cities"],
    "additionalProperties": False,
}


def by_type(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for memory in result["memories"]:
        out.setdefault(memory["memory_type"], []).append(memory)
    return out


def links(result: dict[str, Any], edge_type: str) -> list[tuple[str, str]]:
    return [(x["source"], x["target"]) for x in result["links"] if x["edge_type"] == edge_type]


# -- the rules, offline -------------------------------------------------------------------


def test_sentences_are_read_as_events_traits_preferences_goals_and_tasks() -> None:
    assert classify("We went to the lake last Sunday.") == ("episode", "event")
    assert classify("I love jazz.") == ("psyche", "preference")
    assert classify("I'm a very patient person.") == ("psyche", "trait")
    assert classify("I believe everyone deserves a second chance.") == ("psyche", "belief")
    assert classify("I value honesty above everything.") == ("psyche", "value")
    assert classify("I want to learn the cello this year.") == ("goal", "goal")
    assert classify("Remind me to call the dentist.") == ("goal", "task")
    assert classify("Caroline: I need to renew my passport.") == ("goal", "task")
    assert when("I saw it 3 days ago.") == (-3 * 86400.0, "3 days ago")
    assert when("Yesterday was long.")[0] == -86400.0


def test_family_words_and_names_of_one_person_are_one_entity_in_a_text() -> None:
    found = extract(
        "Helen, my mom, works in Porto. Mom called me about Aunt Rosa's visit.", None, "rules"
    )
    helen = next(e for e in found.entities if e.name == "Helen")
    assert helen.relation == "mother"
    assert aliases.norm("My Mom") == aliases.norm("mom") == "mom"
    assert aliases.relation_of("Mom") == aliases.relation_of("my mother") == "mother"
    rosa = next(e for e in found.entities if e.name == "Rosa")
    assert rosa.relation == "aunt"
    assert [e.name for e in found.entities].count("Helen") == 1
    # Questions and filler never become memories.
    assert extract("What is my name? ok thanks", None, "rules").items == []


# -- ingestion ----------------------------------------------------------------------------


async def test_ingest_turns_a_paragraph_into_an_episode_a_psyche_and_a_goal_with_entities(
    client: PersonaClient,
) -> None:
    result = await client.call("memory.ingest", {"content": DIARY, "source": "diary"})
    assert result["extractor"] == "rules+spacy"
    typed = by_type(result)
    assert set(typed) == {"episode", "psyche", "goal"}
    episode = typed["episode"][0]
    assert episode["content"].startswith("Yesterday I went hiking")
    assert episode["source"] == "diary"
    # "Yesterday" counts back from the moment of writing.
    psyche = typed["psyche"][0]
    assert episode["occurred_at"] < psyche["occurred_at"]
    names = {e["name"]: e for e in result["entities"]}
    assert {"Helen", "Lisbon", "Berlin"} <= set(names)
    assert names["Helen"]["kind"] == "person"
    assert names["Helen"]["relation"] == "mother"
    assert names["Lisbon"]["kind"] == "place"
    assert (episode["id"], names["Helen"]["id"]) in links(result, "mentions")
    goal, task = typed["goal"]
    assert task["metadata"]["kind"] == "task"
    assert (task["id"], goal["id"]) in links(result, "part_of")
    graph = (await client.call("memory.stats"))["graph"]
    assert graph["entities"] == len(result["entities"])
    assert graph["edges"]["part_of"] == 1 and graph["edges"]["mentions"] >= 3


async def test_two_ingested_episodes_are_linked_in_time_and_the_link_survives_a_restart(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data")
    async with serve(settings) as server, server.client() as client:
        first = await client.call(
            "memory.ingest",
            {
                "content": "I visited my sister Mara in Lisbon.",
                "occurred_at": "2026-03-01T10:00:00Z",
            },
        )
        second = await client.call(
            "memory.ingest",
            {"content": "Mara took me to a fado concert.", "occurred_at": "2026-03-02T10:00:00Z"},
        )
        # An earlier one told later goes between them, by when it happened.
        middle = await client.call(
            "memory.ingest",
            {"content": "We walked along the river.", "occurred_at": "2026-03-01T18:00:00Z"},
        )
    a, b, m = (r["memories"][0]["id"] for r in (first, second, middle))
    assert (a, m) in links(middle, "next") and (m, b) in links(middle, "next")
    async with serve(settings) as server, server.client() as client:
        after = await client.call("graph.neighbors", {"node_id": m, "edge_types": ["next"]})
        reached = {(n["node"]["id"], n["direction"]) for n in after["neighbors"]}
        assert reached == {(a, "in"), (b, "out")}
        first_next = await client.call("graph.neighbors", {"node_id": a, "edge_types": ["next"]})
        assert [n["node"]["id"] for n in first_next["neighbors"]] == [m]  # a→b was replaced
        mara = await client.call("graph.entity", {"name": "my sister"})
        assert mara["entity"]["name"] == "Mara"
        assert [x["id"] for x in mara["memories"]] == [a, b]  # in the order they happened


async def test_mom_my_mother_and_helen_become_one_person_across_ingestions(
    client: PersonaClient,
) -> None:
    await client.call("memory.ingest", {"content": "Mom called me about the weekend."})
    await client.call("memory.ingest", {"content": "Helen bakes the best bread in Porto."})
    joined = await client.call("memory.ingest", {"content": "My mother Helen turns 70 soon."})
    assert [e["name"] for e in joined["entities"] if e["kind"] == "person"] == ["Helen"]
    for name in ("Mom", "my mother", "Helen", "helen", "my mom"):
        found = await client.call("graph.entity", {"name": name})
        assert found["entity"]["name"] == "Helen", name
        assert found["entity"]["relation"] == "mother"
        assert len(found["memories"]) == 3
    entity = (await client.call("graph.entity", {"name": "Mom"}))["entity"]
    assert {"Mom", "my mother"} <= set(entity["aliases"])
    with pytest.raises(RpcError) as missing:
        await client.call("graph.entity", {"name": "Zebedee"})
    assert missing.value.code == -32001


async def test_search_with_expand_follows_edges_and_says_which_brought_each_hit(
    client: PersonaClient,
) -> None:
    await client.call("memory.ingest", {"content": "My friend Tomas moved to Oslo last year."})
    await client.call("memory.ingest", {"content": "The bakery on my street closed."})
    await client.call("memory.ingest", {"content": "Tomas sent me a postcard of a fjord."})
    plain = await client.call("memory.search", {"query": "Oslo"})
    assert plain["results"][0]["memory"]["content"] == "My friend Tomas moved to Oslo last year."
    assert not any("postcard" in r["memory"]["content"] for r in plain["results"])
    assert plain["results"][0]["via"] is None
    expanded = await client.call("memory.search", {"query": "Oslo", "expand": True})
    contents = [r["memory"]["content"] for r in expanded["results"]]
    assert contents[0] == "My friend Tomas moved to Oslo last year."
    postcard = next(r for r in expanded["results"] if "postcard" in r["memory"]["content"])
    assert postcard["via"]["edge_type"] == "mentions"
    assert postcard["via"]["entity"] == "Tomas"
    assert postcard["via"]["from_id"] == expanded["results"][0]["memory"]["id"]
    assert postcard["score"] < expanded["results"][0]["score"]
    by_entity = await client.call(
        "memory.search", {"query": "Oslo", "expand": True, "memory_type": "psyche"}
    )
    assert by_entity["results"] == []  # expanded hits obey the filters too


async def test_a_correction_supersedes_and_a_deleted_memory_takes_its_edges_along(
    client: PersonaClient,
) -> None:
    old = await client.call("memory.store", {"content": "My sister Mara lives in Lisbon."})
    new = await client.call("memory.store", {"content": "Mara moved to Porto."})
    assert new["superseded"] == [old["memory"]["id"]]
    around = await client.call("graph.neighbors", {"node_id": new["memory"]["id"]})
    assert [(n["edge_type"], n["node"]["id"]) for n in around["neighbors"]] == [
        ("supersedes", old["memory"]["id"])
    ]
    ingested = await client.call("memory.ingest", {"content": "I met Ingrid in Bergen."})
    ingrid = next(e for e in ingested["entities"] if e["name"] == "Ingrid")
    await client.call("memory.delete", {"memory_id": ingested["memories"][0]["id"]})
    with pytest.raises(RpcError) as gone:
        await client.call("graph.neighbors", {"node_id": ingrid["id"]})
    assert gone.value.code == -32001  # its only mention went, so the entity did too
    with pytest.raises(RpcError):
        await client.call("graph.entity", {"name": "Ingrid"})


async def test_pruned_memories_leave_the_graph_and_come_back_with_restore(
    client: PersonaClient,
) -> None:
    await client.call(
        "memory.store_batch",
        {"memories": [{"content": f"Protected note {i}", "importance": 0.9} for i in range(12)]},
    )
    ingested = await client.call(
        "memory.ingest", {"content": "I played chess with Boris in Riga. I love chess."}
    )
    ids = [m["id"] for m in ingested["memories"]]
    pruned = await client.call("memory.prune", {"strategy": "importance_only", "target_count": 12})
    assert set(ids) <= set(pruned["pruned_ids"])
    boris = await client.call("graph.entity", {"name": "Boris"})
    assert boris["memories"] == []  # archived with its memories, not forgotten
    await client.call("memory.restore", {"prune_run_id": pruned["prune_run_id"]})
    boris = await client.call("graph.entity", {"name": "Boris"})
    assert [m["id"] for m in boris["memories"]] == ids[:1]
    around = await client.call("graph.neighbors", {"node_id": ids[1]})
    assert ("relates_to", ids[0]) in [
        (n["edge_type"], n["node"]["id"]) for n in around["neighbors"]
    ]


async def test_a_pruned_run_of_episodes_is_bridged_in_the_chain_and_restored_into_it(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data")

    async def following(client: PersonaClient, node: str) -> list[str]:
        out = await client.call("graph.neighbors", {"node_id": node, "edge_types": ["next"]})
        return [n["node"]["id"] for n in out["neighbors"] if n["direction"] == "out"]

    async with serve(settings) as server, server.client() as client:
        await client.call(
            "memory.store_batch",
            {"memories": [{"content": f"Kept note {i}", "importance": 0.9} for i in range(12)]},
        )
        days = {"lighthouse": 0.7, "ferry": 0.1, "market": 0.1, "harbour": 0.1, "cliffs": 0.7}
        stored = await client.call(
            "memory.store_batch",
            {
                "memories": [
                    {"content": f"We walked to the {place} today.", "memory_type": "episode",
                     "importance": importance, "occurred_at": f"2026-05-0{i + 1}T10:00:00Z"}
                    for i, (place, importance) in enumerate(days.items())
                ]
            },
        )  # fmt: skip
        chain = [m["id"] for m in stored["memories"]]
        for here, there in itertools.pairwise(chain):
            assert await following(client, here) == [there]
        pruned = await client.call(
            "memory.prune", {"strategy": "importance_only", "target_count": 14}
        )
        assert set(pruned["pruned_ids"]) == set(chain[1:4])
        assert await following(client, chain[0]) == [chain[4]]  # one edge over the run
        found = await client.call("memory.search", {"query": "walked to the market"})
        assert chain[2] not in [r["memory"]["id"] for r in found["results"]]
        with pytest.raises(RpcError):
            await client.call("graph.neighbors", {"node_id": chain[2]})
    async with serve(settings) as server, server.client() as client:
        assert await following(client, chain[0]) == [chain[4]]
        await client.call("memory.restore", {"prune_run_id": pruned["prune_run_id"]})
        for here, there in itertools.pairwise(chain):
            assert await following(client, here) == [there]
        found = await client.call("memory.search", {"query": "walked to the market"})
        assert found["results"][0]["memory"]["id"] == chain[2]


async def test_successive_prunes_in_small_batches_hide_edges_and_restores_rejoin_the_chain(
    tmp_path: Path,
) -> None:
    """Pruned memories' edges stay hidden in place: a later prune (taking its memories in
    batches of one) bridges over episodes archived before, the graph's readers never show
    an archived end, and each restore shows its memories' edges again."""
    settings = make_settings(tmp_path / "data")

    async def following(client: PersonaClient, node: str) -> list[str]:
        out = await client.call("graph.neighbors", {"node_id": node, "edge_types": ["next"]})
        return [n["node"]["id"] for n in out["neighbors"] if n["direction"] == "out"]

    async def chain_from(client: PersonaClient, node: str) -> list[str]:
        out = [node]
        while nxt := await following(client, out[-1]):
            assert len(nxt) == 1
            out.append(nxt[0])
        return out

    async with serve(settings) as server, server.client() as client:
        await client.call("memory.set_pruning_config", {"auto_prune": False, "batch_size": 1})
        await client.call(
            "memory.store_batch",
            {"memories": [{"content": f"Kept note {i}", "importance": 0.9} for i in range(10)]},
        )
        e = []
        places = ["river", "harbour", "old mill", "lighthouse", "market", "castle"]
        for day, importance in enumerate([0.9, 0.6, 0.2, 0.3, 0.4, 0.9]):
            ingested = await client.call(
                "memory.ingest",
                {"content": f"I walked the dog with Marta to the {places[day]}.",
                 "occurred_at": f"2026-05-0{day + 1}T10:00:00Z"},
            )  # fmt: skip
            [memory] = ingested["memories"]
            assert memory["memory_type"] == "episode"
            await client.call(
                "memory.update", {"memory_id": memory["id"], "importance": importance}
            )
            e.append(memory["id"])
        assert await chain_from(client, e[0]) == e
        mentions = (await client.call("graph.entity", {"name": "Marta"}))["entity"]["mentions"]
        first = await client.call(
            "memory.prune", {"strategy": "importance_only", "target_count": 15}
        )
        assert first["pruned_ids"] == [e[2]]
        second = await client.call(
            "memory.prune", {"strategy": "importance_only", "target_count": 13}
        )
        assert set(second["pruned_ids"]) == {e[3], e[4]}
        assert await chain_from(client, e[0]) == [e[0], e[1], e[5]]
        marta = await client.call("graph.entity", {"name": "Marta"})
        assert marta["entity"]["mentions"] == mentions - 3
        assert {m["id"] for m in marta["memories"]} == {e[0], e[1], e[5]}
        stats = await client.call("memory.stats", {})
        assert stats["graph"]["edges"]["next"] == 2  # e0 -> e1 -> e5
        assert stats["graph"]["edges"]["mentions"] == 3
    async with serve(settings) as server, server.client() as client:
        assert await chain_from(client, e[0]) == [e[0], e[1], e[5]]
        await client.call("memory.restore", {"prune_run_id": first["prune_run_id"]})
        assert await chain_from(client, e[0]) == [e[0], e[1], e[2], e[5]]
        await client.call("memory.restore", {"prune_run_id": second["prune_run_id"]})
        assert await chain_from(client, e[0]) == e
        marta = await client.call("graph.entity", {"name": "Marta"})
        assert marta["entity"]["mentions"] == mentions
        assert [m["id"] for m in marta["memories"]][-6:] == e


async def test_an_episode_restored_after_a_new_one_took_its_place_leads_only_to_that_one(
    client: PersonaClient,
) -> None:
    async def following(node: str) -> list[str]:
        out = await client.call("graph.neighbors", {"node_id": node, "edge_types": ["next"]})
        return [n["node"]["id"] for n in out["neighbors"] if n["direction"] == "out"]

    def episode(place: str, day: int, importance: float) -> dict[str, Any]:
        return {"content": f"We walked to the {place} today.", "memory_type": "episode",
                "importance": importance, "occurred_at": f"2026-05-0{day}T10:00:00Z"}  # fmt: skip

    await client.call("memory.set_pruning_config", {"auto_prune": False})
    await client.call(
        "memory.store_batch",
        {"memories": [{"content": f"Kept note {i}", "importance": 0.9} for i in range(10)]},
    )
    stored = await client.call(
        "memory.store_batch",
        {"memories": [episode("bay", 1, 0.9), episode("mill", 3, 0.1), episode("dam", 5, 0.9)]},
    )
    a, m, n = (x["id"] for x in stored["memories"])
    pruned = await client.call("memory.prune", {"strategy": "importance_only", "target_count": 12})
    assert pruned["pruned_ids"] == [m]
    assert await following(a) == [n]
    x = (await client.call("memory.store_batch", {"memories": [episode("fort", 4, 0.9)]}))[
        "memories"
    ][0]["id"]
    assert (await following(a), await following(x)) == ([x], [n])
    await client.call("memory.restore", {"prune_run_id": pruned["prune_run_id"]})
    # m's own link from before its prune (to n) is gone: the chain is a, m, x, n.
    assert [await following(node) for node in (a, m, x)] == [[m], [x], [n]]


async def test_rag_query_answers_from_memory_with_context_naming_the_entity(
    client: PersonaClient,
) -> None:
    await client.call("memory.ingest", {"content": DIARY})
    await client.call("memory.ingest", {"content": "Mom says she is moving to Porto."})
    result = await client.call("rag.query", {"query": "Where is my mother moving?"})
    assert result["model"] == "offline"
    assert "Porto" in result["answer"]
    assert "<known_entities>" in result["context"]
    assert "Helen (person, the user's mother" in result["context"]
    assert result["memories"][0]["memory"]["content"] == "Mom says she is moving to Porto."
    assert "Helen" in [e["name"] for e in result["entities"]]


async def test_without_a_recognizer_ingestion_reads_capitalised_names_by_rule(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data")
    app = App(settings, recognizer=NoRecognizer())
    async with serve(settings, app) as server, server.client() as client:
        result = await client.call(
            "memory.ingest", {"content": "I had lunch with Priya in Madrid."}
        )
    assert result["extractor"] == "rules"
    assert {e["name"] for e in result["entities"]} == {"Priya", "Madrid"}


# -- ask and ingestion with a language model ----------------------------------------------


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(models=["llama3.1:8b"]) as server:
        yield server


async def test_ask_answers_json_valid_against_the_schema_through_an_openai_server(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    fake_llm.structured = lambda schema, messages: {
        "name": "Helen", "relation": "mother", "cities": ["Lisbon", "Porto"],
    }  # fmt: skip
    settings = make_settings(
        tmp_path / "data", llm_provider="openai", openai_base_url=fake_llm.openai_url
    )
    async with serve(settings) as server, server.client() as client:
        await client.call("memory.store", {"content": "My mother Helen lives in Lisbon."})
        result = await client.call(
            "ask",
            {"query": "Who is my mother and where does she live?", "output_schema": ANSWER_SCHEMA},
        )
    assert result["answer"] == {
        "name": "Helen",
        "relation": "mother",
        "cities": ["Lisbon", "Porto"],
    }
    assert len(result["memory_ids"]) == 1
    sent = fake_llm.last("/v1/chat/completions").json
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == ANSWER_SCHEMA
    assert "Helen lives in Lisbon" in sent["messages"][0]["content"]
    assert "not instructions" in sent["messages"][0]["content"]


async def test_ask_with_ollama_sends_the_schema_as_format_and_wraps_a_non_object_schema(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    settings = make_settings(tmp_path / "data", llm_provider="ollama", ollama_host=fake_llm.url)
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 2}
    async with serve(settings) as server, server.client() as client:
        result = await client.call("ask", {"query": "List two things", "output_schema": schema})
    assert isinstance(result["answer"], list) and len(result["answer"]) == 2
    sent = fake_llm.last("/api/chat").json
    assert sent["format"]["properties"]["answer"] == schema
    assert sent["stream"] is False


async def test_ask_refuses_a_bad_schema_and_an_answer_that_does_not_match_it(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    settings = make_settings(
        tmp_path / "data", llm_provider="openai", openai_base_url=fake_llm.openai_url
    )
    fake_llm.structured = lambda schema, messages: {"name": 7}
    async with serve(settings) as server, server.client() as client:
        with pytest.raises(RpcError) as bad_schema:
            await client.call("ask", {"query": "Who?", "output_schema": {"type": "no-such-type"}})
        assert bad_schema.value.code == -32602
        assert bad_schema.value.data["errors"][0]["field"] == "output_schema"
        with pytest.raises(RpcError) as bad_answer:
            await client.call("ask", {"query": "Who?", "output_schema": ANSWER_SCHEMA})
        assert bad_answer.value.code == -32005
        assert "does not match the schema" in bad_answer.value.message


async def test_ask_without_a_language_model_says_what_to_configure(client: PersonaClient) -> None:
    with pytest.raises(RpcError) as error:
        await client.call("ask", {"query": "Who am I?", "output_schema": ANSWER_SCHEMA})
    assert error.value.code == -32005
    for setting in ("LLM_PROVIDER", "OLLAMA_HOST", "OPENAI_BASE_URL", "LLAMA_MODEL_PATH"):
        assert setting in error.value.message


async def test_ingest_with_a_model_uses_its_structured_extraction(
    tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    fake_llm.structured = lambda schema, messages: {
        "memories": [
            {"type": "episode", "kind": "event", "content": "Went sailing with Mom.",
             "entities": ["Mom"], "days_ago": 2},
            {"type": "goal", "kind": "goal", "content": "Learn to sail.", "entities": []},
            {"type": "goal", "kind": "task", "content": "Book a sailing course.",
             "entities": [], "part_of": 1},
        ],
        "entities": [
            {"name": "Helen", "kind": "person", "relation": "mother", "aliases": ["Mom"]},
        ],
        "relations": [],
    }  # fmt: skip
    settings = make_settings(
        tmp_path / "data", llm_provider="openai", openai_base_url=fake_llm.openai_url
    )
    async with serve(settings) as server, server.client() as client:
        result = await client.call("memory.ingest", {"content": "Sailing with mom two days ago..."})
        assert result["extractor"] == "llm:openai"
        assert [m["memory_type"] for m in result["memories"]] == ["episode", "goal", "goal"]
        task, goal = result["memories"][2]["id"], result["memories"][1]["id"]
        assert (task, goal) in links(result, "part_of")
        assert (await client.call("graph.entity", {"name": "my mother"}))["entity"][
            "name"
        ] == "Helen"
        fake_llm.fail_status = 500
        fallback = await client.call("memory.ingest", {"content": "I met Olga in Kyiv."})
    assert fallback["extractor"] == "rules+spacy"
    assert "HTTP 500" in fallback["fallback_reason"]
    sent = fake_llm.requests_to("/v1/chat/completions")[0].json
    assert sent["response_format"]["json_schema"]["name"] == "answer"


# -- users and the MCP door ---------------------------------------------------------------


async def test_user_delete_needs_confirmation_and_removes_everything_of_the_user(
    server: RunningServer, client: PersonaClient
) -> None:
    await client.call("memory.ingest", {"content": DIARY})
    with pytest.raises(RpcError) as unconfirmed:
        await client.call("user.delete", {})
    assert unconfirmed.value.code == -32602
    deleted = await client.call("user.delete", {"confirm": True})
    assert deleted["removed"]["personas"] == 2
    assert deleted["removed"]["graph_entities"] == 3

    def count(conn: sqlite3.Connection) -> int:
        return sum(
            conn.execute(f"SELECT count(*) FROM {t} WHERE user_id = 'default'").fetchone()[0]
            for t in ("personas", "memories", "graph_entities", "graph_edges", "graph_aliases")
        )

    assert await server.app.db.read(count) == 0
    created = await client.call("user.create")
    assert created["created"] is True
    assert [p["name"] for p in created["personas"]] == ["Aria", "Kira"]


async def test_the_graph_operations_work_over_mcp(server: RunningServer) -> None:
    async with Client(f"{server.http_url}/mcp", mode="auto") as mcp:
        ingested = await mcp.call_tool("memory.ingest", {"content": DIARY})
        assert ingested.is_error is False
        assert {m["memory_type"] for m in ingested.structured_content["memories"]} == {
            "episode", "psyche", "goal",
        }  # fmt: skip
        entity = await mcp.call_tool("graph.entity", {"name": "my mother"})
        assert entity.structured_content["entity"]["name"] == "Helen"
        rag = await mcp.call_tool("rag.query", {"query": "Who is Helen?"})
        assert "Helen" in rag.structured_content["context"]
        asked = await mcp.call_tool("ask", {"query": "Who?", "output_schema": ANSWER_SCHEMA})
        assert asked.is_error is True
        assert "LLM_PROVIDER" in asked.content[0].text
