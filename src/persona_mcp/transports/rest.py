"""The REST door: Persona's `/api/v1/users/{user_id}/...` routes and resource routes for
personas, memories and the graph, with OpenAPI at `/openapi.json` and Swagger UI at
`/docs` (its files served by the server itself, so it works offline).

A thin door like the others: each route names one registry operation, gathers its
params from the path, the query and the JSON body, and calls `Registry.call` with the
caller's principal (resolved by the edge), so validation, limits and errors are the
same as on WebSocket and MCP. Errors answer `{"error": {"code", "message", "data"}}`
with the JSON-RPC code and the same message, and an HTTP status: 400 invalid params
(and malformed JSON), 401 unauthenticated, 403 forbidden, 404 not found, 409 conflict,
429 rate limited, 503 unavailable, 500 internal (no details).

A caller may address only their own `user_id`; admin scope may address any. With
AUTH_MODE=off (loopback only) the caller is the local admin, so any user id works and
names a local user. A user that does not exist yet comes into being on first use, as on
the other doors (`POST /api/v1/users/{user_id}` does it on purpose).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from persona_mcp import __version__
from persona_mcp.app import App
from persona_mcp.auth.principal import Principal
from persona_mcp.auth.tokens import USER_NAME
from persona_mcp.errors import (
    CONFLICT,
    FORBIDDEN,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    NOT_FOUND,
    PARSE_ERROR,
    RATE_LIMITED,
    UNAVAILABLE,
    Forbidden,
    InvalidParams,
    PersonaMCPError,
    Unauthenticated,
)
from persona_mcp.operations.common import deeper_than
from persona_mcp.operations.registry import CallContext, Operation
from persona_mcp.transports.edge import principal_of
from persona_mcp.transports.jsonrpc import MAX_JSON_DEPTH

log = logging.getLogger(__name__)

PREFIX = "/api/v1/users/{user_id}"
STATUS = {
    INVALID_PARAMS: 400,
    PARSE_ERROR: 400,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    CONFLICT: 409,
    RATE_LIMITED: 429,
    UNAVAILABLE: 503,
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "integer", "description": "The JSON-RPC error code"},
                "message": {"type": "string"},
                "data": {"description": "Details: data.errors names each bad field"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
ERRORS = {
    400: "Invalid params or malformed JSON (-32602, -32700)",
    401: "A bearer token is missing, unknown or revoked",
    403: "Another user's user_id, or admin scope needed (-32003)",
    404: "No such user, persona, memory or entity (-32001)",
    409: "A conflict, e.g. a persona name taken (-32002)",
    429: "Rate limited or a per-user cap reached (-32004)",
    503: "Unavailable: no language model, storage fault (-32005)",
}

UserId = Annotated[
    str,
    Path(description="The user: your own (a token's user), or any with admin scope", max_length=64),
]


def error_body(code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"error": err}


def error_response(exc: PersonaMCPError) -> JSONResponse:
    status = 401 if isinstance(exc, Unauthenticated) else STATUS.get(exc.code, 500)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="persona-mcp"'
    retry = (exc.data or {}).get("retry_after_seconds")
    if status == 429 and isinstance(retry, int | float):
        headers["Retry-After"] = str(max(1, round(retry)))
    return JSONResponse(error_body(exc.code, exc.message, exc.data), status, headers=headers)


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` references written in place (OpenAPI
    resolves `#/...` against the whole document, not the schema)."""
    defs = schema.get("$defs", {})

    def walk(node: Any, depth: int) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 32:
                target = defs.get(ref.removeprefix("#/$defs/"), {})
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**walk(target, depth + 1), **walk(rest, depth + 1)}
            return {k: walk(v, depth + 1) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v, depth + 1) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema, 0)
    return inlined


def _body_schema(op: Operation, from_path: tuple[str, ...]) -> dict[str, Any]:
    schema = _inline(op.params.model_json_schema())
    for name in from_path:
        schema.get("properties", {}).pop(name, None)
        if name in schema.get("required", []):
            schema["required"] = [r for r in schema["required"] if r != name]
    return schema


