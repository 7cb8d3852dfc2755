"""Errors the services raise, each mapped to one JSON-RPC error code.

    PersonaMCPError            -32603  internal (message never carries internals)
    ├── InvalidParams          -32602  bad input; `data.errors` names each bad field
    ├── NotFound               -32001  no such persona, memory, conversation, ...
    ├── Conflict               -32002  e.g. a persona name already taken
    ├── Forbidden              -32003  unauthorized or not the caller's data
    ├── RateLimited            -32004
    └── Unavailable            -32005  a provider (LLM, embedder) cannot serve now
        └── StorageUnavailable -32005  the database cannot be read or written
                                       (disk full, read-only, I/O error, in use)

Protocol-level codes (-32700 parse error, -32600 invalid request, -32601 method not
found) belong to the JSON-RPC door and are listed here so every code lives in one place.
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = -32001
CONFLICT = -32002
FORBIDDEN = -32003
RATE_LIMITED = -32004
UNAVAILABLE = -32005
REQUEST_CANCELLED = -32800  # the WebSocket door's answer to a cancelled request (LSP's code)


class PersonaMCPError(Exception):
    """Base of every error the services raise on purpose."""

    code = INTERNAL_ERROR

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class InvalidParams(PersonaMCPError):
    code = INVALID_PARAMS

    @classmethod
    def field(cls, field: str, message: str) -> InvalidParams:
        """One bad field, in the same `data` shape as a validation failure."""
        return cls(
            f"Invalid params: {field}: {message}",
            {"errors": [{"field": field, "message": message, "type": "value_error"}]},
        )


class NotFound(PersonaMCPError):
    code = NOT_FOUND


class Conflict(PersonaMCPError):
    code = CONFLICT


class Forbidden(PersonaMCPError):
    code = FORBIDDEN


class RateLimited(PersonaMCPError):
    code = RATE_LIMITED


class Unavailable(PersonaMCPError):
    code = UNAVAILABLE


class StorageUnavailable(Unavailable):
    """The database cannot serve: the message says why (\"storage unavailable: disk full\")."""


def check_text(text: str, field: str, max_bytes: int) -> None:
    """Refuse empty or oversized text (chat messages, memories) with a clear -32602."""
    if not text.strip():
        raise InvalidParams.field(field, "must not be empty")
    size = len(text.encode())
    if size > max_bytes:
        raise InvalidParams.field(field, f"is {size} bytes; the limit is {max_bytes} bytes")
