"""Any OpenAI-compatible server: /chat/completions (SSE when streamed) and /models."""

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
from persona_mcp.llm.ollama import _error_text, _model_missing
from persona_mcp.providers import http_client


class OpenAICompatProvider:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        default_model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.default_model = default_model
        self._client = http_client(self.base_url, timeout, api_key, transport)

    def _check(self, response: httpx.Response, model: str) -> None:
        if response.status_code == 404 and model and _model_missing(response):
            raise Unavailable(
                f"The OpenAI-compatible server has no model {model!r}: {_error_text(response)}",
                {"provider": self.name, "model": model},
            )
        if response.status_code == 404:
            raise Unavailable(
                f"HTTP 404 at {response.request.url}: check OPENAI_BASE_URL "
                "(it usually ends in /v1)",
                {"provider": self.name, "status": 404},
            )
        if response.status_code in (401, 403):
            raise Unavailable(
                "The OpenAI-compatible server refused the API key (set OPENAI_API_KEY)",
                {"provider": self.name, "status": response.status_code},
            )
        if response.status_code >= 400:
            raise Unavailable(
                f"The OpenAI-compatible server answered HTTP {response.status_code}: "
                f"{_error_text(response)}",
                {"provider": self.name, "status": response.status_code},
            )

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        return await self._chat(request, on_delta)

    async def generate_json(self, request: ChatRequest, schema: dict[str, Any]) -> StructuredResult:
        """Structured output through `response_format` of type `json_schema` (servers that
        implement it constrain the answer to the schema); the answer is parsed and checked
        against the schema."""
        validator = schema_validator(schema)
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": False},
        }
        result = await self._chat(request, None, response_format=response_format)
        value = parse_structured(result.text, validator, self.name, result.model)
        return StructuredResult(value=value, result=result)

    async def _chat(
        self,
        request: ChatRequest,
        on_delta: OnDelta | None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        model = request.model or self.default_model
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": on_delta is not None,
        }
        if response_format is not None:
            body["response_format"] = response_format
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if on_delta is not None:
            body["stream_options"] = {"include_usage": True}
        try:
            if on_delta is None:
                response = await self._client.post("/chat/completions", json=body)
                self._check(response, model)
                data = response.json()
                choice = (data.get("choices") or [{}])[0]
                return ChatResult(
                    text=(choice.get("message") or {}).get("content") or "",
                    model=data.get("model", model),
                    provider=self.name,
                    tokens_used=int((data.get("usage") or {}).get("total_tokens", 0)),
                )
            parts: list[str] = []
            used = 0
            answered_model = model
            finished = False
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._check(response, model)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        finished = True
                        break
                    chunk = json.loads(payload)
                    if chunk.get("error"):
                        err = chunk["error"]
                        detail = err.get("message", err) if isinstance(err, dict) else err
                        raise Unavailable(
                            f"The OpenAI-compatible server failed mid-answer: {detail}",
                            {"provider": self.name, "address": self.base_url},
                        )
                    answered_model = chunk.get("model", answered_model)
                    if chunk.get("usage"):
                        used = int(chunk["usage"].get("total_tokens", 0))
                    for choice in chunk.get("choices") or []:
                        finished = finished or bool(choice.get("finish_reason"))
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            parts.append(piece)
                            await on_delta(piece)
            if not finished:
                raise Unavailable(
                    "The OpenAI-compatible server's answer ended before it was complete",
                    {"provider": self.name, "address": self.base_url},
                )
            return ChatResult(
                text="".join(parts), model=answered_model, provider=self.name, tokens_used=used
            )
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"The OpenAI-compatible server did not answer in time ({type(exc).__name__})",
                {"provider": self.name, "address": self.base_url},
            ) from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"The OpenAI-compatible server at {self.base_url} is not reachable "
                f"({type(exc).__name__})",
                {"provider": self.name, "address": self.base_url},
            ) from exc
        except ValueError as exc:
            raise Unavailable(
                "The OpenAI-compatible server sent a reply that is not valid JSON",
                {"provider": self.name, "address": self.base_url},
            ) from exc

    async def list_models(self) -> list[ModelInfo]:
        try:
            response = await self._client.get("/models", timeout=5.0)
        except httpx.TransportError as exc:
            raise Unavailable(
                f"The OpenAI-compatible server at {self.base_url} is not reachable",
                {"provider": self.name},
            ) from exc
        self._check(response, "")
        return [ModelInfo(name=m.get("id", "")) for m in response.json().get("data", [])]

    async def health(self) -> ProviderHealth:
        try:
            response = await self._client.get("/models", timeout=2.0)
        except httpx.TransportError as exc:
            return ProviderHealth(
                self.name, False, f"not reachable ({type(exc).__name__})", self.base_url
            )
        ok = response.status_code == 200
        return ProviderHealth(
            self.name, ok, "ok" if ok else f"HTTP {response.status_code}", self.base_url
        )

    async def resolve(self) -> LLMProvider:
        return self

    async def aclose(self) -> None:
        await self._client.aclose()
