"""Host and Origin checks: one allow-list for every HTTP and WebSocket door.

Bound to loopback (the default), the server answers only requests addressed to a
loopback name, which defeats DNS rebinding, and only browser origins on loopback.
Requests without an Origin header (non-browser clients) are allowed.

Names are parsed, never matched by prefix: a host is loopback when it is exactly
`localhost` or an IP address (v4 or v6) in the loopback range, so `127.evil.example`,
`127.0.0.1.nip.io` and `[::1]evil.com` are foreign. A malformed header is foreign.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persona_mcp.config import Settings, is_loopback_name


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _split_netloc(netloc: str) -> str | None:
    """The host of `host[:port]` or `[v6][:port]`, or None when the form is malformed."""
    parsed = _parse_netloc(netloc)
    return parsed[0] if parsed else None


def _parse_netloc(netloc: str) -> tuple[str, int | None] | None:
    """`(host, port or None)` of `host[:port]` or `[v6][:port]`; None when malformed."""
    if not netloc or any(c in netloc for c in "/\\?#@ \t"):
        return None
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return None
        host, rest = netloc[1:end], netloc[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, rest = netloc.partition(":")
        rest = sep + rest
    if rest and not (rest.startswith(":") and rest[1:].isdigit() and int(rest[1:]) < 65536):
        return None
    if not host:
        return None
    return host, int(rest[1:]) if rest else None


def _same_name(a: str, b: str) -> bool:
    return a.strip().lower().rstrip(".").strip("[]") == b.strip().lower().rstrip(".").strip("[]")


def host_allowed(host: str | None, settings: Settings) -> bool:
    if not settings.is_loopback:
        return True  # an explicit remote bind; authentication guards it
    if host is None:
        return True  # HTTP/1.0 clients; the socket itself is loopback-only
    name = _split_netloc(host.strip().lower())
    return name is not None and is_loopback_name(name)


def origin_allowed(origin: str | None, settings: Settings, host: str | None = None) -> bool:
    """`host`, the request's Host header: under a non-loopback bind a page of the
    server's own origin (the console, loaded from this Host) may call its doors."""
    if origin is None:
        return True
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in {"http", "https"} or parts.path or parts.query or parts.fragment:
        return False
    parsed = _parse_netloc(parts.netloc)
    if parsed is None:
        return False
    name = parsed[0]
    if is_loopback_name(name):
        return True
    if settings.is_loopback:
        return False
    return _same_name(name, settings.server_host) or _same_origin(parts.scheme, parsed, host)


DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(scheme: str, origin: tuple[str, int | None], host: str | None) -> bool:
    """Whether the Origin names the very host and port the request was addressed to."""
    target = _parse_netloc(host.strip().lower()) if host else None
    if target is None:
        return False
    default = DEFAULT_PORTS[scheme]
    return _same_name(origin[0], target[0]) and (origin[1] or default) == (target[1] or default)


def refusal(scope: Scope, settings: Settings) -> int | None:
    """None when the request may pass, else the HTTP status to refuse it with: 421 for a
    foreign Host (misdirected), 403 for a foreign Origin."""
    hosts = [v for k, v in scope.get("headers", []) if k == b"host"]
    if len(hosts) > 1 or not host_allowed(_header(scope, b"host"), settings):
        return 421  # two Host headers are ambiguous: refused, whichever a proxy reads
    if not origin_allowed(_header(scope, b"origin"), settings, _header(scope, b"host")):
        return 403
    return None


class DoorGuard:
    """ASGI middleware in front of a door: the Host/Origin allow-list for HTTP and
    WebSocket, and MAX_MESSAGE_BYTES for HTTP bodies (the WebSocket layer enforces it for
    frames), so every door refuses the same requests with the same limits."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self._app = app
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self._app(scope, receive, send)
            return
        status = refusal(scope, self._settings)
        if status is not None:
            if scope["type"] == "websocket":
                await receive()  # websocket.connect
                # Closing before accepting makes the server answer the handshake with 403.
                await send({"type": "websocket.close", "code": 1008})
            else:
                reason = "Misdirected Request" if status == 421 else "Forbidden: origin"
                await _plain(send, status, reason)
            return
        if scope["type"] == "http":
            await self._limited(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._settings.max_message_bytes
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > limit):
            await _plain(send, 413, f"Request body over the {limit}-byte limit")
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _plain(send, 413, f"Request body over the {limit}-byte limit")


class _TooLarge(Exception):
    """A chunked body passed MAX_MESSAGE_BYTES."""


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
