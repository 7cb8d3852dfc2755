"""The one interface every language-model provider implements."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from persona_mcp.errors import InvalidParams, Unavailable

OnDelta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class ResponderContext:
    """What the offline responder draws on; real LLMs see the same through `messages`."""

    persona_name: str
    description: str
    personality_traits: list[str]
    user_message: str
    history: list[ChatMessage] = field(default_factory=list)
    memories: list[str] = field(default_factory=list)  # what the user said, recalled
    topics: list[str] = field(default_factory=list)
    response_type: str = "continue"
    persona_notes: list[str] = field(default_factory=list)  # the persona's own earlier words
    # A recalled correction -> the text of the memory it corrected, by which it was found.
    found_by: dict[str, str] = field(default_factory=dict)
    mood: str = ""  # one word for how the persona is ("cheerful", "tired")


@dataclass(frozen=True)
class ChatRequest:
    messages: list[ChatMessage]
    model: str | None = None
    context: ResponderContext | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class ChatResult:
    text: str
    model: str
    provider: str
    tokens_used: int


@dataclass(frozen=True)
class StructuredResult:
    """A JSON value that conforms to the schema it was asked for, and the raw answer."""

    value: Any
    result: ChatResult


@dataclass(frozen=True)
class ModelInfo:
    name: str
    size: int | None = None
    modified_at: str | None = None
    family: str | None = None


@dataclass(frozen=True)
class ProviderHealth:
    provider: str
    available: bool
    detail: str
    address: str | None = None


class LLMProvider(Protocol):
    name: str

    @property
    def default_model(self) -> str:
        """The model a request without its own `model` gets."""
        ...

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        """Answer the conversation; with `on_delta`, stream text pieces as they arrive."""
        ...

    async def generate_json(self, request: ChatRequest, schema: dict[str, Any]) -> StructuredResult:
        """Answer with a JSON value valid against `schema`, through the model's structured
        output; Unavailable when this provider has no model (the offline responder)."""
        ...

    async def list_models(self) -> list[ModelInfo]: ...

    async def health(self) -> ProviderHealth: ...

    async def resolve(self) -> LLMProvider:
        """The provider that would serve a request now (itself, except for `auto`)."""
        ...

    async def aclose(self) -> None: ...


NO_LLM = (
    "No language model is connected, and structured answers need one (the offline "
    "responder cannot write JSON to a schema). Configure one: LLM_PROVIDER=ollama with "
    "OLLAMA_HOST (default http://localhost:11434), LLM_PROVIDER=openai with OPENAI_BASE_URL "
    "(and OPENAI_API_KEY), or LLM_PROVIDER=llamacpp with LLAMA_MODEL_PATH (a GGUF file); "
    "with LLM_PROVIDER=auto, start Ollama or set LLAMA_MODEL_PATH"
)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def schema_validator(schema: dict[str, Any], field_name: str = "schema") -> Any:
    """A jsonschema validator for `schema` (its own draft, 2020-12 when it names none);
    -32602 naming `field_name` when the schema itself is not valid."""
    import jsonschema  # imported on use: the server starts without it loaded

    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidParams.field(field_name, f"is not a valid JSON Schema: {exc.message}") from exc
    return validator_class(schema)


def parse_structured(text: str, validator: Any, provider: str, model: str) -> Any:
    """The JSON value in a model's structured answer, checked against the schema;
    Unavailable (the model failed, not the caller) when it is not valid JSON or does not
    match."""
    fenced = _FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except json.JSONDecodeError as exc:
        raise Unavailable(
            f"The model's answer is not valid JSON ({exc.msg})",
            {"provider": provider, "model": model},
        ) from exc
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        raise Unavailable(
            f"The model's JSON answer does not match the schema at {where}: {errors[0].message}",
            {"provider": provider, "model": model},
        )
    return value
