"""The edge of the HTTP and WebSocket doors: who is calling, and whether to admit them.

An ASGI middleware in front of every route but `/health`. It resolves the principal
once per WebSocket connection or HTTP request from `Authorization: Bearer <token>` (or,
for browsers, which cannot set headers on a WebSocket, a `Sec-WebSocket-Protocol` entry
`bearer.<token>`; never from the URL) and puts it in the ASGI scope for the doors. It
answers 401 (`WWW-Authenticate: Bearer`) when a token is missing under
AUTH_MODE=required or is unknown or revoked, and refuses a WebSocket past
MAX_CONNECTIONS with 503.

A browser offering `["persona-mcp", "bearer.<token>"]` gets `persona-mcp` echoed as the
selected subprotocol (RFC 6455 needs one of the offered values echoed, and the token
itself must never be echoed into response headers).
"""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from persona_mcp.app import App
from persona_mcp.auth.principal import LOCAL, Principal
from persona_mcp.errors import Unauthenticated

log = logging.getLogger(__name__)

PRINCIPAL = "persona_mcp.principal"  # scope keys the edge sets for the doors
SUBPROTOCOL = "persona_mcp.subprotocol"
APP_SUBPROTOCOL = "persona-mcp"
BEARER_SUBPROTOCOL = "bearer."
OPEN_PATHS = frozenset({"/health"})
# The console's page and assets hold no data, and must load before a token is asked for.
OPEN_PREFIXES = ("/console/",)
OPEN_PAGES = frozenset({"/"})


def principal_of(scope: Scope, app: App) -> Principal:
    """The principal the edge resolved; without an edge only the local mode has one."""
    principal = scope.get(PRINCIPAL)
    if isinstance(principal, Principal):
        return principal
    if app.settings.auth_mode == "off":
        return LOCAL
    raise Unauthenticated("No authenticated caller")


def _open(kind: str, path: str) -> bool:
    if path in OPEN_PATHS:
        return True
    return kind == "http" and (path in OPEN_PAGES or path.startswith(OPEN_PREFIXES))


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class Edge:
    def __init__(self, asgi: ASGIApp, app: App) -> None:
        self.asgi = asgi
        self.app = app
        self.websockets = 0  # admitted, counted before any await so the cap is exact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or _open(kind, scope["path"]):
            await self.asgi(scope, receive, send)
            return
        secret = _bearer(scope)
        if kind == "websocket":
            offered = list(scope.get("subprotocols") or [])
            carried = [p for p in offered if p.startswith(BEARER_SUBPROTOCOL)]
            if secret is None and carried:
                secret = carried[0][len(BEARER_SUBPROTOCOL) :]
            if APP_SUBPROTOCOL in offered:
                scope[SUBPROTOCOL] = APP_SUBPROTOCOL
            if self.websockets >= self.app.settings.max_connections:
                self.app.metrics.refused.labels("max_connections").inc()
                await _deny(send, kind, 503, "Too many connections (MAX_CONNECTIONS)")
                return
            self.websockets += 1
        try:
            try:
                scope[PRINCIPAL] = await self.app.tokens.resolve(
                    secret, self.app.settings.auth_mode
                )
            except Unauthenticated as exc:
                self.app.metrics.refused.labels("unauthenticated").inc()
                log.info("refused %s %s: %s", kind, scope["path"], exc.message)
                await _deny(send, kind, 401, exc.message, invalid=bool(secret))
                return
            await self.asgi(scope, receive, send)
        finally:
            if kind == "websocket":
                self.websockets -= 1


async def _deny(send: Send, kind: str, status: int, message: str, invalid: bool = False) -> None:
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        challenge = 'Bearer realm="persona-mcp"' + (', error="invalid_token"' if invalid else "")
        headers.append((b"www-authenticate", challenge.encode()))
    prefix = "websocket.http" if kind == "websocket" else "http"
    await send({"type": f"{prefix}.response.start", "status": status, "headers": headers})
    body = orjson.dumps({"error": message})
    await send({"type": f"{prefix}.response.body", "body": body})
