"""The live half of the MCP doors: completions, log records, resource subscriptions.

- `complete`: `completion/complete` for the prompt's `persona_id` (names and ids of the
  caller's personas, case-insensitive prefix) and `topic` (the persona's
  topic_preferences), and the `{id}` of both persona resource templates.
- `LogFeed`: after `logging/setLevel`, the persona_mcp loggers' records at or above the
  session's level go to it as `notifications/message`. A bounded queue per session;
  records are dropped (counted) when a client does not keep up, never blocking.
- `Watcher`: one per MCP session (2025-11-25). It follows the app's event bus for the
  session's user and sends `notifications/resources/updated` for subscribed persona
  URIs (persona.state, memory.changed) and `notifications/resources/list_changed`
  when a persona is created or deleted.
- `listen`: the 2026-07-28 `subscriptions/listen` stream, the SDK's ListenHandler fed
  from the same bus, scoped to the caller's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
)
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.uri_template import UriTemplate

from persona_mcp.app import App
from persona_mcp.errors import NotFound
from persona_mcp.events import Event

log = logging.getLogger(__name__)

Ctx = ServerRequestContext[Any, Any]
PROFILE = UriTemplate.parse("persona://{id}")
MEMORY_STATS = UriTemplate.parse("persona://{id}/memory-stats")
MAX_COMPLETIONS = 100
LOG_QUEUE = 256
WATCHED_TOPICS = {"persona.state", "memory.changed"}
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO + 5,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL + 5,
    "emergency": logging.CRITICAL + 10,
}


def _mcp_level(levelno: int) -> types.LoggingLevel:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


# -- completion ----------------------------------------------------------------------


def _prefixed(values: Iterator[str], prefix: str) -> types.CompleteResult:
    prefix = prefix.casefold()
    seen: list[str] = []
    for value in values:
        if value.casefold().startswith(prefix) and value not in seen:
            seen.append(value)
    return types.CompleteResult(
        completion=types.Completion(
            values=seen[:MAX_COMPLETIONS],
            total=len(seen),
            has_more=len(seen) > MAX_COMPLETIONS,
        )
    )


def _persona_refs(app: App, user_id: str) -> Iterator[str]:
    personas = app.personas.visible(user_id)
    yield from (p.name for p in personas)
    yield from (p.id for p in personas)


def complete(
    app: App, user_id: str, prompt_name: str, params: types.CompleteRequestParams
) -> types.CompleteResult:
    """Completions for the persona prompt's arguments and the persona URI templates."""
    ref, arg = params.ref, params.argument
    if isinstance(ref, types.PromptReference):
        if ref.name != prompt_name:
            return _prefixed(iter(()), "")
        if arg.name == "persona_id":
            return _prefixed(_persona_refs(app, user_id), arg.value)
        if arg.name == "topic":
            chosen = (params.context.arguments or {}).get("persona_id") if params.context else None
            personas = app.personas.visible(user_id)
            if chosen:
                try:
                    personas = [app.personas.resolve(user_id, chosen)]
                except NotFound:
                    personas = []
            topics = (t for p in personas for t in sorted(p.topic_preferences))
            return _prefixed(topics, arg.value)
        return _prefixed(iter(()), "")
    if ref.uri in ("persona://{id}", "persona://{id}/memory-stats") and arg.name == "id":
        return _prefixed(_persona_refs(app, user_id), arg.value)
    return _prefixed(iter(()), "")


# -- logging -------------------------------------------------------------------------