class RestDoor:
    """Calls registry operations for HTTP requests, as the caller addressed them."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _ParseError(f"Parse error: {exc.msg}") from exc
        if deeper_than(value, MAX_JSON_DEPTH):
            raise _ParseError(f"Parse error: nested deeper than {MAX_JSON_DEPTH} levels")
        if not isinstance(value, dict):
            raise InvalidParams(
                "Invalid params: the body must be a JSON object",
                {
                    "errors": [
                        {"field": "body", "message": "must be an object", "type": "dict_type"}
                    ]
                },
            )
        return value

    def acting(self, request: Request, user_id: str) -> Principal:
        """The principal a request acts as: the caller, for the user they addressed."""
        caller = principal_of(request.scope, self.app)
        if not USER_NAME.match(user_id):
            raise InvalidParams.field(
                "user_id", "use 1-64 letters, digits or _ . @ - (starting with a letter or digit)"
            )
        if user_id != caller.user_id and not caller.is_admin:
            raise Forbidden(
                f"You may address only your own user ({caller.user_id!r}); "
                "another user's needs admin scope",
                {"required_scope": "admin"},
            )
        return Principal(user_id, caller.scopes, caller.token_id)

    async def call(
        self,
        request: Request,
        user_id: str,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        body: bool = False,
        status: int = 200,
    ) -> Response:
        try:
            principal = self.acting(request, user_id)
            merged = {**(await self.body(request) if body else {}), **(params or {})}
            op = self.app.registry.get(method)
            assert op is not None, method
            if method not in ("user.create", "user.delete"):
                await self.app.personas.ensure_user(user_id)  # first use, as on every door
            session = self.app.sessions.ephemeral(user_id, "rest")
            ctx = CallContext(app=self.app, session=session, principal=principal)
            data = await self.app.registry.call(op, merged, ctx)
        except _ParseError as exc:
            return JSONResponse(error_body(PARSE_ERROR, exc.message), 400)
        except PersonaMCPError as exc:
            return error_response(exc)
        except Exception:
            log.exception("REST %s %s failed", request.method, method)
            return JSONResponse(error_body(INTERNAL_ERROR, "Internal error"), 500)
        if method == "user.create" and not data.get("created"):
            status = 200
        return Response(orjson.dumps(data), status, media_type="application/json")


class _ParseError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def create_rest(app: App) -> FastAPI:
    """The REST door as an ASGI app (mounted by transports.asgi behind the edge)."""
    api: FastAPI = FastAPIOffline(
        title="persona-mcp",
        version=__version__,
        description="Personas with long-term memory and a knowledge graph: the REST door. "
        "The same operations answer over WebSocket JSON-RPC and MCP at /mcp.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        static_url="/docs/static",
    )
    door = RestDoor(app)
    registry = app.registry

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                "message": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors)
        body = error_body(INVALID_PARAMS, f"Invalid params: {fields}", {"errors": errors})
        return JSONResponse(body, 400)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = NOT_FOUND if exc.status_code == 404 else INVALID_PARAMS
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, exc.headers)

    api.add_exception_handler(RequestValidationError, invalid)
    api.add_exception_handler(HTTPException, http_error)

    def doc(
        name: str,
        *,
        tag: str,
        body: tuple[str, ...] | None = None,
        status: int = 200,
    ) -> dict[str, Any]:
        """OpenAPI for a route that calls `name`: its description, the params model as
        the request body (minus the fields the path gives) and the result model."""
        op = registry.get(name)
        assert op is not None, name
        extra: dict[str, Any] = {}
        if body is not None:
            extra["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _body_schema(op, body)}},
            }
        responses: dict[int | str, dict[str, Any]] = {
            status: {
                "description": op.title or name,
                "content": {"application/json": {"schema": _inline(op.result.model_json_schema())}},
            },
            **{
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                }
                for code, text in ERRORS.items()
            },
        }
        return {
            "summary": op.title or name,
            "description": f"Calls `{name}`: {op.description}",
            "tags": [tag],
            "operation_id": name.replace(".", "_"),
            "status_code": status,
            "responses": responses,
            "openapi_extra": extra,
            "response_class": Response,
        }

    # -- Persona's routes -----------------------------------------------------------

    @api.post(PREFIX, **doc("user.create", tag="users", status=201))
    async def create_user(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "user.create", status=201)

    @api.delete(PREFIX, **doc("user.delete", tag="users"))
    async def delete_user(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "user.delete", {"confirm": True})

    @api.post(PREFIX + "/ingest", **doc("memory.ingest", tag="users", body=(), status=201))
    async def ingest(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "memory.ingest", body=True, status=201)

    @api.post(PREFIX + "/rag/query", **doc("rag.query", tag="users", body=()))
    async def rag_query(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "rag.query", body=True)

    @api.post(PREFIX + "/ask", **doc("ask", tag="users", body=()))
    async def ask(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "ask", body=True)

    # -- personas -------------------------------------------------------------------

    @api.get(PREFIX + "/personas", **doc("persona.list", tag="personas"))
    async def list_personas(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "persona.list")

    @api.post(PREFIX + "/personas", **doc("persona.create", tag="personas", body=(), status=201))
    async def create_persona(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "persona.create", body=True, status=201)

    @api.get(PREFIX + "/personas/{persona_id}", **doc("persona.status", tag="personas"))
    async def get_persona(request: Request, user_id: UserId, persona_id: str) -> Response:
        return await door.call(request, user_id, "persona.status", {"persona_id": persona_id})

    @api.patch(
        PREFIX + "/personas/{persona_id}",
        **doc("persona.update", tag="personas", body=("persona_id",)),
    )
    async def update_persona(request: Request, user_id: UserId, persona_id: str) -> Response:
        params = {"persona_id": persona_id}
        return await door.call(request, user_id, "persona.update", params, body=True)

    @api.delete(PREFIX + "/personas/{persona_id}", **doc("persona.delete", tag="personas"))
    async def delete_persona(request: Request, user_id: UserId, persona_id: str) -> Response:
        return await door.call(request, user_id, "persona.delete", {"persona_id": persona_id})

    @api.post(
        PREFIX + "/personas/{persona_id}/chat",
        **doc("persona.chat", tag="personas", body=("persona_id",)),
    )
    async def chat(request: Request, user_id: UserId, persona_id: str) -> Response:
        params = {"persona_id": persona_id}
        return await door.call(request, user_id, "persona.chat", params, body=True)

    # -- memories -------------------------------------------------------------------

    @api.get(PREFIX + "/memories", **doc("memory.list", tag="memories"))
    async def list_memories(
        request: Request,
        user_id: UserId,
        persona_id: str | None = None,
        memory_type: str | None = None,
        cursor: str | None = None,
        limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    ) -> Response:
        params = _given(persona_id=persona_id, memory_type=memory_type, cursor=cursor, limit=limit)
        return await door.call(request, user_id, "memory.list", params)

    @api.post(PREFIX + "/memories", **doc("memory.store", tag="memories", body=(), status=201))
    async def store_memory(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "memory.store", body=True, status=201)

    @api.post(PREFIX + "/memories/search", **doc("memory.search", tag="memories", body=()))
    async def search_memories(request: Request, user_id: UserId) -> Response:
        return await door.call(request, user_id, "memory.search", body=True)

    @api.get(PREFIX + "/memories/{memory_id}", **doc("memory.get", tag="memories"))
    async def get_memory(request: Request, user_id: UserId, memory_id: str) -> Response:
        return await door.call(request, user_id, "memory.get", {"memory_id": memory_id})

    @api.patch(
        PREFIX + "/memories/{memory_id}",
        **doc("memory.update", tag="memories", body=("memory_id",)),
    )
    async def update_memory(request: Request, user_id: UserId, memory_id: str) -> Response:
        params = {"memory_id": memory_id}
        return await door.call(request, user_id, "memory.update", params, body=True)

    @api.delete(PREFIX + "/memories/{memory_id}", **doc("memory.delete", tag="memories"))
    async def delete_memory(request: Request, user_id: UserId, memory_id: str) -> Response:
        return await door.call(request, user_id, "memory.delete", {"memory_id": memory_id})

    # -- the graph ------------------------------------------------------------------

    @api.get(PREFIX + "/entities/{name}", **doc("graph.entity", tag="graph"))
    async def entity(
        request: Request,
        user_id: UserId,
        name: str,
        persona_id: str | None = None,
        limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    ) -> Response:
        params = _given(name=name, persona_id=persona_id, limit=limit)
        return await door.call(request, user_id, "graph.entity", params)

    @api.get(PREFIX + "/graph/{node_id}/neighbors", **doc("graph.neighbors", tag="graph"))
    async def neighbors(
        request: Request,
        user_id: UserId,
        node_id: str,
        depth: Annotated[int | None, Query(ge=1, le=3)] = None,
        edge_types: Annotated[list[str] | None, Query()] = None,
        limit: Annotated[int | None, Query(ge=1, le=200)] = None,
    ) -> Response:
        params = _given(node_id=node_id, depth=depth, edge_types=edge_types, limit=limit)
        return await door.call(request, user_id, "graph.neighbors", params)

    return api


def _given(**values: Any) -> dict[str, Any]:
    """The query values the caller gave (the operation's defaults apply to the rest)."""
    return {k: v for k, v in values.items() if v is not None}
