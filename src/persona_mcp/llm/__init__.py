"""Language-model providers behind one Protocol, built from the settings."""

from __future__ import annotations

from persona_mcp.clock import Clock
from persona_mcp.config import Settings
from persona_mcp.llm.auto import AutoProvider
from persona_mcp.llm.base import LLMProvider
from persona_mcp.llm.llamacpp import LlamaCppProvider
from persona_mcp.llm.offline import OfflineProvider
from persona_mcp.llm.ollama import OllamaProvider
from persona_mcp.llm.openai_compat import OpenAICompatProvider


def build_local(settings: Settings) -> LlamaCppProvider | None:
    """The in-process GGUF model LLAMA_MODEL_PATH names (not loaded yet), or None."""
    if settings.llama_model_path is None:
        return None
    return LlamaCppProvider(
        settings.llama_model_path,
        threads=settings.llama_threads,
        context_tokens=settings.llama_context_tokens,
        max_tokens=settings.llama_max_tokens,
        timeout=settings.llm_timeout_seconds,
        verbose=settings.debug_mode,
    )


def build_provider(settings: Settings, clock: Clock) -> LLMProvider:
    """The provider LLM_PROVIDER names; `auto` puts Ollama, then a configured GGUF model,
    in front of the offline responder."""
    name = settings.llm_provider
    if name == "offline":
        return OfflineProvider()
    if name == "openai":
        assert settings.openai_base_url  # checked by Settings
        return OpenAICompatProvider(
            settings.openai_base_url,
            settings.default_model,
            api_key=settings.openai_api_key,
            timeout=settings.llm_timeout_seconds,
        )
    if name == "llamacpp":
        local = build_local(settings)
        assert local is not None  # checked by Settings
        local.start_loading()  # in the background: the server starts at once
        return local
    ollama = OllamaProvider(
        settings.ollama_host, settings.default_model, timeout=settings.llm_timeout_seconds
    )
    if name == "ollama":
        return ollama
    return AutoProvider(
        ollama,
        OfflineProvider(),
        clock,
        ttl=settings.llm_probe_ttl_seconds,
        local=build_local(settings),
    )


__all__ = ["LLMProvider", "build_provider"]
