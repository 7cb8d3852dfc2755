"""A small asyncio client for the WebSocket JSON-RPC door.

    async with PersonaClient("ws://127.0.0.1:8000/mcp") as client:
        personas = await client.call("persona.list")

Replies are matched to requests by id, so several calls may be in flight; server
notifications (such as `persona.chat.delta`) are queued on `notifications`.
"""

from __future__ import annotations

import asyncio
import itertools
from types import TracebackType
from typing import Any

import orjson
import websockets


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class PersonaClient:
    def __init__(
        self, url: str = "ws://127.0.0.1:8000/mcp", timeout: float = 60.0, token: str | None = None
    ) -> None:
        """`token`: a bearer token (`persona-mcp token create`), sent in the handshake."""
        self.url = url
        self.timeout = timeout
        self.token = token
        self.notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PersonaClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self._ws = await websockets.connect(
            self.url, max_size=None, open_timeout=self.timeout, additional_headers=headers
        )
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = orjson.loads(raw)
                for item in message if isinstance(message, list) else [message]:
                    if "id" in item and item["id"] in self._pending:
                        self._pending.pop(item["id"]).set_result(item)
                    else:
                        await self.notifications.put(item)
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            self._pending.clear()

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request; return the whole response object."""
        id_ = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[id_] = future
        payload = {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}
        await self._ws.send(orjson.dumps(payload).decode())
        return await asyncio.wait_for(future, self.timeout)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one request; return its result or raise RpcError."""
        response = await self.request(method, params)
        if "error" in response:
            err = response["error"]
            raise RpcError(err["code"], err["message"], err.get("data"))
        return response["result"]

    async def send_raw(self, text: str | bytes) -> None:
        await self._ws.send(text)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self.send_raw(
            orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params or {}})
        )
