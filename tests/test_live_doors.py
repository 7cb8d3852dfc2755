"""Live doors: concurrent requests on one WebSocket, cancellation, and events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.events import QUEUE_SIZE, EventBus
from tests.conftest import RunningServer, make_settings, serve
from tests.fakes.llm_server import FakeLLMServer


async def recv(ws: Any) -> Any:
    return orjson.loads(await asyncio.wait_for(ws.recv(), 30))


def request(id_: int, method: str, params: dict[str, Any] | None = None) -> str:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}
    ).decode()


async def test_a_cheap_call_after_a_large_batch_store_is_answered_first(
    server: RunningServer,
) -> None:
    memories = [{"content": f"Fact number {i} about the lighthouse"} for i in range(1000)]
    async with websockets.connect(server.ws_url, max_size=None) as ws:
        await ws.send(request(1, "memory.store_batch", {"memories": memories}))
        await ws.send(request(2, "persona.list"))
        first, second = await recv(ws), await recv(ws)
    assert first["id"] == 2 and first["result"]["personas"]
    assert second["id"] == 1 and second["result"]["count"] == 1000


async def test_a_switch_holds_back_the_requests_sent_after_it(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url, max_size=None) as ws:
        await ws.send(request(1, "persona.switch", {"persona_id": "Kira"}))
        await ws.send(request(2, "memory.store", {"content": "Kira should keep this."}))
        await ws.send(request(3, "persona.chat", {"message": "Hello Kira"}))
        await ws.send(request(4, "persona.chat", {"message": "Still there?"}))
        replies = {r["id"]: r for r in [await recv(ws) for _ in range(4)]}
    kira = replies[1]["result"]["active_persona"]["id"]
    assert replies[2]["result"]["memory"]["persona_id"] == kira
    assert replies[3]["result"]["persona_id"] == kira
    assert [replies[3]["result"]["turn_number"], replies[4]["result"]["turn_number"]] == [1, 2]


async def test_a_cancelled_chat_leaves_no_half_turn(tmp_path: Path) -> None:
    async with FakeLLMServer(models=["llama3.1:8b"]) as ollama:
        ollama.chunk_delay = 0.5  # a slow model: time to cancel mid-reply
        settings = make_settings(tmp_path / "data", llm_provider="ollama", ollama_host=ollama.url)
        async with serve(settings) as server, server.client() as client:
            before = (await client.call("memory.stats"))["total"]
            async with websockets.connect(server.ws_url, max_size=None) as ws:
                params = {"message": "Tell me a long story please", "stream": True}
                await ws.send(request(9, "persona.chat", params))
                delta = await recv(ws)
                assert delta["method"] == "persona.chat.delta"
                cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled"}
                await ws.send(orjson.dumps({**cancel, "params": {"requestId": 9}}).decode())
                answer = await recv(ws)
                while "method" in answer:  # deltas already on their way
                    answer = await recv(ws)
                assert answer["id"] == 9
                assert answer["error"]["code"] == -32800
            status = await client.call("conversation.status")
            assert status["turns"] == 0
            assert (await client.call("memory.stats"))["total"] == before
            ollama.chunk_delay = 0.0
            reply = await client.call("persona.chat", {"message": "Short one, then"})
            assert reply["turn_number"] == 1


async def test_a_subscriber_hears_of_a_store_made_on_another_connection(
    server: RunningServer,
) -> None:
    async with websockets.connect(server.ws_url) as watcher, server.client() as writer:
        await watcher.send(request(1, "events.subscribe", {"topics": ["memory.changed"]}))
        subscribed = await recv(watcher)
        assert subscribed["result"]["topics"] == ["memory.changed"]
        stored = await writer.call("memory.store", {"content": "My sister lives in Lisbon."})
        event = await recv(watcher)
        assert event["method"] == "memory.changed"
        assert event["params"]["change"] == "stored"
        assert event["params"]["memory_ids"] == [stored["memory"]["id"]]
        await writer.call("memory.delete", {"memory_id": stored["memory"]["id"]})
        assert (await recv(watcher))["params"]["change"] == "deleted"


async def test_chat_turns_and_state_changes_are_events(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url) as watcher, server.client() as talker:
        topics = ["conversation.turn", "persona.state"]
        await watcher.send(request(1, "events.subscribe", {"topics": topics, "persona_id": "Kira"}))
        assert (await recv(watcher))["result"]["persona_id"]
        await talker.call("persona.chat", {"message": "Hello Aria"})  # another persona
        await talker.call("persona.chat", {"message": "Hello Kira", "persona_id": "Kira"})
        seen = {}
        for _ in range(2):
            event = await recv(watcher)
            seen[event["method"]] = event["params"]
        assert seen["conversation.turn"]["message"] == "Hello Kira"
        assert seen["persona.state"]["interaction_state"]["social_energy"] >= 0
        await watcher.send(request(2, "events.unsubscribe"))
        assert len((await recv(watcher))["result"]["unsubscribed"]) == 1


async def test_subscribing_to_an_unknown_topic_is_invalid_params(client: PersonaClient) -> None:
    with pytest.raises(RpcError) as refused:
        await client.call("events.subscribe", {"topics": ["memory.everything"]})
    assert refused.value.code == -32602


async def test_events_reach_only_the_publishing_users_subscriptions() -> None:
    bus = EventBus()
    alice, bob = (
        bus.subscribe("alice", ["memory.changed"]),
        bus.subscribe("bob", ["memory.changed"]),
    )
    bus.memory_changed("alice", "p1", ["m1"], "stored")
    event = await asyncio.wait_for(alice.next(), 1)
    assert event is not None and event.params["memory_ids"] == ["m1"]
    assert bob.delivered == 0


async def test_a_slow_subscriber_loses_events_and_blocks_nobody() -> None:
    bus = EventBus()
    slow, fast = bus.subscribe("u", ["memory.changed"]), bus.subscribe("u", ["memory.changed"])
    for i in range(QUEUE_SIZE + 10):
        bus.memory_changed("u", "p", [f"m{i}"], "stored")
        await fast.next()  # the fast consumer keeps up
    assert slow.lost == 10
    assert fast.lost == 0
    assert bus.stats()["lost"] == 10


async def test_one_event_is_serialized_once_for_every_subscriber() -> None:
    bus = EventBus()
    subs = [bus.subscribe("u", ["conversation.turn"]) for _ in range(3)]
    bus.publish("u", "conversation.turn", {"persona_id": "p", "turn_number": 1})
    events = [await s.next() for s in subs]
    assert all(e is events[0] for e in events)
    assert events[0] is not None and events[0].text is events[0].text