class LogFeed(logging.Handler):
    """Forwards persona_mcp log records to the MCP sessions that asked for them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        # keyed by the MCP session (its app session id), or by the request (2026-07-28)
        self._targets: dict[object, tuple[int, asyncio.Queue[logging.LogRecord]]] = {}
        self._tasks: dict[object, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0
        self._logger = logging.getLogger("persona_mcp")

    def set_level(self, key: object, session: ServerSession, level: str) -> None:
        self._loop = asyncio.get_running_loop()
        levelno = LEVELS[level]
        current = self._targets.get(key)
        queue = current[1] if current else asyncio.Queue[logging.LogRecord](LOG_QUEUE)
        self._targets[key] = (levelno, queue)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._pump(key, session, queue))
        if self not in self._logger.handlers:  # the loggers' own level is left alone
            self._logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("mcp") or not self._targets or self._loop is None:
            return
        if record.name == __name__:  # never feed this module's own records back
            return
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread
            running = None
        if running is loop:
            self._offer(record)
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(self._offer, record)

    def _offer(self, record: logging.LogRecord) -> None:
        for levelno, queue in self._targets.values():
            if record.levelno >= levelno:
                try:
                    queue.put_nowait(record)
                except asyncio.QueueFull:
                    self.dropped += 1

    async def _pump(
        self, key: object, session: ServerSession, queue: asyncio.Queue[logging.LogRecord]
    ) -> None:
        try:
            while True:
                await self._send(session, await queue.get())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            pass  # the session has gone
        finally:
            self._targets.pop(key, None)
            self._tasks.pop(key, None)

    async def finish(self, key: object, session: ServerSession) -> None:
        """Stop feeding `session`, after sending what is queued for it (2026-07-28: a
        request's log records ride its own stream, so they go before its result)."""
        target = self._targets.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        if target is None:
            return
        queue = target[1]
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            while not queue.empty():
                await self._send(session, queue.get_nowait())

    @staticmethod
    async def _send(session: ServerSession, record: logging.LogRecord) -> None:
        data: dict[str, Any] = {"message": record.getMessage()}
        if record.exc_info and record.exc_info[0] is not None:
            data["error"] = record.exc_info[0].__name__
        with warnings.catch_warnings():  # deprecated from 2026-07-28 on, where it is opt-in
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await session.send_log_message(_mcp_level(record.levelno), data, record.name)

    def close_all(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        self._targets.clear()
        self._logger.removeHandler(self)


# -- subscriptions (2025-11-25) -----------------------------------------------------


def _uris(event: Event) -> list[str]:
    pid = event.persona_id
    if pid is None:
        return []
    if event.topic == "memory.changed":
        return [f"persona://{pid}/memory-stats", f"persona://{pid}"]
    return [f"persona://{pid}", f"persona://{pid}/memory-stats"]


def _list_changed(event: Event) -> bool:
    return event.topic == "persona.state" and event.params.get("change") in ("created", "deleted")


def _resolve_uri(app: App, user_id: str, uri: str) -> str:
    """A persona URI by name turned into the URI by id (events carry ids)."""
    stats = MEMORY_STATS.match(uri)
    match = stats or PROFILE.match(uri)
    if match is None:
        return uri
    try:
        persona = app.personas.resolve(user_id, str(match["id"]))
    except NotFound:
        return uri
    return f"persona://{persona.id}/memory-stats" if stats else f"persona://{persona.id}"


class Watcher:
    """The resource subscriptions of one MCP session, fed by the app's event bus."""

    def __init__(
        self, app: App, user_id: str, session: ServerSession, on_end: Callable[[], object]
    ) -> None:
        self.app = app
        self._on_end = on_end
        self.user_id = user_id
        self.uris: set[str] = set()
        self._session = session
        self._sub = app.events.subscribe(user_id, WATCHED_TOPICS)
        self._task = asyncio.create_task(self._pump())

    def subscribe(self, uri: str) -> None:
        self.uris.add(_resolve_uri(self.app, self.user_id, uri))

    def unsubscribe(self, uri: str) -> None:
        self.uris.discard(_resolve_uri(self.app, self.user_id, uri))

    async def _pump(self) -> None:
        try:
            async for event in self._sub:
                if _list_changed(event):
                    await self._session.send_resource_list_changed()
                for uri in _uris(event):
                    if uri in self.uris:
                        await self._session.send_resource_updated(uri)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            pass  # the session has gone
        finally:
            self._sub.close()
            self._on_end()

    def close(self) -> None:
        self._sub.close()
        self._task.cancel()


# -- subscriptions/listen (2026-07-28) ----------------------------------------------


def server_events(event: Event) -> list[ServerEvent]:
    out: list[ServerEvent] = []
    if _list_changed(event):
        out.append(ResourcesListChanged())
    out += [ResourceUpdated(uri=uri) for uri in _uris(event)]
    return out


async def listen(
    app: App, user_id: str, ctx: Ctx, params: types.SubscriptionsListenRequestParams
) -> types.SubscriptionsListenResult:
    """One listen stream: the SDK's handler over a bus fed by this user's events only.
    Resource URIs given by persona name are followed by id."""
    uris = params.notifications.resource_subscriptions
    if uris:
        by_id = [_resolve_uri(app, user_id, u) for u in uris]
        params = params.model_copy(
            update={
                "notifications": params.notifications.model_copy(
                    update={"resource_subscriptions": sorted(set(uris) | set(by_id))}
                )
            }
        )
    bus = InMemorySubscriptionBus()
    handler = ListenHandler(bus, max_subscriptions=1)
    sub = app.events.subscribe(user_id, WATCHED_TOPICS)

    async def pump() -> None:
        async for event in sub:
            for server_event in server_events(event):
                await bus.publish(server_event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        try:
            result = await handler(ctx, params)
        finally:
            sub.close()
            tg.cancel_scope.cancel()
    return result
