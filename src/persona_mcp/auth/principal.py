"""The principal: the user a request acts for, and what it may do.

Resolved once per connection (WebSocket, stdio) or per request (HTTP) at the edge and
carried in the call context; handlers read the user from it, never from params.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from persona_mcp.errors import Forbidden

Scope = Literal["user", "admin"]
LOCAL_USER = "default"


@dataclass(frozen=True)
class Principal:
    user_id: str
    scopes: frozenset[str]
    token_id: str | None = None  # None: the unauthenticated local caller (AUTH_MODE=off)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise Forbidden(f"{what} needs admin scope", {"required_scope": "admin"})


LOCAL = Principal(LOCAL_USER, frozenset({"user", "admin"}))
