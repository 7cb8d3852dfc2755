"""A protocol-faithful fake of Ollama's HTTP API and of the OpenAI-compatible API.

It is served for real, over HTTP on 127.0.0.1 (uvicorn + Starlette in a background
thread), so the providers under test run their own httpx code, headers, streaming and
error handling end to end. Like a real Ollama, one server answers both APIs: the native
one under `/api` and the OpenAI-compatible one under `/v1`.

Behaviour, kept deterministic so tests can assert exact values:

* The reply is `"echo: " + <content of the last user message>` (or `reply(messages)`).
* It is streamed in word pieces (`"echo: "`, `"hello "`, `"there"`), in order.
* Prompt tokens are the whitespace-separated words of every message's content;
  completion tokens are the number of pieces.
* Embeddings are derived from a hash of the text, `embedding_dim` long, L2-normalised
  (see `fake_embedding`).

Every request is recorded (`requests`), so a test can assert on what the client sent.
Knobs, all plain attributes that may be changed while the server runs: `models`,
`api_key` (required as a bearer token on `/v1` when set), `delay` (seconds before a
chat or embedding answer), `chunk_delay` (seconds before each streamed piece),
`fail_status` (answer chat and embedding requests with this HTTP error), `drop_after`
(abort the connection after that many streamed pieces, as a crashing server would) and
`error_after` (report an in-band error after that many pieces: an `{"error": ...}` line
for Ollama, a `data: {"error": ...}` event for the OpenAI API) and `truncate_after` (end
the body cleanly after that many pieces, without Ollama's `done` line or `[DONE]`).

Structured output is honoured as the real servers do: Ollama's `format` (a JSON schema,
or `"json"`) and OpenAI's `response_format` (`{"type": "json_schema", "json_schema":
{"name", "schema", "strict"?}}` or `{"type": "json_object"}`) make the answer a JSON
value: `structured(schema, messages)` when set, else a deterministic instance of the
schema (`schema_instance`: every property, the first enum value, strings that echo the
question). An OpenAI `json_schema` without `name` or `schema` is refused with 400, as
OpenAI refuses it.

    with FakeLLMServer(models=["llama3.1:8b"]) as fake:
        provider = OllamaProvider(fake.url, "llama3.1:8b")
        ...
        assert fake.last("/api/chat").json["stream"] is False
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

HOST = "127.0.0.1"
DEFAULT_MODELS = ("llama3.1:8b", "nomic-embed-text:latest")
OLLAMA_VERSION = "0.9.0"
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
# A fixed creation time keeps /api/tags and /v1/models byte-for-byte stable.
MODEL_CREATED = 1_750_000_000

Reply = Callable[[list[dict[str, Any]]], str]
Structured = Callable[[dict[str, Any], list[dict[str, Any]]], Any]


class SimulatedCrash(RuntimeError):
    """Raised inside a streamed answer so the server drops the connection mid-body."""


@dataclass(frozen=True)
class FakeModel:
    name: str
    family: str | None = None
    size: int | None = None

    @property
    def tagged(self) -> str:
        return _tagged(self.name)

    def family_name(self) -> str:
        if self.family:
            return self.family
        match = re.match(r"[a-z]+", self.name.lower())
        return match.group(0) if match else "unknown"

    def size_bytes(self) -> int:
        if self.size is not None:
            return self.size
        return 1_000_000_000 + int(hashlib.sha256(self.name.encode()).hexdigest()[:6], 16)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    json: Any  # the parsed body; None when there was none or it was not JSON
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


def _tagged(name: str) -> str:
    """Ollama's name matching: `llama3` means `llama3:latest`."""
    return name if ":" in name else f"{name}:latest"


def fake_embedding(text: str, dim: int = 8) -> list[float]:
    """The fake's embedding of `text`: hash-derived, deterministic, unit length."""
    raw = hashlib.shake_256(text.encode()).digest(4 * dim)
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dim}I", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def echo_reply(messages: list[dict[str, Any]]) -> str:
    last_user = next(
        (m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), ""
    )
    return f"echo: {last_user}"


