"""The one interface every language-model provider implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

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

    async def list_models(self) -> list[ModelInfo]: ...

    async def health(self) -> ProviderHealth: ...

    async def resolve(self) -> LLMProvider:
        """The provider that would serve a request now (itself, except for `auto`)."""
        ...

    async def aclose(self) -> None: ...
