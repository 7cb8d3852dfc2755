"""Addresses and the method list of a running server, for the command-line client.

The WebSocket door has no method listing of its own; the same server's MCP door does
(`tools/list`: every registry operation is a tool of the same name), so the list is read
there, over HTTP at the same host, port and path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL = "ws://127.0.0.1:8000/mcp"


@dataclass(frozen=True)
class Method:
    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)
    read_only: bool = False
    destructive: bool = False


def ws_url(given: str | None) -> str:
    """A WebSocket address from what a user types: `ws://h:p/mcp`, `http://h:p`, `h:p`."""
    text = (given or DEFAULT_URL).strip()
    if "://" not in text:
        text = f"ws://{text}"
    parts = urlsplit(text)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/mcp"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def http_url(ws: str) -> str:
    """The MCP HTTP address of the server a WebSocket address points at."""
    parts = urlsplit(ws)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


async def list_methods(ws: str, token: str | None) -> list[Method]:
    """Every tool of the server's MCP `tools/list`, in the server's order."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(http_url(ws), http_client=http)
        async with Client(transport, mode="legacy") as client:
            tools = []
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = getattr(page, "next_cursor", None)
                if not cursor:
                    break
    return [
        Method(
            name=t.name,
            description=t.description or "",
            input_schema=dict(t.input_schema or {}),
            read_only=bool(t.annotations and t.annotations.read_only_hint),
            destructive=bool(t.annotations and t.annotations.destructive_hint),
        )
        for t in tools
    ]
