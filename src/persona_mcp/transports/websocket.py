"""The WebSocket JSON-RPC door at /mcp: one session per connection.

A raw ASGI endpoint (no per-message wrapper objects): it accepts the connection, opens a
session, then answers messages in order until the client leaves. Messages larger than
MAX_MESSAGE_BYTES never reach it: the WebSocket layer closes that one connection with
1009 (see `ws_max_size` where the server is configured).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Receive, Scope, Send

from persona_mcp.app import App
from persona_mcp.operations.registry import CallContext
from persona_mcp.transports.edge import SUBPROTOCOL, principal_of
from persona_mcp.transports.jsonrpc import JsonRpcDispatcher, notification
from persona_mcp.transports.security import request_allowed

log = logging.getLogger(__name__)


class ClientGone(Exception):
    """The peer disconnected while we were sending."""


class WebSocketDoor:
    def __init__(self) -> None:
        self._dispatcher = JsonRpcDispatcher()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: App = scope["app"].state.persona_app
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        if not request_allowed(scope, app.settings):
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        principal = principal_of(scope, app)
        await send({"type": "websocket.accept", "subprotocol": scope.get(SUBPROTOCOL)})
        session = await app.sessions.open(principal.user_id, "websocket")
        app.connections += 1

        async def push(method: str, params: dict[str, Any]) -> None:
            await _send_text(send, notification(method, params))

        ctx = CallContext(app=app, session=session, principal=principal, notify=push)
        try:
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                raw = event.get("text")
                if raw is None:
                    raw = event.get("bytes") or b""
                reply = await self._dispatcher.handle(raw, ctx)
                await app.sessions.touch(session)
                if reply is not None:
                    await _send_text(send, reply)
        except ClientGone:
            pass
        finally:
            app.connections -= 1
            await app.sessions.close(session)


async def _send_text(send: Send, payload: bytes) -> None:
    try:
        await send({"type": "websocket.send", "text": payload.decode()})
    except OSError as exc:  # includes uvicorn's ClientDisconnected
        raise ClientGone from exc
