"""A persona that truly remembers: formation, recall, corrections, duplicates, pins and
explained recall, through the WebSocket door with the offline responder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from persona_mcp.app import App
from persona_mcp.client import PersonaClient
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.memory import formation
from tests.conftest import make_settings, serve

SMALL_TALK_AND_FACTS = [
    "hi Kira!",
    "How are you today?",
    "My sister Mara lives in Lisbon.",
    "ok",
    "What do you think about rainy weather?",
    "I am allergic to peanuts.",
    "cool, thanks",
    "My dog is called Pepper.",
]


async def chat(client: PersonaClient, message: str) -> dict[str, Any]:
    return dict(await client.call("persona.chat", {"message": message, "persona_id": "Kira"}))


async def all_memories(client: PersonaClient) -> list[dict[str, Any]]:
    listed = await client.call("memory.list", {"persona_id": "Kira", "limit": 500})
    return list(listed["memories"])


def test_questions_and_filler_leave_no_memory_and_statements_do() -> None:
    assert formation.form("ok").statement is None
    assert formation.form("What am I allergic to?").statement is None
    assert formation.form("thanks!!").statement is None
    mixed = formation.form("I moved to Porto last year. Do you like Porto?")
    assert mixed.statement == "I moved to Porto last year."


def test_corrections_are_told_from_additions() -> None:
    assert formation.contradicts("Mara moved to Porto", "My sister Mara lives in Lisbon")
    assert formation.contradicts("My car is blue", "My car is red", cosine=0.8)
    assert formation.contradicts("I now work at Meta", "I work at Google")
    assert formation.contradicts(
        "Sorry, I got that wrong: Tom studies geology in Boulder, not Denver.",
        "My brother Tom studies geology in Denver.",
    )
    assert formation.contradicts(
        "Actually, it's the Manchester half marathon, not York.",
        "I'm training for the York half marathon in April.",
    )
    assert not formation.contradicts("I like cats, not dogs.", "I have two dogs.")
    assert not formation.contradicts(
        "I'm not sure about the York race.", "I'm training for the York half marathon."
    )
    assert not formation.contradicts("Tom studies geology", "Tom works at the museum")
    assert not formation.contradicts("I love jazz", "I love hiking")
    assert not formation.contradicts("My sister works at a bank", "My sister lives in Lisbon")
    assert not formation.contradicts("I am a nurse", "I am allergic to peanuts", cosine=0.2)


async def test_facts_told_among_small_talk_are_used_now_and_after_a_restart(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    settings = make_settings(tmp_path / "data")
    async with (
        serve(settings, App(settings, embedder=minilm)) as server,
        server.client() as client,
    ):
        for message in SMALL_TALK_AND_FACTS:
            await chat(client, message)
        same = await chat(client, "Where does my sister live?")
        assert "Lisbon" in same["response"]
        assert any("Lisbon" in m["content"] for m in same["memories_used"])
        assert same["memories_used"][0]["source"]["speaker"] == "user"
        kept = [m["content"] for m in await all_memories(client)]
    # Only the statements became memories: no question, greeting or filler.
    assert sorted(kept) == sorted(
        ["My sister Mara lives in Lisbon.", "I am allergic to peanuts.", "My dog is called Pepper."]
    )
    async with (
        serve(settings, App(settings, embedder=minilm)) as server,
        server.client() as client,
    ):
        await client.call("conversation.start", {"persona_id": "Kira"})
        later = await chat(client, "What am I allergic to?")
        assert "peanuts" in later["response"]
        dog = await chat(client, "Do you remember my dog's name?")
        assert "Pepper" in dog["response"]
        for reply in (later, dog):
            for question in ("How are you today?", "What do you think about rainy"):
                assert question not in reply["response"]
            assert "“ok”" not in reply["response"]


async def test_an_unknown_fact_is_not_guessed(mclient: PersonaClient) -> None:
    reply = await chat(mclient, "What is my favourite colour?")
    assert "not guess" in reply["response"] or "will not guess" in reply["response"]
    assert reply["model"] == "offline"


async def test_a_correction_supersedes_and_the_reply_uses_the_new_fact(
    mclient: PersonaClient,
) -> None:
    await chat(mclient, "Mara lives in Lisbon.")
    await chat(mclient, "By the way, Mara moved to Porto.")
    reply = await chat(mclient, "Where does Mara live now?")
    assert "Porto" in reply["response"]
    assert "Lisbon" not in reply["response"]
    memories = await all_memories(mclient)
    old = next(m for m in memories if "Lisbon" in m["content"])
    new = next(m for m in memories if "Porto" in m["content"])
    assert old["superseded_by"] == new["id"]
    history = await mclient.call("memory.history", {"memory_id": new["id"]})
    assert [m["content"] for m in history["corrections"]] == ["Mara lives in Lisbon."]
    found = await mclient.call(
        "memory.search", {"query": "Where does Mara live?", "persona_id": "Kira"}
    )
    assert found["results"][0]["memory"]["id"] == new["id"]


async def test_a_correction_naming_the_wrong_value_supersedes_it(mclient: PersonaClient) -> None:
    await chat(mclient, "I'm training for the York half marathon in April.")
    await chat(mclient, "Actually, it's the Manchester half marathon, not York.")
    memories = await all_memories(mclient)
    old = next(m for m in memories if m["content"].startswith("I'm training"))
    new = next(m for m in memories if "Manchester" in m["content"])
    assert old["superseded_by"] == new["id"]
    reply = await chat(mclient, "Which half marathon am I training for?")
    assert "Manchester" in reply["response"]


async def test_small_talk_gets_a_friendly_answer_not_a_refusal(mclient: PersonaClient) -> None:
    reply = await chat(mclient, "Hi Kira, how are you today?")
    assert "guess" not in reply["response"]
    assert "kira" not in reply["response"].lower().split("(offline")[0]
    assert "thank" in reply["response"].lower()


async def test_asked_about_a_relative_the_persona_answers_with_the_correction(
    mclient: PersonaClient,
) -> None:
    await chat(mclient, "My brother Tomas lives in Oslo and builds boats.")
    await chat(mclient, "Actually, Tomas moved to Bergen in May.")
    reply = await chat(mclient, "What do you remember about my brother?")
    assert "Bergen" in reply["response"]
    assert "Oslo" not in reply["response"]


async def test_where_the_user_lives_is_answered_by_where_they_moved(
    mclient: PersonaClient,
) -> None:
    await chat(mclient, "Last month I moved to York for a new job.")
    reply = await chat(mclient, "Where do I live now?")
    assert "York" in reply["response"]


async def test_a_stored_correction_names_what_it_superseded(mclient: PersonaClient) -> None:
    first = await mclient.call("memory.store", {"content": "I work at Google."})
    second = await mclient.call("memory.store", {"content": "I now work at Meta."})
    assert second["superseded"] == [first["memory"]["id"]]
    assert second["deduplicated"] is False


async def test_a_duplicate_statement_leaves_one_memory_and_reinforces_it(
    mclient: PersonaClient,
) -> None:
    first = await mclient.call("memory.store", {"content": "My favourite tea is jasmine."})
    again = await mclient.call("memory.store", {"content": "my favourite tea is jasmine"})
    assert again["deduplicated"] is True
    assert again["memory"]["id"] == first["memory"]["id"]
    assert again["memory"]["access_count"] == first["memory"]["access_count"] + 1
    await chat(mclient, "My favourite tea is jasmine!")
    contents = [m["content"].lower() for m in await all_memories(mclient)]
    assert sum("jasmine" in c for c in contents) == 1


async def test_importance_separates_filler_from_a_bereavement(mclient: PersonaClient) -> None:
    ok = await mclient.call("memory.store", {"content": "ok"})
    loss = await mclient.call(
        "memory.store", {"content": "My mother died yesterday and I am devastated"}
    )
    wedding = await mclient.call("memory.store", {"content": "We are getting married in June!"})
    assert ok["memory"]["importance"] < 0.3
    assert loss["memory"]["importance"] - ok["memory"]["importance"] >= 0.2
    assert loss["memory"]["importance"] >= 0.7
    assert wedding["memory"]["importance"] >= 0.6
    assert loss["memory"]["importance_breakdown"]["factors"]["context"] > 0.5


async def test_a_pinned_memory_survives_decay_and_prune(mclient: PersonaClient) -> None:
    persona = (await mclient.call("persona.create", {"name": "Pinner"}))["persona"]["id"]
    items = [{"content": f"passing note {i} of the day", "importance": 0.3} for i in range(30)]
    stored = await mclient.call("memory.store_batch", {"persona_id": persona, "memories": items})
    pinned = stored["memories"][0]
    await mclient.call("memory.pin", {"memory_id": pinned["id"]})
    await mclient.call("memory.decay_force", {"persona_id": persona, "hours": 500, "rate": 0.5})
    after = (await mclient.call("memory.get", {"memory_id": pinned["id"]}))["memory"]
    assert after["importance"] == pinned["importance"]
    assert after["pinned"] is True
    pruned = await mclient.call("memory.prune", {"persona_id": persona, "target_count": 0})
    assert pruned["pruned_count"] > 0
    assert pinned["id"] not in pruned["pruned_ids"]
    assert (await mclient.call("memory.get", {"memory_id": pinned["id"]}))["memory"]["pinned"]
    await mclient.call("memory.unpin", {"memory_id": pinned["id"]})
    assert not (await mclient.call("memory.get", {"memory_id": pinned["id"]}))["memory"]["pinned"]


async def test_every_hit_explains_why_it_was_recalled(mclient: PersonaClient) -> None:
    await chat(mclient, "My sister Mara lives in Lisbon.")
    found = await mclient.call("memory.search", {"query": "sister Lisbon", "persona_id": "Kira"})
    hit = found["results"][0]
    why = hit["why"]
    assert set(why) >= {"lexical", "semantic", "neighbour", "date", "importance", "recency"}
    assert set(why["matched_terms"]) == {"sister", "lisbon"}
    assert why["source"]["speaker"] == "user" and why["source"]["turn_number"] == 1
    assert why["lexical"] > 0 and why["semantic"] > 0


async def test_twenty_turns_on_one_topic_leave_no_unearned_protection(
    mclient: PersonaClient,
) -> None:
    for i in range(10):
        await mclient.call("memory.store", {"content": f"Fact {i} about my garden: plant {i}."})
    returned: set[str] = set()
    for i in range(20):
        reply = await chat(mclient, f"Tell me about my garden plants, part {i}?")
        returned |= {m["id"] for m in reply["memories_used"]}
    for memory in await all_memories(mclient):
        if memory["access_count"] >= 8:
            assert memory["id"] in returned


async def test_edits_keep_their_history_and_lists_page_with_a_cursor(
    mclient: PersonaClient,
) -> None:
    stored = await mclient.call("memory.store", {"content": "The spare key is under the mat."})
    memory_id = stored["memory"]["id"]
    await mclient.call(
        "memory.update", {"memory_id": memory_id, "content": "The spare key is in the shed."}
    )
    history = await mclient.call("memory.history", {"memory_id": memory_id})
    assert history["memory"]["content"] == "The spare key is in the shed."
    assert [v["content"] for v in history["versions"]] == ["The spare key is under the mat."]
    found = await mclient.call("memory.search", {"query": "where is the spare key shed"})
    assert found["results"][0]["memory"]["id"] == memory_id
    for i in range(5):
        await mclient.call("memory.store", {"content": f"List item {i}: a distinct thing {i}"})
    first = await mclient.call("memory.list", {"limit": 4})
    second = await mclient.call("memory.list", {"limit": 4, "cursor": first["next_cursor"]})
    ids = [m["id"] for m in first["memories"] + second["memories"]]
    assert len(ids) == len(set(ids)) == 6
    assert second["next_cursor"] is None
    budget = await mclient.call("memory.search", {"query": "distinct thing", "max_tokens": 12})
    assert 1 <= len(budget["results"]) < 5
