"""The WebSocket JSON-RPC 2.0 door: framing, errors, batches, notifications, limits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from persona_mcp.app import App
from persona_mcp.llm.base import ChatRequest, ChatResult, ModelInfo, OnDelta, ProviderHealth
from tests.conftest import RunningServer, make_settings, serve


async def exchange(ws: Any, payload: str | bytes) -> Any:
    await ws.send(payload)
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def test_parse_error_answers_with_null_id(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url) as ws:
        reply = await exchange(ws, '{"jsonrpc": "2.0", "method": ')
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "1.0", "id": 7, "method": "persona.list"},
        {"id": 7, "method": "persona.list"},
        {"jsonrpc": "2.0", "id": 7, "method": 42},
        {"jsonrpc": "2.0", "id": 7, "method": "persona.list", "params": "all"},
    ],
)
async def test_malformed_requests_get_invalid_request_with_their_id(
    server: RunningServer, message: dict[str, Any]
) -> None:
    async with websockets.connect(server.ws_url) as ws:
        reply = await exchange(ws, json.dumps(message))
    assert reply["error"]["code"] == -32600
    assert reply["id"] == 7


async def test_non_object_and_bad_id_get_invalid_request_with_null_id(
    server: RunningServer,
) -> None:
    async with websockets.connect(server.ws_url) as ws:
        scalar = await exchange(ws, "42")
        bad_id = await exchange(ws, json.dumps({"jsonrpc": "2.0", "id": True, "method": "x"}))
    assert scalar["error"]["code"] == -32600 and scalar["id"] is None
    assert bad_id["error"]["code"] == -32600 and bad_id["id"] is None


async def test_unknown_method_gets_method_not_found(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url) as ws:
        reply = await exchange(ws, json.dumps({"jsonrpc": "2.0", "id": "a", "method": "no.such"}))
    assert reply == {
        "jsonrpc": "2.0",
        "id": "a",
        "error": {"code": -32601, "message": "Method not found: no.such"},
    }


async def test_invalid_params_name_each_bad_field(server: RunningServer) -> None:
    params = {"name": "", "topic_preferences": {"music": 3}, "colour": "red"}
    async with websockets.connect(server.ws_url) as ws:
        reply = await exchange(
            ws,
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "persona.create", "params": params}),
        )
    error = reply["error"]
    assert error["code"] == -32602
    fields = {e["field"] for e in error["data"]["errors"]}
    assert fields == {"name", "topic_preferences.music", "colour"}


async def test_positional_params_are_invalid_params(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url) as ws:
        reply = await exchange(
            ws,
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "persona.switch", "params": ["Aria"]}),
        )
    assert reply["error"]["code"] == -32602


class ExplodingLLM:
    """An LLM provider whose failure is a bug, not an Unavailable: must surface as -32603."""

    name = "exploding"

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        raise RuntimeError("secret internal detail /etc/passwd")

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def health(self) -> ProviderHealth:
        return ProviderHealth(self.name, True, "ok")

    async def resolve(self) -> ExplodingLLM:
        return self

    async def aclose(self) -> None:
        return None


async def test_internal_errors_are_reported_without_leaking_details(tmp_path: Any) -> None:
    settings = make_settings(tmp_path / "data")
    chat = {"jsonrpc": "2.0", "id": 9, "method": "persona.chat", "params": {"message": "hi"}}
    async with (
        serve(settings, App(settings, llm=ExplodingLLM())) as running,
        websockets.connect(running.ws_url) as ws,
    ):
        reply = await exchange(ws, json.dumps(chat))
        assert reply["error"] == {"code": -32603, "message": "Internal error"}
        # The connection survives and nothing half-done was stored.
        status = await exchange(
            ws, json.dumps({"jsonrpc": "2.0", "id": 10, "method": "conversation.status"})
        )
    assert status["result"]["turns"] == 0


async def test_batch_is_answered_as_one_array_without_entries_for_notifications(
    server: RunningServer,
) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "persona.list"},
        {"jsonrpc": "2.0", "method": "persona.list"},
        {"jsonrpc": "2.0", "id": 3, "method": "no.such"},
        {"jsonrpc": "2.0", "id": 4, "method": "persona.switch", "params": {"persona_id": "Kira"}},
        17,
    ]
    async with websockets.connect(server.ws_url) as ws:
        replies = await exchange(ws, json.dumps(batch))
    assert isinstance(replies, list)
    assert [r["id"] for r in replies] == [1, 3, 4, None]
    assert "result" in replies[0]
    assert replies[1]["error"]["code"] == -32601
    assert replies[2]["result"]["active_persona"]["name"] == "Kira"
    assert replies[3]["error"]["code"] == -32600


async def test_empty_batch_is_one_invalid_request(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url) as ws:
        reply = await exchange(ws, "[]")
    assert reply["error"]["code"] == -32600 and reply["id"] is None


async def test_notifications_get_no_reply(server: RunningServer) -> None:
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "persona.list"}))
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "no.such"}))
        await ws.send(json.dumps([{"jsonrpc": "2.0", "method": "persona.list"}]))
        reply = await exchange(
            ws, json.dumps({"jsonrpc": "2.0", "id": 5, "method": "persona.list"})
        )
    assert reply["id"] == 5  # the first thing the server said


async def test_oversized_message_closes_only_that_connection_with_1009(
    server: RunningServer,
) -> None:
    async with (
        websockets.connect(server.ws_url, max_size=None) as big,
        websockets.connect(server.ws_url) as bystander,
    ):
        await big.send("x" * (2 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(big.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        reply = await exchange(
            bystander, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "persona.list"})
        )
    assert len(reply["result"]["personas"]) == 2


async def test_foreign_origin_is_refused(server: RunningServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(server.ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


async def test_loopback_origin_is_accepted(server: RunningServer) -> None:
    origin = f"http://localhost:{server.port}"
    async with websockets.connect(server.ws_url, origin=origin) as ws:  # type: ignore[arg-type]
        reply = await exchange(
            ws, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "persona.list"})
        )
    assert "result" in reply


async def test_health_reports_ok(server: RunningServer) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.http_url}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
