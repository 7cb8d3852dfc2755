"""Settings: command-line flags, then environment (and `.env`), then defaults.

One immutable object built once by the CLI (or a test) and handed to the composition
root. Nothing here reads the environment at import time.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LLMProviderName = Literal["auto", "ollama", "openai", "llamacpp", "offline"]
EmbeddingProviderName = Literal["minilm", "ollama", "openai", "none"]
AuthMode = Literal["off", "required"]


def _env(*names: str) -> AliasChoices:
    """Accept the field name (for flags and code) and the seed's environment names."""
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every knob of the server. Field names double as lower-case environment names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        case_sensitive=False,
    )

    # Server
    server_host: str = Field("127.0.0.1", validation_alias=_env("server_host", "SERVER_HOST"))
    server_port: int = Field(
        8000, ge=0, le=65535, validation_alias=_env("server_port", "SERVER_PORT")
    )
    debug_mode: bool = Field(False, validation_alias=_env("debug_mode", "DEBUG_MODE"))
    auth_mode: AuthMode = Field(
        "off",
        validation_alias=_env("auth_mode", "AUTH_MODE"),
        description="off: callers without a token are the local admin `default`; "
        "required: every door needs a bearer token",
    )
    mcp_token: SecretStr | None = Field(
        None,
        validation_alias=_env("mcp_token", "PERSONA_MCP_TOKEN"),
        description="The bearer token `persona-mcp stdio` acts with",
    )
    rate_limit_per_minute: int = Field(
        600,
        ge=0,
        validation_alias=_env("rate_limit_per_minute", "RATE_LIMIT_PER_MINUTE"),
        description="Requests per minute per token (per connection when auth is off); 0: none",
    )
    max_connections: int = Field(
        10_000, ge=1, validation_alias=_env("max_connections", "MAX_CONNECTIONS")
    )
    max_personas_per_user: int = Field(
        100, ge=2, validation_alias=_env("max_personas_per_user", "MAX_PERSONAS_PER_USER")
    )
    max_memories_per_user: int = Field(
        100_000, ge=10, validation_alias=_env("max_memories_per_user", "MAX_MEMORIES_PER_USER")
    )
    max_message_bytes: int = Field(
        1024 * 1024, ge=1024, validation_alias=_env("max_message_bytes", "MAX_MESSAGE_BYTES")
    )
    max_content_bytes: int = Field(
        32 * 1024, ge=16, validation_alias=_env("max_content_bytes", "MAX_CONTENT_BYTES")
    )

    max_concurrent_requests: int = Field(
        16,
        ge=1,
        le=1024,
        validation_alias=_env("max_concurrent_requests", "MAX_CONCURRENT_REQUESTS"),
        description="Requests one WebSocket connection may have in flight at once",
    )
    max_batch_requests: int = Field(
        100, ge=1, validation_alias=_env("max_batch_requests", "MAX_BATCH_REQUESTS")
    )
    max_reply_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        validation_alias=_env("max_reply_bytes", "MAX_REPLY_BYTES"),
        description="Past this a batch's remaining requests are refused, not run",
    )
    request_timeout_seconds: float = Field(
        15.0,
        gt=0,
        validation_alias=_env("request_timeout_seconds", "REQUEST_TIMEOUT_SECONDS"),
        description="An HTTP request (head and body) must arrive within this",
    )
    ws_ping_interval_seconds: float = Field(
        20.0, gt=0, validation_alias=_env("ws_ping_interval_seconds", "WS_PING_INTERVAL_SECONDS")
    )
    ws_ping_timeout_seconds: float = Field(
        20.0, gt=0, validation_alias=_env("ws_ping_timeout_seconds", "WS_PING_TIMEOUT_SECONDS")
    )

    # Storage
    data_dir: Path = Field(Path("data"), validation_alias=_env("data_dir", "PERSONA_MCP_DATA_DIR"))
    database_path: Path | None = Field(
        None, validation_alias=_env("database_path", "DATABASE_PATH")
    )
    database_url: str | None = Field(
        None,
        validation_alias=_env("database_url", "DATABASE_URL"),
        description="A PostgreSQL URI (libpq's, e.g. postgresql://user@host/db or "
        "postgresql:///db?host=/socket/dir): the store lives there instead of SQLite",
    )

    # LLM
    llm_provider: LLMProviderName = Field(
        "auto", validation_alias=_env("llm_provider", "LLM_PROVIDER")
    )
    ollama_host: str = Field(
        "http://localhost:11434", validation_alias=_env("ollama_host", "OLLAMA_HOST")
    )
    default_model: str = Field(
        "llama3.1:8b", validation_alias=_env("default_model", "DEFAULT_MODEL")
    )
    openai_base_url: str | None = Field(
        None, validation_alias=_env("openai_base_url", "OPENAI_BASE_URL")
    )
    openai_api_key: str | None = Field(
        None, validation_alias=_env("openai_api_key", "OPENAI_API_KEY")
    )
    llm_timeout_seconds: float = Field(
        120.0, gt=0, validation_alias=_env("llm_timeout_seconds", "LLM_TIMEOUT_SECONDS")
    )
    llm_probe_ttl_seconds: float = Field(
        5.0, ge=0, validation_alias=_env("llm_probe_ttl_seconds", "LLM_PROBE_TTL_SECONDS")
    )
    llama_model_path: Path | None = Field(
        None,
        validation_alias=_env("llama_model_path", "LLAMA_MODEL_PATH"),
        description="A GGUF model file run in-process by llama.cpp (LLM_PROVIDER=llamacpp, "
        "or auto when Ollama does not answer)",
    )
    llama_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        validation_alias=_env("llama_threads", "LLAMA_THREADS"),
        description="llama.cpp threads; default half the cores (one on 2 cores)",
    )
    llama_context_tokens: int = Field(
        4096,
        ge=256,
        validation_alias=_env("llama_context_tokens", "LLAMA_CONTEXT_TOKENS"),
        description="The local model's context window: prompt and reply together",
    )
    llama_max_tokens: int = Field(
        512,
        ge=1,
        validation_alias=_env("llama_max_tokens", "LLAMA_MAX_TOKENS"),
        description="The longest reply the local model may write, in tokens",
    )

    # Embeddings
    embedding_provider: EmbeddingProviderName = Field(
        "minilm", validation_alias=_env("embedding_provider", "EMBEDDING_PROVIDER")
    )
    embedding_model: str | None = Field(
        None, validation_alias=_env("embedding_model", "EMBEDDING_MODEL")
    )

    embedding_int8: bool = Field(
        True,
        validation_alias=_env("embedding_int8", "EMBEDDING_INT8"),
        description="Run the bundled model quantized to int8: 3x faster, recall within noise",
    )
    embedding_runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        validation_alias=_env("embedding_runtime", "EMBEDDING_RUNTIME"),
        description="How the bundled model runs: ONNX Runtime (no torch in the process; "
        "'auto' uses it when `make install` exported the model) or sentence-transformers",
    )

    # Conversation
    context_messages: int = Field(
        20, ge=2, validation_alias=_env("context_messages", "MAX_CONTEXT_MESSAGES")
    )
    summary_threshold: int = Field(
        50, ge=4, validation_alias=_env("summary_threshold", "CONTEXT_SUMMARY_THRESHOLD")
    )
    session_timeout_hours: float = Field(
        24.0, gt=0, validation_alias=_env("session_timeout_hours", "SESSION_TIMEOUT_HOURS")
    )

    # MemoryOS tiers (per user and persona)
    short_term_capacity: int = Field(
        10, ge=1, le=1000, validation_alias=_env("short_term_capacity", "SHORT_TERM_CAPACITY")
    )
    mid_term_capacity: int = Field(
        2000, ge=1, validation_alias=_env("mid_term_capacity", "MID_TERM_CAPACITY")
    )
    mid_term_heat_threshold: float = Field(
        5.0, gt=0, validation_alias=_env("mid_term_heat_threshold", "MID_TERM_HEAT_THRESHOLD")
    )
    long_term_knowledge_capacity: int = Field(
        100,
        ge=1,
        validation_alias=_env("long_term_knowledge_capacity", "LONG_TERM_KNOWLEDGE_CAPACITY"),
    )

    # Memory lifecycle
    max_memories_per_persona: int = Field(
        1000, ge=10, validation_alias=_env("max_memories_per_persona", "MAX_MEMORIES_PER_PERSONA")
    )
    pruning_threshold: int = Field(
        900, ge=10, validation_alias=_env("pruning_threshold", "PRUNING_THRESHOLD")
    )
    decay_interval_hours: float = Field(
        6.0, gt=0, validation_alias=_env("decay_interval_hours", "DECAY_INTERVAL_HOURS")
    )
    background_processing: bool = Field(
        True, validation_alias=_env("background_processing", "BACKGROUND_PROCESSING")
    )

    # Chatroom
    simulate_turns: int = Field(
        0,
        ge=0,
        le=200,
        validation_alias=_env("simulate_turns", "SIMULATE_TURNS"),
        description="After start, run a chatroom of the default personas for this many turns",
    )

    @field_validator("ollama_host", "openai_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("llama_model_path", mode="before")
    @classmethod
    def _expand_home(cls, value: Any) -> Any:
        if value is None or value == "":  # LLAMA_MODEL_PATH= means "not set"
            return None
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.pruning_threshold >= self.max_memories_per_persona:
            raise ValueError("PRUNING_THRESHOLD must be below MAX_MEMORIES_PER_PERSONA")
        if self.llm_provider == "openai" and not self.openai_base_url:
            raise ValueError("LLM_PROVIDER=openai needs OPENAI_BASE_URL")
        if self.llm_provider == "llamacpp" and self.llama_model_path is None:
            raise ValueError("LLM_PROVIDER=llamacpp needs LLAMA_MODEL_PATH (a GGUF model file)")
        if self.embedding_provider == "openai" and not self.openai_base_url:
            raise ValueError("EMBEDDING_PROVIDER=openai needs OPENAI_BASE_URL")
        return self

    @property
    def db_path(self) -> Path:
        """Where the SQLite file lives: DATABASE_PATH, else `<data_dir>/persona_memory.db`."""
        return self.database_path or self.data_dir / "persona_memory.db"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_name(self.server_host)


def is_loopback_name(host: str) -> bool:
    """Exactly `localhost`, or a loopback IP address (127.0.0.0/8, ::1), parsed as one."""
    name = host.strip().lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build settings; `overrides` are flags (None means 'not given' and is dropped)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(_env_file=env_file, **given)
