"""Embedding providers behind one Protocol, built from the settings."""

from __future__ import annotations

from persona_mcp.config import Settings
from persona_mcp.embeddings.base import Embedder, Vectors
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.embeddings.none import NoEmbedder
from persona_mcp.embeddings.remote import OllamaEmbedder, OpenAIEmbedder


def build_embedder(settings: Settings) -> Embedder:
    name = settings.embedding_provider
    if name == "none":
        return NoEmbedder()
    if name == "ollama":
        return OllamaEmbedder(settings.ollama_host, settings.embedding_model or "nomic-embed-text")
    if name == "openai":
        assert settings.openai_base_url  # checked by Settings
        return OpenAIEmbedder(
            settings.openai_base_url,
            settings.embedding_model or "text-embedding-3-small",
            api_key=settings.openai_api_key,
        )
    return MiniLMEmbedder(int8=settings.embedding_int8, runtime=settings.embedding_runtime)


__all__ = ["Embedder", "Vectors", "build_embedder"]
