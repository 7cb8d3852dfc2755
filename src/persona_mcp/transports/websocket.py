"""The WebSocket JSON-RPC door at /mcp: one session per connection.

A raw ASGI endpoint (no per-message wrapper objects). Requests on one connection run
concurrently, at most MAX_CONCURRENT_REQUESTS at a time, each answered by its id as soon
as it is done; a batch runs as one unit and is answered as one array. What must not
interleave for one session stays ordered (see `Operation.ordered` and `barrier`): chat
and conversation start/end run one at a time in arrival order, and a `persona.switch`
holds back every request that arrives after it until it is done. A request that cannot
wait on anything (an `immediate` operation such as `persona.list`, or a method that does
not exist) is answered inline as it arrives, without a task of its own.

The door also answers three methods of its own, which only make sense per connection:
`notifications/cancelled {requestId, reason?}` stops a request in flight (it is answered
-32800; an operation that is not cancellable runs on and is answered as usual),
`events.subscribe {topics, persona_id?}` and `events.unsubscribe {subscription_id?}`.
Events arrive as notifications whose method is the topic.

Messages larger than MAX_MESSAGE_BYTES never reach it: the WebSocket layer closes that
one connection with 1009 (see `ws_max_size` where the server is configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import orjson
from pydantic import Field
from starlette.types import Receive, Scope, Send

from persona_mcp.app import App
from persona_mcp.auth.principal import Principal
from persona_mcp.config import Settings
from persona_mcp.errors import REQUEST_CANCELLED, PersonaMCPError
from persona_mcp.events import Subscription, Topic
from persona_mcp.operations.common import PersonaRef
from persona_mcp.operations.registry import CallContext, Operation, Params, parse_params
from persona_mcp.sessions import Session
from persona_mcp.transports.edge import SUBPROTOCOL, principal_of
from persona_mcp.transports.jsonrpc import JsonRpcDispatcher, error, notification, parse

log = logging.getLogger(__name__)

DOOR_METHODS = ("notifications/cancelled", "events.subscribe", "events.unsubscribe")


class ClientGone(Exception):
    """The peer disconnected while we were sending."""


class SubscribeParams(Params):
    topics: list[Topic] = Field(min_length=1, max_length=8)
    persona_id: PersonaRef | None = None


class UnsubscribeParams(Params):
    subscription_id: int | None = Field(None, description="Omit to end every subscription")


class CancelledParams(Params):
    requestId: str | int
    reason: str | None = None


class WebSocketDoor:
    def __init__(self, settings: Settings) -> None:
        self._dispatcher = JsonRpcDispatcher(settings.max_batch_requests, settings.max_reply_bytes)
        self._concurrency = settings.max_concurrent_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: App = scope["app"].state.persona_app
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        principal = principal_of(scope, app)
        await send({"type": "websocket.accept", "subprotocol": scope.get(SUBPROTOCOL)})
        session = await app.sessions.open(principal.user_id, "websocket")
        app.connections += 1
        connection = Connection(app, session, principal, send, self._dispatcher, self._concurrency)
        try:
            await connection.serve(receive)
        finally:
            app.connections -= 1
            await connection.close()
            await app.sessions.close(session)


class Connection:
    """One WebSocket connection: its requests in flight, its subscriptions."""

    def __init__(
        self,
        app: App,
        session: Session,
        principal: Principal,
        send: Send,
        dispatcher: JsonRpcDispatcher,
        concurrency: int,
    ) -> None:
        self.app = app
        self.session = session
        self._send = send
        self._dispatcher = dispatcher
        self._slots = asyncio.Semaphore(concurrency)
        self._ordered = asyncio.Lock()
        self._barrier: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: dict[Any, tuple[asyncio.Task[None], bool]] = {}
        self._subscriptions: dict[int, tuple[Subscription, asyncio.Task[None]]] = {}
        self._send_lock = asyncio.Lock()
        self._gone = False
        self.ctx = CallContext(app=app, session=session, principal=principal, notify=self._push)

    async def serve(self, receive: Receive) -> None:
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
            message, refusal = parse(raw)
            if refusal is not None:
                await self.send_safely(refusal)
                continue
            if isinstance(message, dict) and message.get("method") in DOOR_METHODS:
                await self._door_method(message)
                continue
            if self._immediate(message):
                # Answered here and now: it cannot wait on anything, so a task of its own
                # would only cost more than the answer.
                reply = await self._dispatcher.answer(message, self.ctx)
                if reply is not None:
                    await self.send_safely(reply)
            else:
                await self._slots.acquire()  # backpressure: stop reading while slots are full
                self._spawn(message)
            await self.app.sessions.touch(self.session)

    # -- requests ---------------------------------------------------------------------

    def _immediate(self, message: Any) -> bool:
        """A single request that needs no task: an `immediate` operation or a method no
        operation has (its error), with no `persona.switch` still holding requests back."""
        if not isinstance(message, dict) or (self._barrier and not self._barrier.done()):
            return False
        method = message.get("method")
        op = self.app.registry.get(method) if isinstance(method, str) else None
        return op is None or op.immediate

    def _ops(self, message: Any) -> list[Operation]:
        items = message if isinstance(message, list) else [message]
        registry = self.app.registry
        found = []
        for item in items:
            method = item.get("method") if isinstance(item, dict) else None
            op = registry.get(method) if isinstance(method, str) else None
            if op is not None:
                found.append(op)
        return found

    def _spawn(self, message: Any) -> None:
        ops = self._ops(message)
        ordered = any(op.ordered for op in ops)
        barrier = any(op.barrier for op in ops)
        cancellable = bool(ops) and all(op.cancellable for op in ops)
        task = asyncio.create_task(self._run(message, self._barrier, ordered))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if barrier:
            self._barrier = task
        if isinstance(message, dict) and "id" in message:
            key = message["id"]
            if isinstance(key, str | int) and not isinstance(key, bool):
                self._inflight[key] = (task, cancellable)
                task.add_done_callback(functools.partial(self._forget, key))

    def _forget(self, key: Any, task: asyncio.Task[None]) -> None:
        if self._inflight.get(key, (None, False))[0] is task:
            del self._inflight[key]

    async def _run(self, message: Any, wait_for: asyncio.Task[None] | None, ordered: bool) -> None:
        try:
            if wait_for is not None and not wait_for.done():
                await asyncio.wait([wait_for])  # never cancels the barrier itself
            if ordered:
                async with self._ordered:
                    reply = await self._dispatcher.answer(message, self.ctx)
            else:
                reply = await self._dispatcher.answer(message, self.ctx)
            if reply is not None:
                await self.send_safely(reply)
        except asyncio.CancelledError:
            if isinstance(message, dict) and "id" in message and not self._gone:
                await self.send_safely(
                    orjson.dumps(error(message["id"], REQUEST_CANCELLED, "Request cancelled"))
                )
        finally:
            self._slots.release()

    async def _door_method(self, message: dict[str, Any]) -> None:
        method = message["method"]
        id_ = message.get("id")
        try:
            if method == "notifications/cancelled":
                self._cancel(_parse(CancelledParams, message))
                return
            if method == "events.subscribe":
                result: dict[str, Any] = self._subscribe(_parse(SubscribeParams, message))
            else:
                result = self._unsubscribe(_parse(UnsubscribeParams, message))
        except PersonaMCPError as exc:
            if "id" in message:
                await self.send_safely(orjson.dumps(error(id_, exc.code, exc.message, exc.data)))
            return
        if "id" in message:
            await self.send_safely(orjson.dumps({"jsonrpc": "2.0", "id": id_, "result": result}))

    def _cancel(self, params: CancelledParams) -> None:
        task, cancellable = self._inflight.get(params.requestId, (None, False))
        if task is not None and cancellable and not task.done():
            log.debug("request %r cancelled: %s", params.requestId, params.reason or "")
            task.cancel()

    # -- events -----------------------------------------------------------------------

    def _subscribe(self, params: SubscribeParams) -> dict[str, Any]:
        user = self.session.user_id
        persona_id = (
            self.app.personas.resolve(user, params.persona_id).id if params.persona_id else None
        )
        sub = self.app.events.subscribe(user, params.topics, persona_id)
        pump = asyncio.create_task(self._pump(sub))
        self._subscriptions[sub.id] = (sub, pump)
        return {"subscription_id": sub.id, "topics": sorted(sub.topics), "persona_id": persona_id}

    def _unsubscribe(self, params: UnsubscribeParams) -> dict[str, Any]:
        ids = (
            [params.subscription_id]
            if params.subscription_id is not None
            else list(self._subscriptions)
        )
        ended, lost = [], 0
        for sub_id in ids:
            entry = self._subscriptions.pop(sub_id, None)
            if entry is not None:
                entry[0].close()
                ended.append(sub_id)
                lost += entry[0].lost
        return {"unsubscribed": ended, "lost": lost}

    async def _pump(self, sub: Subscription) -> None:
        """Deliver one subscription's events; while this waits on a slow socket the queue
        fills and further events are counted as lost, never blocking the publisher."""
        async for event in sub:
            if not await self.send_safely(event.text):
                return

    # -- sending ----------------------------------------------------------------------

    async def _push(self, method: str, params: dict[str, Any]) -> None:
        if not await self.send_safely(notification(method, params)):
            raise ClientGone

    async def send_safely(self, payload: bytes | str) -> bool:
        """Send one text frame; False once the peer is gone."""
        if self._gone:
            return False
        text = payload if isinstance(payload, str) else payload.decode()
        try:
            async with self._send_lock:
                await self._send({"type": "websocket.send", "text": text})
        except OSError:  # includes uvicorn's ClientDisconnected
            self._gone = True
            return False
        return True

    async def close(self) -> None:
        """The peer left: cancel what may be cancelled, let writes finish, end events."""
        self._gone = True
        for sub, pump in self._subscriptions.values():
            sub.close()
            pump.cancel()
        for task, cancellable in list(self._inflight.values()):
            if cancellable:
                task.cancel()
        pending = [*self._tasks, *(pump for _, pump in self._subscriptions.values())]
        self._subscriptions.clear()
        if pending:
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)


def _parse(model: type[Params], message: dict[str, Any]) -> Any:
    return parse_params(model, message.get("params"))
