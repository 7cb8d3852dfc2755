"""Host and Origin checks shared by every HTTP and WebSocket door.

Bound to loopback (the default), the server answers only requests addressed to a
loopback name, which defeats DNS rebinding, and only browser origins on loopback.
Requests without an Origin header (non-browser clients) are allowed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import Scope

from persona_mcp.config import Settings

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def host_allowed(host: str | None, settings: Settings) -> bool:
    if not settings.is_loopback:
        return True  # an explicit remote bind; authentication guards it
    if host is None:
        return True  # HTTP/1.0 clients; the socket itself is loopback-only
    name = _hostname(host.strip().lower())
    return name in LOOPBACK_NAMES or name.startswith("127.")


def origin_allowed(origin: str | None, settings: Settings) -> bool:
    if origin is None:
        return True
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return False
    name = parts.hostname
    if name in LOOPBACK_NAMES or name.startswith("127."):
        return True
    return not settings.is_loopback and name == _hostname(settings.server_host.lower())


def request_allowed(scope: Scope, settings: Settings) -> bool:
    return host_allowed(_header(scope, b"host"), settings) and origin_allowed(
        _header(scope, b"origin"), settings
    )
