"""`auto`: Ollama when it answers, else a configured local GGUF model, else the offline
responder; decided per request."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from persona_mcp.clock import Clock
from persona_mcp.errors import Unavailable
from persona_mcp.llm.base import (
    NO_LLM,
    ChatRequest,
    ChatResult,
    LLMProvider,
    ModelInfo,
    OnDelta,
    ProviderHealth,
    StructuredResult,
)
from persona_mcp.llm.llamacpp import LlamaCppProvider
from persona_mcp.llm.offline import OfflineProvider
from persona_mcp.llm.ollama import OllamaProvider

log = logging.getLogger(__name__)


class AutoProvider:
    name = "auto"

    def __init__(
        self,
        ollama: OllamaProvider,
        offline: OfflineProvider,
        clock: Clock,
        ttl: float = 5.0,
        local: LlamaCppProvider | None = None,
    ) -> None:
        self.ollama = ollama
        self.offline = offline
        self.local = local
        self._clock = clock
        self._ttl = ttl
        self._checked_at: float | None = None
        self._last: ProviderHealth | None = None
        self._lock = asyncio.Lock()

    @property
    def default_model(self) -> str:
        return self.ollama.default_model

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

    def _local_usable(self) -> bool:
        if self.local is None or not self.local.usable():
            return False
        # Loaded only once auto first needs it: with Ollama up, the GGUF costs no memory.
        self.local.start_loading()
        return True

    async def _candidates(self) -> list[LLMProvider]:
        """The providers to try, best first; the offline responder always comes last."""
        chain: list[LLMProvider] = []
        if (await self._ollama_health()).available:
            chain.append(self.ollama)
        if self._local_usable():
            assert self.local is not None
            chain.append(self.local)
        chain.append(self.offline)
        return chain

    async def resolve(self) -> LLMProvider:
        return (await self._candidates())[0]

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        chain = await self._candidates()
        for provider in chain[:-1]:
            sent: list[str] = []

            async def relay(piece: str, sent: list[str] = sent) -> None:
                sent.append(piece)
                if on_delta is not None:
                    await on_delta(piece)

            try:
                return await provider.generate(request, relay if on_delta else None)
            except Unavailable as exc:
                # The provider failed under us: try the next one rather than fail, unless
                # text already reached the client (a mixed answer would be worse than an
                # error) or Ollama lacks the model asked for (a fix the user must make).
                if provider is self.ollama:
                    self._forget()
                    if (exc.data or {}).get("model"):
                        raise
                if sent:
                    raise
                log.warning("%s failed (%s); trying the next provider", provider.name, exc.message)
        return await chain[-1].generate(request, on_delta)

    async def generate_json(self, request: ChatRequest, schema: dict[str, Any]) -> StructuredResult:
        """Structured output from the first model that answers; the offline responder
        cannot write to a schema, so with no model this is Unavailable, saying what to set."""
        chain = (await self._candidates())[:-1]
        last: Unavailable | None = None
        for provider in chain:
            try:
                return await provider.generate_json(request, schema)
            except Unavailable as exc:
                if provider is self.ollama:
                    self._forget()
                    if (exc.data or {}).get("model"):
                        raise
                last = exc
                log.warning("%s failed (%s); trying the next provider", provider.name, exc.message)
        if last is not None:
            raise last
        raise Unavailable(NO_LLM, {"provider": self.name})

    async def list_models(self) -> list[ModelInfo]:
        return await (await self.resolve()).list_models()

    async def health(self) -> ProviderHealth:
        ollama = await self._ollama_health()
        if ollama.available:
            return ProviderHealth(self.name, True, f"using ollama: {ollama.detail}", ollama.address)
        if self._local_usable():
            assert self.local is not None
            local = await self.local.health()
            return ProviderHealth(
                self.name,
                True,
                f"using llamacpp: {local.detail} (ollama {ollama.detail})",
                local.address,
            )
        why_not_local = ""
        if self.local is not None:
            why_not_local = f"; llamacpp: {(await self.local.health()).detail}"
        return ProviderHealth(
            self.name,
            True,
            f"using offline responder (ollama {ollama.detail}{why_not_local})",
            ollama.address,
        )

    async def aclose(self) -> None:
        await self.ollama.aclose()
        if self.local is not None:
            await self.local.aclose()
