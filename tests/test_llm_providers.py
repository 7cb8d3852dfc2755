"""The real LLM providers against a fake Ollama / OpenAI-compatible server, over real HTTP.

Nothing inside the providers is patched: each test points a provider at
`fakes.llm_server.FakeLLMServer` (127.0.0.1, ephemeral port) and checks both what the
provider returns and what it put on the wire.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from persona_mcp.clock import ManualClock
from persona_mcp.config import Settings
from persona_mcp.errors import Unavailable
from persona_mcp.llm import build_provider
from persona_mcp.llm.auto import AutoProvider
from persona_mcp.llm.base import ChatMessage, ChatRequest, ResponderContext
from persona_mcp.llm.offline import OFFLINE_MODEL, OFFLINE_NOTICE, OfflineProvider
from persona_mcp.llm.ollama import OllamaProvider
from persona_mcp.llm.openai_compat import OpenAICompatProvider
from tests.fakes.llm_server import FakeLLMServer, FakeModel, fake_embedding, unused_port

pytestmark = pytest.mark.timeout(20)

MODEL = "llama3.1:8b"
SYSTEM = "You are Aria, a bard."  # 5 words
USER = "hello there"  # 2 words
REPLY = "echo: hello there"
PIECES = ["echo: ", "hello ", "there"]
PROMPT_TOKENS = 7  # the fake counts the words of every message
COMPLETION_TOKENS = len(PIECES)  # ... and one token per streamed piece
TTL = 5.0


def chat(
    user: str = USER, model: str | None = None, temperature: float | None = None
) -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage("system", SYSTEM), ChatMessage("user", user)],
        model=model,
        temperature=temperature,
    )


class Deltas:
    """An `on_delta` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    async def __call__(self, piece: str) -> None:
        self.pieces.append(piece)


