"""`auto`: Ollama when it answers, the offline responder otherwise, decided per request."""

from __future__ import annotations

import asyncio
import logging

from persona_mcp.clock import Clock
from persona_mcp.errors import Unavailable
from persona_mcp.llm.base import (
    ChatRequest,
    ChatResult,
    LLMProvider,
    ModelInfo,
    OnDelta,
    ProviderHealth,
)
from persona_mcp.llm.offline import OfflineProvider
from persona_mcp.llm.ollama import OllamaProvider

log = logging.getLogger(__name__)


class AutoProvider:
    name = "auto"

    def __init__(
        self, ollama: OllamaProvider, offline: OfflineProvider, clock: Clock, ttl: float = 5.0
    ) -> None:
        self.ollama = ollama
        self.offline = offline
        self._clock = clock
        self._ttl = ttl
        self._checked_at: float | None = None
        self._last: ProviderHealth | None = None
        self._lock = asyncio.Lock()

    async def _ollama_health(self) -> ProviderHealth:
        # A short-lived answer spares every request a probe, yet a later start of Ollama
        # (or its stop) is noticed within `ttl` seconds.
        async with self._lock:
            now = self._clock.now()
            if (
                self._last is None
                or self._checked_at is None
                or now - self._checked_at >= self._ttl
            ):
                self._last = await self.ollama.health()
                self._checked_at = now
            return self._last

    def _forget(self) -> None:
        self._checked_at = None

    async def resolve(self) -> LLMProvider:
        return self.ollama if (await self._ollama_health()).available else self.offline

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        provider = await self.resolve()
        if provider is self.offline:
            return await self.offline.generate(request, on_delta)
        sent: list[str] = []

        async def relay(piece: str) -> None:
            sent.append(piece)
            if on_delta is not None:
                await on_delta(piece)

        try:
            return await self.ollama.generate(request, relay if on_delta else None)
        except Unavailable as exc:
            # Ollama went away under us: answer offline rather than fail, unless text
            # already reached the client (a mixed answer would be worse than an error).
            self._forget()
            if sent or (exc.data or {}).get("model"):
                raise
            log.warning("Ollama failed (%s); answering offline", exc.message)
            return await self.offline.generate(request, on_delta)

    async def list_models(self) -> list[ModelInfo]:
        return await (await self.resolve()).list_models()

    async def health(self) -> ProviderHealth:
        ollama = await self._ollama_health()
        if ollama.available:
            return ProviderHealth(self.name, True, f"using ollama: {ollama.detail}", ollama.address)
        return ProviderHealth(
            self.name,
            True,
            f"using offline responder (ollama {ollama.detail})",
            ollama.address,
        )

    async def aclose(self) -> None:
        await self.ollama.aclose()
