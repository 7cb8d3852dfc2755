"""Ollama's HTTP API: /api/chat (streamed as NDJSON), /api/tags, /api/version."""

from __future__ import annotations

import json
from typing import Any

import httpx

from persona_mcp.errors import Unavailable
from persona_mcp.llm.base import (
    ChatRequest,
    ChatResult,
    LLMProvider,
    ModelInfo,
    OnDelta,
    ProviderHealth,
    StructuredResult,
    parse_structured,
    schema_validator,
)
from persona_mcp.providers import http_client


def _model_missing(response: httpx.Response) -> bool:
    """Whether a 404 says the model is missing (not that the address is wrong)."""
    text = _error_text(response).lower()
    return ("model" in text and ("not found" in text or "does not exist" in text)) or (
        "model_not_found" in response.text
    )


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message", err))
        if err:
            return str(err)
    return response.text[:200]


class OllamaProvider:
    name = "ollama"

    def __init__(
        self,
        host: str,
        default_model: str,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        self.default_model = default_model
        self._client = http_client(self.host, timeout, transport=transport)

    def _unavailable(self, exc: Exception) -> Unavailable:
        return Unavailable(
            f"Ollama at {self.host} is not reachable ({type(exc).__name__}); "
            "start it with `ollama serve` or choose another LLM provider",
            {"provider": self.name, "address": self.host},
        )

    def _raise_for(self, response: httpx.Response, model: str) -> None:
        if response.status_code == 404 and model and _model_missing(response):
            raise Unavailable(
                f"Ollama has no model {model!r}: {_error_text(response)}; "
                f"pull it with `ollama pull {model}`",
                {"provider": self.name, "model": model},
            )
        if response.status_code >= 400:
            raise Unavailable(
                f"Ollama answered HTTP {response.status_code}: {_error_text(response)}",
                {"provider": self.name, "status": response.status_code},
            )

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        return await self._chat(request, on_delta)

    async def generate_json(self, request: ChatRequest, schema: dict[str, Any]) -> StructuredResult:
        """Ollama's structured output: the schema goes as `format` and constrains the
        answer; the answer is parsed and checked against the schema."""
        validator = schema_validator(schema)
        result = await self._chat(request, None, output_format=schema)
        value = parse_structured(result.text, validator, self.name, result.model)
        return StructuredResult(value=value, result=result)

    async def _chat(
        self,
        request: ChatRequest,
        on_delta: OnDelta | None,
        output_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        model = request.model or self.default_model
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": on_delta is not None,
        }
        if output_format is not None:
            body["format"] = output_format
        if request.temperature is not None:
            body["options"] = {"temperature": request.temperature}
        try:
            if on_delta is None:
                response = await self._client.post("/api/chat", json=body)
                self._raise_for(response, model)
                data = response.json()
                return ChatResult(
                    text=data.get("message", {}).get("content", ""),
                    model=data.get("model", model),
                    provider=self.name,
                    tokens_used=int(data.get("prompt_eval_count", 0))
                    + int(data.get("eval_count", 0)),
                )
            parts: list[str] = []
            final: dict[str, Any] = {}
            async with self._client.stream("POST", "/api/chat", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for(response, model)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    chunk = json.loads(line)
                    if chunk.get("error"):
                        raise Unavailable(f"Ollama failed mid-answer: {chunk['error']}")
                    piece = chunk.get("message", {}).get("content", "")
                    if piece:
                        parts.append(piece)
                        await on_delta(piece)
                    if chunk.get("done"):
                        final = chunk
                        break
            if not final:
                raise Unavailable(
                    "Ollama's answer ended before it was complete",
                    {"provider": self.name, "address": self.host},
                )
            return ChatResult(
                text="".join(parts),
                model=final.get("model", model),
                provider=self.name,
                tokens_used=int(final.get("prompt_eval_count", 0))
                + int(final.get("eval_count", 0)),
            )
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"Ollama did not answer in time ({type(exc).__name__})",
                {"provider": self.name, "address": self.host},
            ) from exc
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from exc
        except ValueError as exc:
            raise Unavailable(
                "Ollama sent a reply that is not valid JSON",
                {"provider": self.name, "address": self.host},
            ) from exc

    async def list_models(self) -> list[ModelInfo]:
        try:
            response = await self._client.get("/api/tags", timeout=5.0)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from exc
        self._raise_for(response, "")
        return [
            ModelInfo(
                name=m.get("name") or m.get("model", ""),
                size=m.get("size"),
                modified_at=m.get("modified_at"),
                family=(m.get("details") or {}).get("family"),
            )
            for m in response.json().get("models", [])
        ]

    async def health(self) -> ProviderHealth:
        try:
            response = await self._client.get("/api/version", timeout=2.0)
        except httpx.TransportError as exc:
            return ProviderHealth(
                self.name, False, f"not reachable ({type(exc).__name__})", self.host
            )
        if response.status_code != 200:
            return ProviderHealth(self.name, False, f"HTTP {response.status_code}", self.host)
        version = response.json().get("version", "?")
        return ProviderHealth(self.name, True, f"Ollama {version}", self.host)

    async def resolve(self) -> LLMProvider:
        return self

    async def aclose(self) -> None:
        await self._client.aclose()
