"""How the doors are served: uvicorn's configuration, one definition for the CLI, the
tests and the benchmarks, and the HTTP protocol with a request time-out.

uvicorn closes idle keep-alive connections but has no limit on how long a client may
take to send a request: a socket that connects and sends nothing, or half a request,
stays open forever. `TimedHttpProtocol` gives every request (head and body)
REQUEST_TIMEOUT_SECONDS to arrive. WebSockets are kept honest by ping/pong: a peer that
does not answer a ping within WS_PING_TIMEOUT_SECONDS is disconnected.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from persona_mcp.config import Settings


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request does not fully
    arrive within the request time-out."""

    request_timeout: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._request_timer = self.loop.call_later(self.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _expire(self) -> None:
        self._request_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_header(self, name: bytes, value: bytes) -> None:
        """RFC 9110 section 5.5: a field value excludes leading and trailing whitespace
        (httptools keeps trailing spaces; h11 strips them)."""
        super().on_header(name, value.strip(b" \t"))

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()


def http_protocol(settings: Settings) -> type[TimedHttpProtocol]:
    """The protocol class with this server's time-out (uvicorn instantiates it)."""
    return type(
        "TimedHttpProtocol",
        (TimedHttpProtocol,),
        {"request_timeout": settings.request_timeout_seconds},
    )


def uvicorn_config(settings: Settings, asgi: Any, **overrides: Any) -> uvicorn.Config:
    values: dict[str, Any] = {
        "host": settings.server_host,
        "port": settings.server_port,
        "http": http_protocol(settings),
        "ws": "websockets-sansio",
        "ws_max_size": settings.max_message_bytes,
        "ws_per_message_deflate": False,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        "timeout_keep_alive": 5,
        "loop": "auto",
        "lifespan": "on",
        "log_level": "debug" if settings.debug_mode else "info",
        "access_log": settings.debug_mode,
        "timeout_graceful_shutdown": 5,
    }
    values.update(overrides)
    return uvicorn.Config(asgi, **values)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything slow starts, so a busy port is
    reported at once (OSError) and the server accepts as soon as the app is up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock
