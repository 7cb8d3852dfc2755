"""The one operation registry every door serves.

An operation is declared once, by decorating its handler: the name, the description,
the annotations; the params and result models come from the handler's type hints.
Doors look operations up here and call `Registry.call_json`, which validates the
params, runs the handler and returns the result as JSON text, ready to write into a
reply (`Registry.call`: the same as JSON-ready data).

A frozen result that holds the same values as the operation's previous result (equal
scalars, the very same frozen models) is not encoded again: its JSON is reused. That
keeps the cheapest read (`persona.list`, whose persona models the persona service keeps
while they do not change) cheap.
"""

from __future__ import annotations

import logging
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from persona_mcp.auth.principal import Principal
from persona_mcp.errors import (
    CONFLICT,
    FORBIDDEN,
    INVALID_PARAMS,
    NOT_FOUND,
    RATE_LIMITED,
    UNAVAILABLE,
    InvalidParams,
    PersonaMCPError,
    RateLimited,
)

if TYPE_CHECKING:
    from persona_mcp.app import App
    from persona_mcp.sessions import Session

log = logging.getLogger(__name__)

# The outcome label of a request, by error code (metrics and the request log).
OUTCOMES = {
    INVALID_PARAMS: "invalid_params",
    NOT_FOUND: "not_found",
    CONFLICT: "conflict",
    FORBIDDEN: "forbidden",
    RATE_LIMITED: "rate_limited",
    UNAVAILABLE: "unavailable",
}

Notify = Callable[[str, dict[str, Any]], Awaitable[None]]
Progress = Callable[[float, float | None, str | None], Awaitable[None]]
"""`progress(done, total, message)`: a long operation's progress, for a door to forward."""


async def no_progress(done: float, total: float | None, message: str | None) -> None:
    """The progress callback when nobody listens."""


class Params(BaseModel):
    """Base of every params model: unknown fields are errors, not silently ignored, and
    types are strict (`"stream": "yes"` or `"limit": "10"` are errors, not coerced;
    an int is still a valid float, and moments are ISO 8601 strings, see `When`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, strict=True)


class Result(BaseModel):
    """Base of every result model."""


@dataclass
class CallContext:
    """One call: the app, the caller's session, and who the caller is (from the edge)."""

    app: App
    session: Session
    principal: Principal
    notify: Notify | None = None
    request_id: Any = None
    progress: Progress = no_progress

    def for_request(self, request_id: Any) -> CallContext:
        """This context for one request of its connection (a shallow copy, cheaper than
        `dataclasses.replace`, which re-runs `__init__` through the field list)."""
        copy = object.__new__(CallContext)
        copy.__dict__.update(self.__dict__)
        copy.request_id = request_id
        return copy

    @property
    def rate_key(self) -> str:
        """Whose bucket a request spends: the token's, else the connection's."""
        token = self.principal.token_id
        return f"token:{token}" if token else f"session:{self.session.id}"


Handler = Callable[[CallContext, Any], Awaitable[Any]]
ParamsT = TypeVar("ParamsT", bound=Params)


@dataclass(frozen=True)
class Operation:
    name: str
    description: str
    params: type[Params]
    result: type[Result]
    handler: Handler
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False
    aliases: tuple[str, ...] = ()
    title: str | None = None
    # How a door that runs one connection's requests concurrently must treat this one:
    # `ordered` operations run one at a time, in arrival order (chat, conversation
    # start/end, switch); a `barrier` (switch) also holds back every request that arrives
    # after it until it is done. `cancellable` ones may be stopped mid-way: they either
    # write nothing or commit their writes whole (read-only operations and chat);
    # a cancellation of any other request comes too late and is ignored.
    ordered: bool = False
    barrier: bool = False
    cancellable: bool = False
    admin: bool = False  # a server-wide job or setting: needs admin scope
    # Answers from memory and never awaits anything: a door may run it inline, in the
    # order it arrives, instead of giving it a task of its own (the WebSocket door does).
    immediate: bool = False


@dataclass
class OperationSet:
    """Operations of one domain module, collected by decorating their handlers."""

    operations: list[Operation] = field(default_factory=list)

    def __call__(
        self,
        name: str,
        *,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
        open_world: bool = False,
        aliases: tuple[str, ...] = (),
        title: str | None = None,
        ordered: bool = False,
        barrier: bool = False,
        cancellable: bool = False,
        admin: bool = False,
        immediate: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            hints = typing.get_type_hints(handler)
            params, result = hints["params"], hints["return"]
            doc = (handler.__doc__ or "").strip()
            if not doc:
                raise TypeError(f"operation {name} needs a docstring: it is the description")
            self.operations.append(
                Operation(
                    name=name,
                    description=" ".join(doc.split()),
                    params=params,
                    result=result,
                    handler=handler,
                    read_only=read_only,
                    destructive=destructive,
                    idempotent=idempotent or read_only,
                    open_world=open_world,
                    aliases=aliases,
                    title=title,
                    ordered=ordered or barrier,
                    barrier=barrier,
                    cancellable=cancellable or read_only,
                    admin=admin,
                    immediate=immediate,
                )
            )
            return handler

        return register


def validation_data(exc: ValidationError) -> dict[str, Any]:
    """`data` for -32602: one entry per bad field, named by its dotted path."""
    return {
        "errors": [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "params",
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
    }


def parse_params(model: type[ParamsT], params: Any) -> ParamsT:
    """Validate named params against a model; -32602 naming each bad field otherwise."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParams(
            "Invalid params: params must be an object (named parameters)",
            {"errors": [{"field": "params", "message": "must be an object", "type": "dict_type"}]},
        )
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        data = validation_data(exc)
        fields = ", ".join(e["field"] for e in data["errors"])
        raise InvalidParams(f"Invalid params: {fields}", data) from exc


class Registry:
    def __init__(self, sets: Iterable[OperationSet]) -> None:
        self._ops: dict[str, Operation] = {}
        self._aliases: dict[str, Operation] = {}
        self._last: dict[str, tuple[Result, bytes]] = {}  # by operation: see `_encode`
        for op_set in sets:
            for op in op_set.operations:
                for name in (op.name, *op.aliases):
                    if name in self._ops or name in self._aliases:
                        raise ValueError(f"operation {name} is declared twice")
                self._ops[op.name] = op
                for alias in op.aliases:
                    self._aliases[alias] = op

    def __iter__(self) -> typing.Iterator[Operation]:
        return iter(self._ops.values())

    def __len__(self) -> int:
        return len(self._ops)

    def get(self, name: str) -> Operation | None:
        return self._ops.get(name) or self._aliases.get(name)

    def parse(self, op: Operation, params: Any) -> Params:
        return parse_params(op.params, params)

    async def call(self, op: Operation, params: Any, ctx: CallContext) -> dict[str, Any]:
        """`call_json`, with the result as JSON-ready data (a fresh copy every time)."""
        data: dict[str, Any] = orjson.loads(await self.call_json(op, params, ctx))
        return data

    async def call_json(self, op: Operation, params: Any, ctx: CallContext) -> bytes:
        """Admit (rate, scope), validate, run; every call is counted, timed and logged.
        The result comes back encoded as JSON by its own model's serializer."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            _admit(op, ctx)
            parsed = self.parse(op, params)
            fleet = ctx.app.fleet
            if fleet.shared:  # see what other instances committed before this call came
                await fleet.sync()
            result = await op.handler(ctx, parsed)
            if fleet.shared:  # and tell them of this call's changes before it is answered
                await fleet.flush()
            encoded = self._encode(op, result)
        except PersonaMCPError as exc:
            outcome = OUTCOMES.get(exc.code, "error")
            raise
        except Exception:
            outcome = "internal"
            raise
        finally:
            seconds = time.perf_counter() - started
            ctx.app.metrics.request(op.name, outcome, seconds)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "request method=%s user=%s transport=%s outcome=%s duration_ms=%.2f",
                    op.name, ctx.principal.user_id, ctx.session.transport, outcome,
                    seconds * 1000,
                )  # fmt: skip
        return encoded

    def _encode(self, op: Operation, result: Result) -> bytes:
        last = self._last.get(op.name)
        if last is not None and _same(last[0], result):
            return last[1]
        encoded = result.__pydantic_serializer__.to_json(result)
        if result.model_config.get("frozen"):
            self._last[op.name] = (result, encoded)
        return encoded


_SCALARS = (str, int, float, bool, type(None))


def _same(old: Any, new: Any) -> bool:
    """Whether `new` encodes exactly as `old` did, judged without encoding it: equal
    immutable scalars, the same frozen model, or lists, tuples and frozen models made
    of those. Anything else (a dict, a mutable model) counts as changed."""
    if isinstance(new, _SCALARS):
        return type(old) is type(new) and old == new
    if isinstance(new, BaseModel):
        if old is new:
            return bool(new.model_config.get("frozen"))
        return (
            type(old) is type(new)
            and bool(new.model_config.get("frozen"))
            and all(map(_same, old.__dict__.values(), new.__dict__.values()))
        )
    if isinstance(new, list | tuple):
        return type(old) is type(new) and len(old) == len(new) and all(map(_same, old, new))
    return False


def _admit(op: Operation, ctx: CallContext) -> None:
    wait = ctx.app.limiter.take(ctx.rate_key)
    if wait is not None:
        retry = round(wait, 3)
        raise RateLimited(
            f"Rate limit of {ctx.app.limiter.per_minute} requests per minute reached; "
            f"retry after {retry} s",
            {"retry_after_seconds": retry},
        )
    if op.admin:
        ctx.principal.require_admin(op.name)
