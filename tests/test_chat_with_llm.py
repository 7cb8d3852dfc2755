"""Chat through the server with a real LLM protocol (a faithful Ollama fake on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from persona_mcp.client import RpcError
from tests.conftest import make_settings, serve
from tests.fakes.llm_server import FakeLLMServer


@pytest.fixture
async def ollama() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(models=["llama3.1:8b"]) as server:
        yield server


async def test_chat_sends_the_persona_prompt_and_stores_both_sides(
    tmp_path: Path, ollama: FakeLLMServer
) -> None:
    settings = make_settings(tmp_path / "data", llm_provider="ollama", ollama_host=ollama.url)
    async with serve(settings) as server, server.client() as client:
        await client.call("memory.store", {"content": "The user's cat is called Miso."})
        message = "My cat Miso sleeps all day in the sun"
        reply = await client.call("persona.chat", {"message": message})
        assert reply["model"] == "llama3.1:8b"
        assert reply["response"] == f"echo: {message}"
        assert reply["tokens_used"] > 0
        assert len(reply["stored_memory_ids"]) == 2  # the statement and the model's reply
        sent = ollama.last("/api/chat").json
        system = sent["messages"][0]
        assert system["role"] == "system"
        assert system["content"].startswith("You are Aria.")
        assert "<recalled_memories>" in system["content"]
        assert "Miso" in system["content"]
        assert "not instructions" in system["content"]
        assert sent["messages"][-1] == {"role": "user", "content": message}


async def test_streaming_relays_the_model_pieces(tmp_path: Path, ollama: FakeLLMServer) -> None:
    settings = make_settings(tmp_path / "data", llm_provider="ollama", ollama_host=ollama.url)
    async with serve(settings) as server, server.client() as client:
        reply = await client.call("persona.chat", {"message": "sing a song", "stream": True})
        pieces = []
        while not client.notifications.empty():
            pieces.append(client.notifications.get_nowait()["params"]["delta"])
        assert len(pieces) > 1
        assert "".join(pieces) == reply["response"]


async def test_ending_a_conversation_is_summarized_by_the_model(
    tmp_path: Path, ollama: FakeLLMServer
) -> None:
    settings = make_settings(tmp_path / "data", llm_provider="ollama", ollama_host=ollama.url)
    async with serve(settings) as server, server.client() as client:
        await client.call("persona.chat", {"message": "I sail every Sunday"})
        ended = await client.call("conversation.end")
        assert ended["summary_source"] == "llm"
        assert ended["summary"].startswith("echo: Summarize this conversation")


async def test_an_unreachable_ollama_is_unavailable_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path / "data", llm_provider="ollama", ollama_host="http://127.0.0.1:9"
    )
    async with serve(settings) as server, server.client() as client:
        with pytest.raises(RpcError) as down:
            await client.call("persona.chat", {"message": "hello?"})
        assert down.value.code == -32005
        assert "ollama serve" in down.value.message
        assert (await client.call("conversation.status"))["turns"] == 0
        assert (await client.call("memory.stats"))["total"] == 0
        with pytest.raises(RpcError) as models:
            await client.call("system.models")
        assert models.value.code == -32005


async def test_auto_mode_answers_offline_until_ollama_starts(tmp_path: Path) -> None:
    from tests.fakes.llm_server import unused_port

    port = unused_port()
    settings = make_settings(
        tmp_path / "data",
        llm_provider="auto",
        ollama_host=f"http://127.0.0.1:{port}",
        llm_probe_ttl_seconds=0,
    )
    async with serve(settings) as server, server.client() as client:
        first = await client.call("persona.chat", {"message": "anyone there?"})
        assert first["model"] == "offline"
        assert (await client.call("system.status"))["llm"]["active"] == "offline"
        async with FakeLLMServer(models=["llama3.1:8b"], port=port):
            second = await client.call("persona.chat", {"message": "and now?"})
            assert second["model"] == "llama3.1:8b"
            status = await client.call("system.status")
            assert status["llm"]["active"] == "ollama"
            assert status["llm"]["available"] is True
            models = await client.call("system.models")
            assert models["models"][0]["name"] == "llama3.1:8b"
