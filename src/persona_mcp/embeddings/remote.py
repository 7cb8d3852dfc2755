"""Embeddings from a server: Ollama (/api/embed) or OpenAI-compatible (/embeddings)."""

from __future__ import annotations

from typing import Any

import httpx

from persona_mcp.embeddings.base import Vectors, normalize
from persona_mcp.errors import Unavailable
from persona_mcp.providers import http_client


class _RemoteEmbedder:
    name = "remote"
    path = ""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._dim: int | None = None
        self._client = http_client(self.base_url, timeout, api_key, transport)

    @property
    def ready(self) -> bool:
        return True

    @property
    def dim(self) -> int | None:
        return self._dim

    async def start(self) -> None:
        return None

    def _vectors(self, body: dict[str, Any]) -> list[list[float]]:
        raise NotImplementedError

    async def embed(self, texts: list[str]) -> Vectors:
        try:
            response = await self._client.post(
                self.path, json={"model": self.model, "input": texts}
            )
        except httpx.TransportError as exc:
            raise Unavailable(
                f"The {self.name} embedding server at {self.base_url} is not reachable "
                f"({type(exc).__name__})",
                {"provider": self.name},
            ) from exc
        if response.status_code >= 400:
            raise Unavailable(
                f"The {self.name} embedding server answered HTTP {response.status_code}: "
                f"{response.text[:200]}",
                {"provider": self.name, "model": self.model},
            )
        vectors = normalize(self._vectors(response.json()))
        if len(vectors) != len(texts):
            raise Unavailable(f"The {self.name} embedding server returned the wrong count")
        self._dim = int(vectors.shape[1])
        return vectors

    def status(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": self.model,
            "ready": True,
            "dim": self._dim,
            "address": self.base_url,
        }

    async def aclose(self) -> None:
        await self._client.aclose()


class OllamaEmbedder(_RemoteEmbedder):
    name = "ollama"
    path = "/api/embed"

    def _vectors(self, body: dict[str, Any]) -> list[list[float]]:
        return list(body.get("embeddings", []))


class OpenAIEmbedder(_RemoteEmbedder):
    name = "openai"
    path = "/embeddings"

    def _vectors(self, body: dict[str, Any]) -> list[list[float]]:
        items = sorted(body.get("data", []), key=lambda d: d.get("index", 0))
        return [item["embedding"] for item in items]
