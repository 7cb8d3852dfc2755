"""JSON-RPC 2.0 over any text channel: parsing, batches, notifications, error mapping.

Requests on one channel are handled in the order they arrive; a batch is answered as one
array in request order, with no entry for notifications, and not at all when it held
only notifications.

A batch is bounded twice: at most MAX_BATCH_REQUESTS entries (else the whole batch is
refused with -32600), and once its replies pass MAX_REPLY_BYTES the remaining entries
are refused with -32600 instead of run. A message nested deeper than MAX_JSON_DEPTH is a
parse error, as on the MCP door. Between entries the loop is yielded, so one
connection's batch never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from persona_mcp.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PersonaMCPError,
)
from persona_mcp.operations.common import deeper_than
from persona_mcp.operations.registry import CallContext

log = logging.getLogger(__name__)

Response = dict[str, Any]

# The MCP SDK's JSON parser refuses messages nested deeper than this, so this door does
# too: both answer a parse error (and bounded metadata is -32602 on both, well below).
MAX_JSON_DEPTH = 200


def error(id_: Any, code: int, message: str, data: Any = None) -> Response:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def notification(method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params})


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def _encode(reply: Response) -> bytes:
    """A reply as JSON; one whose result cannot be encoded becomes -32603 for its id, so
    a bad value never drops the connection."""
    try:
        return orjson.dumps(reply)
    except (orjson.JSONEncodeError, TypeError):
        log.exception("reply to id %r could not be encoded", reply.get("id"))
        return orjson.dumps(error(reply.get("id"), INTERNAL_ERROR, "Internal error"))


def _result(id_: Any, result: bytes) -> bytes:
    """A success reply around a result already encoded as JSON."""
    try:
        encoded_id = orjson.dumps(id_)
    except (orjson.JSONEncodeError, TypeError):  # an id orjson cannot write (a huge int)
        return _encode(error(None, INTERNAL_ERROR, "Internal error"))
    return b'{"jsonrpc":"2.0","id":' + encoded_id + b',"result":' + result + b"}"


def parse(raw: str | bytes) -> tuple[Any, bytes | None]:
    """The message, or None and the error reply when it is not JSON (or nests too deep)."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, orjson.dumps(error(None, PARSE_ERROR, f"Parse error: {exc.msg}"))
    # Every level of nesting takes at least one byte: a short message cannot be too deep.
    if len(raw) > MAX_JSON_DEPTH and deeper_than(message, MAX_JSON_DEPTH):
        reason = f"Parse error: nested deeper than {MAX_JSON_DEPTH} levels"
        return None, orjson.dumps(error(None, PARSE_ERROR, reason))
    return message, None


class JsonRpcDispatcher:
    def __init__(self, max_batch: int = 100, max_reply_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_batch = max_batch
        self.max_reply_bytes = max_reply_bytes

    async def handle(self, raw: str | bytes, ctx: CallContext) -> bytes | None:
        """Answer one incoming message (single or batch); None when no reply is due."""
        message, refusal = parse(raw)
        if refusal is not None:
            return refusal
        return await self.answer(message, ctx)

    async def answer(self, message: Any, ctx: CallContext) -> bytes | None:
        """Answer a parsed message (single or batch); None when no reply is due."""
        if isinstance(message, list):
            return await self._batch(message, ctx)
        return await self._one(message, ctx)

    async def _batch(self, batch: list[Any], ctx: CallContext) -> bytes | None:
        if not batch:
            return orjson.dumps(error(None, INVALID_REQUEST, "Invalid Request: empty batch"))
        if len(batch) > self.max_batch:
            return orjson.dumps(
                error(
                    None,
                    INVALID_REQUEST,
                    f"Invalid Request: a batch holds at most {self.max_batch} requests; "
                    f"this one has {len(batch)}",
                )
            )
        parts: list[bytes] = []
        size = 0
        for i, message in enumerate(batch):
            if i:
                await asyncio.sleep(0)  # let other connections in between entries
            if size > self.max_reply_bytes:
                if isinstance(message, dict) and "id" in message:
                    id_ = message["id"] if _valid_id(message["id"]) else None
                    parts.append(
                        orjson.dumps(
                            error(
                                id_,
                                INVALID_REQUEST,
                                f"Invalid Request: the batch's replies passed "
                                f"{self.max_reply_bytes} bytes; send this request again",
                            )
                        )
                    )
                continue
            reply = await self._one(message, ctx)
            if reply is not None:
                size += len(reply)
                parts.append(reply)
        return b"[" + b",".join(parts) + b"]" if parts else None

    async def _one(self, message: Any, ctx: CallContext) -> bytes | None:
        """One request's encoded reply; None for a notification."""
        if not isinstance(message, dict):
            return _encode(error(None, INVALID_REQUEST, "Invalid Request: expected an object"))
        is_notification = "id" not in message
        id_ = message.get("id")
        if not _valid_id(id_):
            return _encode(
                error(None, INVALID_REQUEST, "Invalid Request: id must be a string or number")
            )
        problem = None
        method = message.get("method")
        if message.get("jsonrpc") != "2.0":
            problem = 'Invalid Request: "jsonrpc" must be "2.0"'
        elif not isinstance(method, str) or not method:
            problem = 'Invalid Request: "method" must be a non-empty string'
        elif "params" in message and not isinstance(message["params"], (dict, list)):
            problem = 'Invalid Request: "params" must be an object or an array'
        if problem:
            return None if is_notification else _encode(error(id_, INVALID_REQUEST, problem))
        assert isinstance(method, str)

        registry = ctx.app.registry
        op = registry.get(method)
        if op is None:
            if is_notification:
                return None
            return _encode(error(id_, METHOD_NOT_FOUND, f"Method not found: {method}"))
        try:
            result = await registry.call_json(op, message.get("params"), ctx.for_request(id_))
        except PersonaMCPError as exc:
            if is_notification:
                return None
            return _encode(error(id_, exc.code, exc.message, exc.data))
        except Exception:
            log.exception("%s failed", method)
            if is_notification:
                return None
            return _encode(error(id_, INTERNAL_ERROR, "Internal error"))
        if is_notification:
            return None
        return _result(id_, result)