def nothing_listens() -> str:
    return f"http://127.0.0.1:{unused_port()}"


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fake(shared_fake: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The module's fake server, back to its defaults and with no recorded requests."""
    shared_fake.reset()
    yield shared_fake
    shared_fake.reset()  # also ends any artificial delay a test left running


@pytest.fixture
def own_fake() -> Iterator[FakeLLMServer]:
    """A fake server of the test's own, for tests that stop it."""
    server = FakeLLMServer()
    yield server
    server.stop()


@pytest.fixture
async def ollama(fake: FakeLLMServer) -> AsyncIterator[OllamaProvider]:
    provider = OllamaProvider(fake.url, MODEL, timeout=5.0)
    yield provider
    await provider.aclose()


@pytest.fixture
async def openai(fake: FakeLLMServer) -> AsyncIterator[OpenAICompatProvider]:
    provider = OpenAICompatProvider(fake.openai_url, MODEL, timeout=5.0)
    yield provider
    await provider.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


# -- Ollama -----------------------------------------------------------------------------


async def test_ollama_answers_in_one_piece_with_text_model_and_token_counts(
    fake: FakeLLMServer, ollama: OllamaProvider
) -> None:
    result = await ollama.generate(chat())

    assert result.text == REPLY
    assert result.model == MODEL
    assert result.provider == "ollama"
    assert result.tokens_used == PROMPT_TOKENS + COMPLETION_TOKENS
    sent = fake.last("/api/chat")
    assert sent.method == "POST"
    # Ollama streams unless told otherwise, so a one-piece answer must say so.
    assert sent.json["stream"] is False
    assert sent.json["model"] == MODEL
    assert sent.json["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
    ]
    assert "options" not in sent.json


async def test_ollama_sends_the_temperature_and_a_requested_model(
    fake: FakeLLMServer, ollama: OllamaProvider
) -> None:
    fake.models = [MODEL, "qwen2.5:0.5b"]

    result = await ollama.generate(chat(model="qwen2.5:0.5b", temperature=0.3))

    assert result.model == "qwen2.5:0.5b"
    sent = fake.last("/api/chat").json
    assert sent["model"] == "qwen2.5:0.5b"
    assert sent["options"] == {"temperature": 0.3}


async def test_ollama_streams_chunks_in_order_and_reports_token_counts(
    fake: FakeLLMServer, ollama: OllamaProvider
) -> None:
    deltas = Deltas()

    result = await ollama.generate(chat(), on_delta=deltas)

    assert deltas.pieces == PIECES
    assert "".join(deltas.pieces) == result.text == REPLY
    assert result.model == MODEL
    assert result.tokens_used == PROMPT_TOKENS + COMPLETION_TOKENS
    assert fake.last("/api/chat").json["stream"] is True


async def test_ollama_lists_installed_models_with_size_and_family(
    fake: FakeLLMServer, ollama: OllamaProvider
) -> None:
    fake.models = [FakeModel("llama3.1:8b", size=4_920_753_328), FakeModel("qwen2.5", "qwen2")]

    models = await ollama.list_models()

    assert [m.name for m in models] == ["llama3.1:8b", "qwen2.5:latest"]
    assert models[0].size == 4_920_753_328
    assert [m.family for m in models] == ["llama", "qwen2"]
    assert all(m.modified_at for m in models)
    assert fake.last("/api/tags").method == "GET"


async def test_ollama_health_reports_the_running_version(ollama: OllamaProvider) -> None:
    health = await ollama.health()

    assert health.available is True
    assert health.provider == "ollama"
    assert "0.9.0" in health.detail
    assert health.address == ollama.host


async def test_ollama_health_is_unavailable_when_nothing_listens() -> None:
    host = nothing_listens()
    provider = OllamaProvider(host, MODEL, timeout=1.0)
    try:
        health = await provider.health()
    finally:
        await provider.aclose()

    assert health.available is False
    assert "not reachable" in health.detail
    assert health.address == host


@pytest.mark.parametrize("streamed", [False, True], ids=["one-piece", "streamed"])
async def test_ollama_generate_is_unavailable_and_says_how_to_start_it_when_nothing_listens(
    streamed: bool,
) -> None:
    provider = OllamaProvider(nothing_listens(), MODEL, timeout=1.0)
    try:
        with pytest.raises(Unavailable, match="ollama serve"):
            await provider.generate(chat(), Deltas() if streamed else None)
    finally:
        await provider.aclose()


@pytest.mark.parametrize("streamed", [False, True], ids=["one-piece", "streamed"])
async def test_ollama_unknown_model_is_unavailable_and_suggests_ollama_pull(
    fake: FakeLLMServer, ollama: OllamaProvider, streamed: bool
) -> None:
    deltas = Deltas()

    with pytest.raises(Unavailable) as caught:
        await ollama.generate(chat(model="mistral:7b"), deltas if streamed else None)

    assert "ollama pull mistral:7b" in caught.value.message
    assert "not found" in caught.value.message  # Ollama's own words are kept
    assert caught.value.data == {"provider": "ollama", "model": "mistral:7b"}
    assert deltas.pieces == []


async def test_ollama_answer_slower_than_the_timeout_is_unavailable(
    fake: FakeLLMServer,
) -> None:
    fake.delay = 3.0
    provider = OllamaProvider(fake.url, MODEL, timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable, match="did not answer in time"):
            await provider.generate(chat())
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 2.0


async def test_ollama_stream_that_stalls_longer_than_the_timeout_is_unavailable(
    fake: FakeLLMServer,
) -> None:
    fake.chunk_delay = 3.0
    provider = OllamaProvider(fake.url, MODEL, timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable, match="did not answer in time"):
            await provider.generate(chat(), Deltas())
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 2.0


async def test_ollama_server_error_is_unavailable_with_status_and_message(
    fake: FakeLLMServer, ollama: OllamaProvider
) -> None:
    fake.fail_status = 500

    with pytest.raises(Unavailable) as caught:
        await ollama.generate(chat())

    assert "HTTP 500" in caught.value.message
    assert "llama runner process has terminated" in caught.value.message
    assert caught.value.data == {"provider": "ollama", "status": 500}


async def test_ollama_error_line_mid_stream_is_unavailable_after_the_pieces_so_far(
    fake: FakeLLMServer, ollama: OllamaProvider
) -> None:
    fake.error_after = 1
    deltas = Deltas()

    with pytest.raises(Unavailable, match="failed mid-answer"):
        await ollama.generate(chat(), deltas)

    assert deltas.pieces == PIECES[:1]


async def test_ollama_connection_dropped_mid_stream_is_unavailable(
    fake: FakeLLMServer, ollama: OllamaProvider
) -> None:
    fake.drop_after = 2
    deltas = Deltas()

    with pytest.raises(Unavailable, match="not reachable"):
        await ollama.generate(chat(), deltas)

    assert deltas.pieces == PIECES[:2]


async def test_ollama_stream_that_ends_without_done_is_unavailable(
    fake: FakeLLMServer, ollama: OllamaProvider
) -> None:
    fake.truncate_after = 1

    with pytest.raises(Unavailable):
        await ollama.generate(chat(), Deltas())


# -- OpenAI-compatible ------------------------------------------------------------------


async def test_openai_answers_in_one_piece_with_total_tokens_from_usage(
    fake: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    result = await openai.generate(chat(temperature=0.7))

    assert result.text == REPLY
    assert result.model == MODEL
    assert result.provider == "openai"
    assert result.tokens_used == PROMPT_TOKENS + COMPLETION_TOKENS
    sent = fake.last("/v1/chat/completions")
    assert sent.json["stream"] is False
    assert "stream_options" not in sent.json
    assert sent.json["temperature"] == 0.7
    assert sent.json["messages"][0] == {"role": "system", "content": SYSTEM}
    assert "authorization" not in sent.headers


async def test_openai_streams_deltas_in_order_and_takes_usage_from_the_final_chunk(
    fake: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    deltas = Deltas()

    result = await openai.generate(chat(), on_delta=deltas)

    assert deltas.pieces == PIECES
    assert "".join(deltas.pieces) == result.text == REPLY
    assert result.model == MODEL
    assert result.tokens_used == PROMPT_TOKENS + COMPLETION_TOKENS
    sent = fake.last("/v1/chat/completions").json
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_openai_sends_the_api_key_as_a_bearer_token(fake: FakeLLMServer) -> None:
    fake.api_key = "sk-test-123"
    provider = OpenAICompatProvider(fake.openai_url, MODEL, api_key="sk-test-123", timeout=5.0)
    try:
        result = await provider.generate(chat())
        models = await provider.list_models()
    finally:
        await provider.aclose()

    assert result.text == REPLY
    assert [m.name for m in models] == [m.name for m in fake.models]
    assert {r.headers["authorization"] for r in fake.requests} == {"Bearer sk-test-123"}


@pytest.mark.parametrize("key", ["sk-wrong", None], ids=["wrong-key", "no-key"])
@pytest.mark.parametrize("streamed", [False, True], ids=["one-piece", "streamed"])
async def test_openai_refused_api_key_is_unavailable_and_names_the_setting(
    fake: FakeLLMServer, key: str | None, streamed: bool
) -> None:
    fake.api_key = "sk-right"
    provider = OpenAICompatProvider(fake.openai_url, MODEL, api_key=key, timeout=5.0)
    deltas = Deltas()
    try:
        with pytest.raises(Unavailable, match="OPENAI_API_KEY") as caught:
            await provider.generate(chat(), deltas if streamed else None)
        health = await provider.health()
    finally:
        await provider.aclose()

    assert caught.value.data == {"provider": "openai", "status": 401}
    assert deltas.pieces == []
    assert health.available is False
    assert health.detail == "HTTP 401"


async def test_openai_lists_models_by_id(fake: FakeLLMServer, openai: OpenAICompatProvider) -> None:
    fake.models = ["gpt-4o-mini", "text-embedding-3-small"]

    models = await openai.list_models()

    assert [m.name for m in models] == ["gpt-4o-mini", "text-embedding-3-small"]
    assert fake.last("/v1/models").method == "GET"


async def test_openai_health_is_available_when_models_answer(
    openai: OpenAICompatProvider,
) -> None:
    health = await openai.health()

    assert health.available is True
    assert health.provider == "openai"
    assert health.address == openai.base_url


async def test_openai_health_is_unavailable_when_nothing_listens() -> None:
    provider = OpenAICompatProvider(f"{nothing_listens()}/v1", MODEL, timeout=1.0)
    try:
        health = await provider.health()
        with pytest.raises(Unavailable, match="not reachable"):
            await provider.generate(chat())
    finally:
        await provider.aclose()

    assert health.available is False
    assert "not reachable" in health.detail


async def test_openai_unknown_model_is_unavailable_with_the_server_message(
    openai: OpenAICompatProvider,
) -> None:
    with pytest.raises(Unavailable, match="does not exist") as caught:
        await openai.generate(chat(model="gpt-5-imaginary"))

    assert caught.value.data == {"provider": "openai", "model": "gpt-5-imaginary"}


async def test_openai_server_error_is_unavailable_with_the_status(
    fake: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    fake.fail_status = 503

    with pytest.raises(Unavailable, match="HTTP 503") as caught:
        await openai.generate(chat(), Deltas())

    assert caught.value.data == {"provider": "openai", "status": 503}


async def test_openai_answer_slower_than_the_timeout_is_unavailable(
    fake: FakeLLMServer,
) -> None:
    fake.delay = 3.0
    provider = OpenAICompatProvider(fake.openai_url, MODEL, timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable, match="did not answer in time"):
            await provider.generate(chat())
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 2.0


async def test_openai_connection_dropped_mid_stream_is_unavailable(
    fake: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    fake.drop_after = 1
    deltas = Deltas()

    with pytest.raises(Unavailable, match="not reachable"):
        await openai.generate(chat(), deltas)

    assert deltas.pieces == PIECES[:1]


async def test_openai_error_event_mid_stream_is_unavailable(
    fake: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    fake.error_after = 1

    with pytest.raises(Unavailable):
        await openai.generate(chat(), Deltas())


async def test_openai_stream_that_ends_without_done_is_unavailable(
    fake: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    fake.truncate_after = 1

    with pytest.raises(Unavailable):
        await openai.generate(chat(), Deltas())


# -- auto -----------------------------------------------------------------------------


async def test_auto_answers_offline_when_ollama_is_down(clock: ManualClock) -> None:
    auto = AutoProvider(
        OllamaProvider(nothing_listens(), MODEL, timeout=1.0), OfflineProvider(), clock, ttl=TTL
    )
    deltas = Deltas()
    try:
        assert await auto.resolve() is auto.offline
        result = await auto.generate(chat(), deltas)
        health = await auto.health()
        models = await auto.list_models()
    finally:
        await auto.aclose()

    assert result.provider == "offline"
    assert result.model == OFFLINE_MODEL
    assert result.text.startswith(OFFLINE_NOTICE)
    assert "".join(deltas.pieces) == result.text
    assert health.available is True
    assert "offline" in health.detail
    assert [m.name for m in models] == [OFFLINE_MODEL]


async def test_auto_uses_ollama_when_it_is_up(fake: FakeLLMServer, clock: ManualClock) -> None:
    auto = AutoProvider(OllamaProvider(fake.url, MODEL, timeout=5.0), OfflineProvider(), clock)
    deltas = Deltas()
    try:
        assert await auto.resolve() is auto.ollama
        result = await auto.generate(chat(), deltas)
        health = await auto.health()
    finally:
        await auto.aclose()

    assert result.provider == "ollama"
    assert result.text == REPLY
    assert deltas.pieces == PIECES
    assert health.available is True
    assert health.detail == "using ollama: Ollama 0.9.0"
    # One probe served every call above: the answer is kept for the TTL.
    assert len(fake.requests_to("/api/version")) == 1


async def test_auto_notices_ollama_starting_later_once_the_ttl_has_elapsed(
    clock: ManualClock,
) -> None:
    port = unused_port()
    auto = AutoProvider(
        OllamaProvider(f"http://127.0.0.1:{port}", MODEL, timeout=5.0),
        OfflineProvider(),
        clock,
        ttl=TTL,
    )
    try:
        assert await auto.resolve() is auto.offline
        async with FakeLLMServer(port=port) as late:
            clock.advance(TTL - 0.5)
            assert await auto.resolve() is auto.offline  # the cached "down" still holds
            assert late.requests == []

            clock.advance(0.5)
            assert await auto.resolve() is auto.ollama
            result = await auto.generate(chat())
    finally:
        await auto.aclose()

    assert result.provider == "ollama"
    assert result.text == REPLY


async def test_auto_falls_back_to_offline_when_ollama_dies_before_any_text(
    own_fake: FakeLLMServer, clock: ManualClock
) -> None:
    await own_fake.astart()
    auto = AutoProvider(
        OllamaProvider(own_fake.url, MODEL, timeout=5.0), OfflineProvider(), clock, ttl=TTL
    )
    deltas = Deltas()
    try:
        assert await auto.resolve() is auto.ollama
        await own_fake.astop()  # gone, while the probe's "up" is still cached

        result = await auto.generate(chat(), deltas)

        # The failure dropped the cached probe: the next request asks again, at once.
        assert await auto.resolve() is auto.offline
    finally:
        await auto.aclose()

    assert result.provider == "offline"
    assert result.text.startswith(OFFLINE_NOTICE)
    assert "".join(deltas.pieces) == result.text


async def test_auto_falls_back_to_offline_when_ollama_answers_a_server_error(
    fake: FakeLLMServer, clock: ManualClock
) -> None:
    fake.fail_status = 500
    auto = AutoProvider(
        OllamaProvider(fake.url, MODEL, timeout=5.0), OfflineProvider(), clock, ttl=TTL
    )
    try:
        result = await auto.generate(chat())
    finally:
        await auto.aclose()

    assert result.provider == "offline"
    assert len(fake.requests_to("/api/chat")) == 1


async def test_auto_raises_when_ollama_dies_after_text_was_streamed(
    fake: FakeLLMServer, clock: ManualClock
) -> None:
    fake.drop_after = 2
    auto = AutoProvider(
        OllamaProvider(fake.url, MODEL, timeout=5.0), OfflineProvider(), clock, ttl=TTL
    )
    deltas = Deltas()
    try:
        with pytest.raises(Unavailable):
            await auto.generate(chat(), deltas)
    finally:
        await auto.aclose()

    # No offline text was appended to what the client already received.
    assert deltas.pieces == PIECES[:2]


async def test_auto_reports_a_missing_model_instead_of_answering_offline(
    fake: FakeLLMServer, clock: ManualClock
) -> None:
    auto = AutoProvider(
        OllamaProvider(fake.url, "mistral:7b", timeout=5.0), OfflineProvider(), clock, ttl=TTL
    )
    try:
        with pytest.raises(Unavailable, match="ollama pull mistral:7b"):
            await auto.generate(chat())
    finally:
        await auto.aclose()


# -- offline ----------------------------------------------------------------------------


def persona_context(
    user_message: str = "Do you know any songs about the sea?", memories: list[str] | None = None
) -> ResponderContext:
    return ResponderContext(
        persona_name="Aria",
        description="A wandering bard",
        personality_traits=["poetic", "warm"],
        user_message=user_message,
        memories=memories or [],
    )


def offline_request(ctx: ResponderContext) -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage("system", SYSTEM), ChatMessage("user", ctx.user_message)],
        context=ctx,
    )


async def test_offline_reply_starts_with_the_notice_and_names_the_offline_model() -> None:
    result = await OfflineProvider().generate(offline_request(persona_context()))

    assert result.text.startswith(OFFLINE_NOTICE)
    assert result.model == "offline"
    assert result.provider == "offline"
    assert result.tokens_used > 0


async def test_offline_reply_is_deterministic_for_the_same_input() -> None:
    provider = OfflineProvider()
    request = offline_request(persona_context())

    first = await provider.generate(request)
    second = await provider.generate(request)
    other = await provider.generate(offline_request(persona_context(user_message="And wine?")))

    assert first == second
    assert other.text != first.text


async def test_offline_reply_answers_a_question_from_a_recalled_memory() -> None:
    memory = "I grew up in a lighthouse on the northern coast"
    ctx = persona_context("Where did I grow up?", memories=["I like tea.", memory])

    result = await OfflineProvider().generate(offline_request(ctx))

    assert memory in result.text
    assert "I like tea." not in result.text


async def test_offline_reply_does_not_guess_when_no_memory_answers() -> None:
    ctx = persona_context("Where did I grow up?", memories=["I like tea."])

    result = await OfflineProvider().generate(offline_request(ctx))

    assert "I like tea." not in result.text
    assert "invent" in result.text or "not make up" in result.text


async def test_offline_streams_pieces_that_join_to_the_reply() -> None:
    deltas = Deltas()

    result = await OfflineProvider().generate(offline_request(persona_context()), deltas)

    assert len(deltas.pieces) > 1
    assert "".join(deltas.pieces) == result.text


async def test_offline_is_always_healthy_and_lists_only_the_offline_model() -> None:
    provider = OfflineProvider()

    assert (await provider.health()).available is True
    assert [m.name for m in await provider.list_models()] == ["offline"]
    assert await provider.resolve() is provider


# -- build_provider ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("llm_provider", "expected"),
    [
        ("offline", OfflineProvider),
        ("ollama", OllamaProvider),
        ("openai", OpenAICompatProvider),
        ("auto", AutoProvider),
    ],
)
async def test_build_provider_returns_the_class_llm_provider_names(
    llm_provider: str, expected: type, clock: ManualClock
) -> None:
    settings = Settings(
        llm_provider=llm_provider,
        ollama_host="http://127.0.0.1:11434/",
        openai_base_url="http://127.0.0.1:8080/v1",
        default_model=MODEL,
        _env_file=None,
    )

    provider = build_provider(settings, clock)
    try:
        assert type(provider) is expected
        if isinstance(provider, AutoProvider):
            assert isinstance(provider.ollama, OllamaProvider)
            assert isinstance(provider.offline, OfflineProvider)
        if isinstance(provider, AutoProvider | OllamaProvider):
            ollama = provider.ollama if isinstance(provider, AutoProvider) else provider
            assert ollama.host == "http://127.0.0.1:11434"
            assert ollama.default_model == MODEL
        if isinstance(provider, OpenAICompatProvider):
            assert provider.base_url == "http://127.0.0.1:8080/v1"
    finally:
        await provider.aclose()


async def test_build_provider_openai_talks_to_the_configured_server_with_its_key(
    fake: FakeLLMServer, clock: ManualClock
) -> None:
    fake.api_key = "sk-configured"
    settings = Settings(
        llm_provider="openai",
        openai_base_url=fake.openai_url,
        openai_api_key="sk-configured",
        default_model=MODEL,
        _env_file=None,
    )
    provider = build_provider(settings, clock)
    try:
        result = await provider.generate(chat())
    finally:
        await provider.aclose()

    assert result.provider == "openai"
    assert result.text == REPLY
    assert fake.last("/v1/chat/completions").headers["authorization"] == "Bearer sk-configured"


async def test_build_provider_auto_reaches_the_configured_ollama(
    fake: FakeLLMServer, clock: ManualClock
) -> None:
    settings = Settings(
        llm_provider="auto", ollama_host=fake.url, default_model=MODEL, _env_file=None
    )
    provider = build_provider(settings, clock)
    try:
        result = await provider.generate(chat())
    finally:
        await provider.aclose()

    assert result.provider == "ollama"
    assert result.text == REPLY


# -- the fake itself --------------------------------------------------------------------


async def test_fake_ollama_streams_by_default_like_real_ollama(fake: FakeLLMServer) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as client:
        response = await client.post(
            "/api/chat", json={"model": "llama3.1", "messages": [{"role": "user", "content": "hi"}]}
        )

    assert response.status_code == 404  # `llama3.1` means `llama3.1:latest`
    async with httpx.AsyncClient(base_url=fake.url) as client:
        response = await client.post(
            "/api/chat", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        )

    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.text.splitlines()
    assert len(lines) == 3
    assert '"done":true' in lines[-1]


async def test_fake_embeddings_are_deterministic_unit_vectors_in_both_apis(
    fake: FakeLLMServer,
) -> None:
    fake.embedding_dim = 16
    async with httpx.AsyncClient(base_url=fake.url) as client:
        ollama = await client.post(
            "/api/embed", json={"model": "nomic-embed-text", "input": ["a", "b"]}
        )
        openai = await client.post(
            "/v1/embeddings", json={"model": "nomic-embed-text", "input": "a"}
        )

    vectors = ollama.json()["embeddings"]
    assert vectors == [fake_embedding("a", 16), fake_embedding("b", 16)]
    assert all(math.isclose(math.hypot(*v), 1.0) for v in vectors)
    body = openai.json()
    assert body["object"] == "list"
    assert body["data"] == [{"object": "embedding", "index": 0, "embedding": vectors[0]}]