def schema_instance(
    schema: Any, messages: list[dict[str, Any]], root: Any = None, depth: int = 0
) -> Any:
    """A deterministic value valid against a (simple) JSON schema: every property, the
    first enum value, the smallest allowed number, strings that echo the question."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 20:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return schema_instance(target, messages, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return schema_instance(schema[key][0], messages, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: schema_instance(sub, messages, root, depth + 1)
            for name, sub in properties.items()
        }
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [schema_instance(schema.get("items", {}), messages, root, depth + 1)] * count
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return int(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = echo_reply(messages)
    text = text[: schema.get("maxLength", len(text))]
    return text.ljust(int(schema.get("minLength", 0)), ".")


def split_pieces(text: str) -> list[str]:
    """Word pieces (each with its trailing space) whose concatenation is `text`."""
    return re.findall(r"^\s+|\S+\s*", text) or [text]


def count_words(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in messages)


def unused_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeLLMServer:
    def __init__(
        self,
        *,
        models: Iterable[str | FakeModel] = DEFAULT_MODELS,
        port: int = 0,
        api_key: str | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        fail_status: int | None = None,
        drop_after: int | None = None,
        error_after: int | None = None,
        truncate_after: int | None = None,
        embedding_dim: int = 8,
        version: str = OLLAMA_VERSION,
        reply: Reply | None = None,
        structured: Structured | None = None,
    ) -> None:
        self._defaults: dict[str, Any] = {
            "models": models,
            "api_key": api_key,
            "delay": delay,
            "chunk_delay": chunk_delay,
            "fail_status": fail_status,
            "drop_after": drop_after,
            "error_after": error_after,
            "truncate_after": truncate_after,
            "embedding_dim": embedding_dim,
            "version": version,
            "reply": reply,
            "structured": structured,
        }
        self._requested_port = port
        self.port: int | None = None
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._halting = threading.Event()
        self._epoch = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._apply_defaults()
        self.app = Starlette(routes=self._routes())

    # -- configuration ------------------------------------------------------------

    def _apply_defaults(self) -> None:
        d = self._defaults
        self.models = d["models"]
        self.api_key: str | None = d["api_key"]
        self.delay: float = d["delay"]
        self.chunk_delay: float = d["chunk_delay"]
        self.fail_status: int | None = d["fail_status"]
        self.drop_after: int | None = d["drop_after"]
        self.error_after: int | None = d["error_after"]
        self.truncate_after: int | None = d["truncate_after"]
        self.embedding_dim: int = d["embedding_dim"]
        self.version: str = d["version"]
        self.reply: Reply | None = d["reply"]
        self.structured: Structured | None = d["structured"]

    @property
    def models(self) -> list[FakeModel]:
        return self._models

    @models.setter
    def models(self, models: Iterable[str | FakeModel]) -> None:
        self._models = [m if isinstance(m, FakeModel) else FakeModel(m) for m in models]

    def reset(self) -> None:
        """Back to the constructor's settings, with no recorded requests.

        Pending artificial delays of earlier requests end at once.
        """
        with self._lock:
            self._requests.clear()
            self._epoch += 1
        self._apply_defaults()

    def _find_model(self, name: str) -> FakeModel | None:
        wanted = _tagged(name)
        return next((m for m in self._models if m.tagged == wanted), None)

    # -- what the client sent -----------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.path == path and (method is None or r.method == method.upper())
        ]

    def last(self, path: str) -> RecordedRequest:
        found = self.requests_to(path)
        if not found:
            raise AssertionError(f"the fake received no request to {path}")
        return found[-1]

    async def _record(self, request: Request) -> RecordedRequest:
        body = await request.body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            json=parsed,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        with self._lock:
            self._requests.append(recorded)
        return recorded

    # -- addresses ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base address, as OLLAMA_HOST would name it: http://127.0.0.1:<port>."""
        if self.port is None:
            raise RuntimeError("the fake LLM server has not been started")
        return f"http://{HOST}:{self.port}"

    @property
    def ollama_url(self) -> str:
        return self.url

    @property
    def openai_url(self) -> str:
        """Base address of the OpenAI-compatible API, as OPENAI_BASE_URL would name it."""
        return f"{self.url}/v1"

    # -- lifecycle ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> FakeLLMServer:
        if self._thread is not None:
            raise RuntimeError("the fake LLM server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, self._requested_port or self.port or 0))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._error = None
        self._halting.clear()
        thread = threading.Thread(
            target=self._serve, args=(server, sock), name=f"fake-llm-{self.port}", daemon=True
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                self._thread = self._server = None
                raise RuntimeError(f"the fake LLM server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the fake LLM server did not start in time")
            time.sleep(0.002)
        return self

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported by start(); a thread must not raise
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving; idempotent, bounded by STOP_TIMEOUT. The port may be reused."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._halting.set()  # ends artificial delays, so in-flight answers finish now
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_TIMEOUT)
        self._server = self._thread = None
        if thread.is_alive():
            raise RuntimeError("the fake LLM server did not stop in time")

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def astart(self) -> FakeLLMServer:
        """start() without blocking the caller's event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def __aenter__(self) -> FakeLLMServer:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # -- shared behaviour -----------------------------------------------------------

    async def _pause(self, seconds: float, epoch: int) -> None:
        """Sleep, but wake early when the server stops or is reset."""
        deadline = time.monotonic() + seconds
        while not self._halting.is_set() and self._epoch == epoch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.01))

    def _answer(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None
    ) -> tuple[list[str], int]:
        if schema is not None:
            value = (self.structured or schema_instance)(schema, messages)
            text = json.dumps(value)
        else:
            text = (self.reply or echo_reply)(messages)
        return split_pieces(text), count_words(messages)

    def _routes(self) -> list[Route]:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        return [
            Route("/", self._ollama_root, methods=["GET", "HEAD"]),
            Route("/api/version", self._ollama_version, methods=["GET"]),
            Route("/api/tags", self._ollama_tags, methods=["GET"]),
            Route("/api/chat", self._ollama_chat, methods=["POST"]),
            Route("/api/embed", self._ollama_embed, methods=["POST"]),
            Route("/v1/models", self._openai_models, methods=["GET"]),
            Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
            Route("/v1/embeddings", self._openai_embeddings, methods=["POST"]),
            Route("/{path:path}", self._not_found, methods=methods),
        ]

    async def _not_found(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("404 page not found", status_code=404)

    # -- Ollama: /api ---------------------------------------------------------------

    @staticmethod
    def _ollama_error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def _ollama_check(self, recorded: RecordedRequest) -> tuple[dict[str, Any], str] | Response:
        body = recorded.json
        if not isinstance(body, dict):
            return self._ollama_error(400, "invalid character in request body")
        model = body.get("model")
        if not model or not isinstance(model, str):
            return self._ollama_error(400, "model is required")
        if self._find_model(model) is None:
            return self._ollama_error(404, f'model "{model}" not found, try pulling it first')
        if self.fail_status is not None:
            return self._ollama_error(
                self.fail_status, "llama runner process has terminated: exit status 2"
            )
        return body, model

    async def _ollama_root(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("Ollama is running")

    async def _ollama_version(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"version": self.version})

    async def _ollama_tags(self, request: Request) -> Response:
        await self._record(request)
        models = []
        for m in self._models:
            family = m.family_name()
            models.append(
                {
                    "name": m.tagged,
                    "model": m.tagged,
                    "modified_at": "2025-06-15T10:00:00.000000000Z",
                    "size": m.size_bytes(),
                    "digest": hashlib.sha256(m.tagged.encode()).hexdigest(),
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": family,
                        "families": [family],
                        "parameter_size": "8.0B",
                        "quantization_level": "Q4_K_M",
                    },
                }
            )
        return JSONResponse({"models": models})

    async def _ollama_chat(self, request: Request) -> Response:
        recorded = await self._record(request)
        epoch = self._epoch
        await self._pause(self.delay, epoch)
        checked = self._ollama_check(recorded)
        if isinstance(checked, Response):
            return checked
        body, model = checked
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            return self._ollama_error(400, "messages must be a list")
        output_format = body.get("format")
        if output_format not in (None, "", "json") and not isinstance(output_format, dict):
            return self._ollama_error(400, 'invalid format: must be "json" or a JSON schema')
        schema = None
        if output_format == "json":
            schema = {"type": "object"}
        elif isinstance(output_format, dict):
            schema = output_format
        pieces, prompt_count = self._answer(messages, schema)
        final = {
            "model": model,
            "created_at": _now_rfc3339(),
            "message": {"role": "assistant", "content": ""},
            "done_reason": "stop",
            "done": True,
            "total_duration": 1_000_000 * (prompt_count + len(pieces)),
            "load_duration": 100_000,
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": 100_000 * prompt_count,
            "eval_count": len(pieces),
            "eval_duration": 200_000 * len(pieces),
        }
        if body.get("stream", True) is False:  # Ollama streams unless told not to
            final["message"] = {"role": "assistant", "content": "".join(pieces)}
            return JSONResponse(final)

        chunk_delay, drop_after, error_after = self.chunk_delay, self.drop_after, self.error_after
        truncate_after = self.truncate_after

        async def lines() -> AsyncIterator[bytes]:
            for i, piece in enumerate(pieces):
                if drop_after is not None and i >= drop_after:
                    raise SimulatedCrash("the fake Ollama crashed mid-answer")
                if error_after is not None and i >= error_after:
                    yield _ndjson({"error": "an error was encountered while running the model"})
                    return
                if truncate_after is not None and i >= truncate_after:
                    return
                await self._pause(chunk_delay, epoch)
                yield _ndjson(
                    {
                        "model": model,
                        "created_at": _now_rfc3339(),
                        "message": {"role": "assistant", "content": piece},
                        "done": False,
                    }
                )
            final["created_at"] = _now_rfc3339()
            yield _ndjson(final)

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def _ollama_embed(self, request: Request) -> Response:
        recorded = await self._record(request)
        await self._pause(self.delay, self._epoch)
        checked = self._ollama_check(recorded)
        if isinstance(checked, Response):
            return checked
        body, model = checked
        inputs = _inputs(body.get("input"))
        if inputs is None:
            return self._ollama_error(400, "invalid input type")
        return JSONResponse(
            {
                "model": model,
                "embeddings": [fake_embedding(text, self.embedding_dim) for text in inputs],
                "total_duration": 1_000_000,
                "load_duration": 100_000,
                "prompt_eval_count": sum(len(text.split()) for text in inputs),
            }
        )

    # -- OpenAI-compatible: /v1 -------------------------------------------------------

    @staticmethod
    def _openai_error(
        status: int, message: str, type_: str = "invalid_request_error", code: str | None = None
    ) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": message, "type": type_, "param": None, "code": code}},
            status_code=status,
        )

    def _openai_auth(self, recorded: RecordedRequest) -> Response | None:
        if self.api_key is None:
            return None
        given = recorded.headers.get("authorization", "")
        if not given:
            return self._openai_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if given != f"Bearer {self.api_key}":
            shown = given.removeprefix("Bearer ")
            return self._openai_error(
                401,
                f"Incorrect API key provided: {shown[:3]}***{shown[-2:]}.",
                code="invalid_api_key",
            )
        return None

    def _openai_check(self, recorded: RecordedRequest) -> tuple[dict[str, Any], str] | Response:
        refused = self._openai_auth(recorded)
        if refused is not None:
            return refused
        body = recorded.json
        if not isinstance(body, dict):
            return self._openai_error(400, "We could not parse the JSON body of your request.")
        model = body.get("model")
        if not model or not isinstance(model, str):
            return self._openai_error(400, "you must provide a model parameter")
        if self._find_model(model) is None:
            return self._openai_error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        if self.fail_status is not None:
            return self._openai_error(
                self.fail_status,
                "The server had an error while processing your request.",
                "api_error",
            )
        return body, model

    async def _openai_models(self, request: Request) -> Response:
        recorded = await self._record(request)
        refused = self._openai_auth(recorded)
        if refused is not None:
            return refused
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": m.name,
                        "object": "model",
                        "created": MODEL_CREATED,
                        "owned_by": "library",
                    }
                    for m in self._models
                ],
            }
        )

    async def _openai_chat(self, request: Request) -> Response:
        recorded = await self._record(request)
        epoch = self._epoch
        await self._pause(self.delay, epoch)
        checked = self._openai_check(recorded)
        if isinstance(checked, Response):
            return checked
        body, model = checked
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._openai_error(400, "'messages' is a required property")
        schema = None
        response_format = body.get("response_format")
        if response_format is not None:
            kind = response_format.get("type") if isinstance(response_format, dict) else None
            spec = response_format.get("json_schema") if kind == "json_schema" else None
            if kind == "json_object":
                schema = {"type": "object"}
            elif kind == "json_schema" and isinstance(spec, dict):
                for key in ("name", "schema"):
                    if key not in spec:
                        return self._openai_error(
                            400, f"Missing required parameter: 'response_format.json_schema.{key}'."
                        )
                schema = spec["schema"]
            elif kind != "text":
                return self._openai_error(
                    400, f"Invalid value for 'response_format': {response_format!r}."
                )
        pieces, prompt_count = self._answer(messages, schema)
        usage = {
            "prompt_tokens": prompt_count,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_count + len(pieces),
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not body.get("stream", False):  # OpenAI answers in one piece unless told to stream
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(pieces)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk_delay, drop_after, error_after = self.chunk_delay, self.drop_after, self.error_after
        truncate_after = self.truncate_after

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                data["usage"] = None  # only the last chunk carries usage
            data.update(extra)
            return _sse(data)

        async def events() -> AsyncIterator[bytes]:
            for i, piece in enumerate(pieces):
                if drop_after is not None and i >= drop_after:
                    raise SimulatedCrash("the fake OpenAI-compatible server crashed mid-answer")
                if error_after is not None and i >= error_after:
                    yield _sse(
                        {
                            "error": {
                                "message": "The server had an error while processing your request.",
                                "type": "server_error",
                                "param": None,
                                "code": None,
                            }
                        }
                    )
                    return
                if truncate_after is not None and i >= truncate_after:
                    return
                await self._pause(chunk_delay, epoch)
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                yield chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
            yield chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
            if include_usage:
                yield chunk([], usage=usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def _openai_embeddings(self, request: Request) -> Response:
        recorded = await self._record(request)
        await self._pause(self.delay, self._epoch)
        checked = self._openai_check(recorded)
        if isinstance(checked, Response):
            return checked
        body, model = checked
        inputs = _inputs(body.get("input"))
        if not inputs:
            return self._openai_error(400, "'input' is a required property")
        tokens = sum(len(text.split()) for text in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": fake_embedding(text, self.embedding_dim),
                    }
                    for i, text in enumerate(inputs)
                ],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _inputs(value: Any) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _ndjson(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
