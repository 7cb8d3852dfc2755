"""A local GGUF model run in-process by llama.cpp (the `xllamacpp` wheel).

The model loads on one dedicated thread, in the background, the first time it is
needed (or as soon as the provider is built when LLM_PROVIDER=llamacpp); every
generation runs on that same thread, so the event loop never waits on llama.cpp. Text
streams back to the loop piece by piece; cancelling the awaiting task, a timeout, or a
failing `on_delta` stops the generation at the next token.

xllamacpp wraps llama.cpp's own server, which always opens a listener as well. It is
bound to a Unix socket in a private (0700) temporary folder and requires a random API
key, so nothing is reachable over the network; requests go through its in-process API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from persona_mcp.errors import InvalidParams, Unavailable
from persona_mcp.llm.base import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    LLMProvider,
    ModelInfo,
    OnDelta,
    ProviderHealth,
    StructuredResult,
)

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
INSTALL_HINT = "pip install 'persona-mcp[llamacpp]'"


def default_threads() -> int:
    """Half the cores, at least one. On 2 cores one thread decoded SmolLM2 at 41-53 tok/s
    whether or not another process was busy; two threads reached 61 tok/s on an idle
    machine but 4 tok/s beside one busy process (`benchmarks/llamacpp.py --matrix`)."""
    return max(1, min(8, (os.cpu_count() or 1) // 2))


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Put SIGINT and SIGTERM handling back as it was once the block ends.

    xllamacpp installs its own handlers for both while it starts a model (they stop its
    task loop, and a second signal calls exit(1)), which would take Ctrl-C and `kill`
    away from the server. The handlers are saved and restored through libc's sigaction,
    from this (non-main) thread, as opaque bytes: no layout of `struct sigaction` is
    assumed, only that it fits in the buffer.
    """
    if sys.platform == "win32":  # xllamacpp uses a console handler there instead
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    saved: dict[int, ctypes.Array[ctypes.c_char]] = {}
    for which in (signal.SIGINT, signal.SIGTERM):
        buffer = ctypes.create_string_buffer(1024)
        if libc.sigaction(int(which), None, buffer) == 0:
            saved[int(which)] = buffer
    try:
        yield
    finally:
        for signum, buffer in saved.items():
            if libc.sigaction(signum, buffer, None) != 0:
                log.warning("llamacpp: could not restore the handler of signal %d", signum)


class ModelLoadError(Exception):
    """The GGUF file could not be loaded; the message says what to configure."""


@dataclass
class _Outcome:
    """What one generation produced, filled in on the model thread."""

    pieces: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    error_type: str | None = None
    stopped: bool = False

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class LlamaCppProvider:
    name = "llamacpp"

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int | None = None,
        context_tokens: int = 4096,
        max_tokens: int = 512,
        timeout: float = 120.0,
        verbose: bool = False,
    ) -> None:
        self.model_path = model_path
        self.default_model = model_path.name
        self.threads = threads or default_threads()
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self.timeout = timeout
        self._verbose = verbose
        # One worker: loading and every generation share it, so they run in order and a
        # generation queued behind the load simply waits for it.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="llamacpp"
        )
        self._guard = threading.Lock()
        self._load_job: concurrent.futures.Future[None] | None = None
        self._server: Any = None  # xllamacpp.Server, once loaded
        self._socket_dir: str | None = None
        self._load_error: str | None = None
        self._stops: set[threading.Event] = set()
        self._closed = False

    # -- loading ---------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._server is not None

    @property
    def load_error(self) -> str | None:
        """Why loading failed (sticky until restart), or None."""
        return self._load_error

    def usable(self) -> bool:
        """Whether this provider can be expected to answer: the file exists and did not
        fail to load."""
        return self._load_error is None and self.model_path.is_file()

    def start_loading(self) -> None:
        """Begin loading on the model thread, once; returns at once."""
        with self._guard:
            if self._load_job is None and not self._closed:
                self._load_job = self._executor.submit(self._load_quietly)

    async def wait_loaded(self) -> None:
        """Wait until the model is loaded; Unavailable (saying what to configure) if not."""
        self.start_loading()
        if self._load_job is None:
            raise self._unavailable("The local model has been shut down with the server")
        await asyncio.wrap_future(self._load_job)
        if self._load_error is not None:
            raise self._unavailable(self._load_error)

    def _unavailable(self, message: str) -> Unavailable:
        return Unavailable(message, {"provider": self.name, "model_path": str(self.model_path)})

    def _load_quietly(self) -> None:
        try:
            self._load()
        except ModelLoadError as exc:
            self._load_error = str(exc)
            log.error("llamacpp: %s", exc)

    def _load(self) -> None:
        path = self.model_path
        if not path.is_file():
            raise ModelLoadError(
                f"LLAMA_MODEL_PATH={path} is not a file: set it to a GGUF model file "
                "(or choose another LLM_PROVIDER)"
            )
        try:
            with path.open("rb") as f:
                magic = f.read(4)
        except OSError as exc:
            raise ModelLoadError(f"LLAMA_MODEL_PATH={path} cannot be read ({exc})") from exc
        if magic != GGUF_MAGIC:
            raise ModelLoadError(
                f"LLAMA_MODEL_PATH={path} is not a GGUF file: llama.cpp loads .gguf models "
                "(convert it, or download a GGUF build of the model)"
            )
        # OpenMP reads this when the library loads: its waiting threads spin by default,
        # which starves the rest of the server (and the model itself) on a small machine.
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        try:
            import xllamacpp
        except ImportError as exc:
            raise ModelLoadError(
                f"LLM_PROVIDER=llamacpp needs the xllamacpp package: {INSTALL_HINT}"
            ) from exc
        socket_dir = tempfile.mkdtemp(prefix="persona-mcp-llama-")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.context_tokens
        params.n_parallel = 1
        params.n_predict = self.max_tokens
        params.warmup = False
        params.endpoint_metrics = True
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.n_threads_http = 1
        params.hostnames = [os.path.join(socket_dir, "llama.sock")]
        params.api_keys = [secrets.token_urlsafe(32)]
        params.verbosity = 3 if self._verbose else 0
        try:
            with _signal_handlers_kept():
                server = xllamacpp.Server(params)
        except RuntimeError as exc:
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise ModelLoadError(
                f"llama.cpp could not load {path}: the file may be damaged or of an "
                "architecture this llama.cpp build does not know, or LLAMA_CONTEXT_TOKENS="
                f"{self.context_tokens} needs more memory than there is. Set LLAMA_MODEL_PATH "
                "to another GGUF file, or DEBUG_MODE=true to see llama.cpp's log"
            ) from exc
        # llama.cpp's task loop starts on its own thread after the constructor returns and
        # marks itself running when it starts, so a shutdown that came first would be lost
        # and the destructor would wait forever (holding the GIL). A metrics request is
        # answered by that loop: once it returns, the loop runs and shutdown is safe.
        server.handle_metrics()
        self._server = server
        self._socket_dir = socket_dir
        log.info("llamacpp: loaded %s (%s)", path.name, self._shape())

    # -- generation --------------------------------------------------------------------

    def _fit(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        """The messages that fit the context with room for the reply: the oldest turns
        of the history go first; the system prompt and the last message always stay.
        Tokens are estimated at 3 characters each (cautious for English)."""
        budget = (self.context_tokens - self.max_tokens) * 3
        head, history, last = messages[:1], list(messages[1:-1]), messages[-1:]

        def size(items: list[ChatMessage]) -> int:
            return sum(len(m.content) + 16 for m in items)

        while history and size(head) + size(history) + size(last) > budget:
            history.pop(0)
        return head + history + last

    def _body(
        self, request: ChatRequest, messages: list[ChatMessage] | None = None
    ) -> dict[str, Any]:
        chosen = messages if messages is not None else self._fit(request.messages)
        body: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in chosen],
            "max_tokens": self.max_tokens,
            "stream": True,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def _run(
        self, body: dict[str, Any], emit: Callable[[str], None] | None, stop: threading.Event
    ) -> _Outcome:
        """One generation, on the model thread; streamed so that `stop` is honoured."""
        outcome = _Outcome()
        if stop.is_set() or self._server is None:
            outcome.stopped = True
            return outcome

        def on_chunk(chunk: dict[str, Any]) -> bool:
            error = chunk.get("error")
            if error is not None or "code" in chunk:
                detail = error if isinstance(error, dict) else chunk
                outcome.error = str(detail.get("message", detail))
                outcome.error_type = str(detail.get("type", ""))
                return True
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    outcome.pieces.append(piece)
                    if emit is not None:
                        emit(piece)
                if choice.get("finish_reason"):
                    outcome.finish_reason = str(choice["finish_reason"])
            usage = chunk.get("usage") or {}
            timings = chunk.get("timings") or {}
            outcome.prompt_tokens = int(
                usage.get("prompt_tokens", timings.get("prompt_n", outcome.prompt_tokens))
            )
            outcome.completion_tokens = int(
                usage.get("completion_tokens", timings.get("predicted_n", len(outcome.pieces)))
            )
            # Returning True ends the stream; llama.cpp then cancels the task.
            if stop.is_set():
                outcome.stopped = True
                return True
            return False

        self._server.handle_chat_completions(body, on_chunk)
        return outcome

    async def _complete(self, body: dict[str, Any], on_delta: OnDelta | None) -> _Outcome:
        await self.wait_loaded()
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        stop = threading.Event()

        def emit(piece: str | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under us
                loop.call_soon_threadsafe(pieces.put_nowait, piece)

        def run() -> _Outcome:
            try:
                return self._run(body, emit if on_delta else None, stop)
            finally:
                emit(None)

        self._stops.add(stop)
        job = loop.run_in_executor(self._executor, run)
        try:
            async with asyncio.timeout(self.timeout):
                if on_delta is not None:
                    while (piece := await pieces.get()) is not None:
                        await on_delta(piece)
                return await job
        except TimeoutError as exc:
            raise Unavailable(
                f"The local model did not answer within {self.timeout:g} s "
                "(LLM_TIMEOUT_SECONDS); a smaller model, fewer LLAMA_MAX_TOKENS or more "
                "LLAMA_THREADS may help",
                {"provider": self.name, "model": self.default_model},
            ) from exc
        finally:
            # Cancelled, timed out, or `on_delta` failed: the model stops at its next
            # token instead of generating for nobody.
            stop.set()
            self._stops.discard(stop)
            job.add_done_callback(_retrieve)

    def _check(self, outcome: _Outcome) -> None:
        if outcome.error is not None:
            hint = (
                " (raise LLAMA_CONTEXT_TOKENS or shorten the conversation)"
                if outcome.error_type == "exceed_context_size_error"
                else ""
            )
            raise Unavailable(
                f"The local model failed: {outcome.error}{hint}",
                {"provider": self.name, "model": self.default_model},
            )
        if outcome.finish_reason is None:
            raise Unavailable(
                "The local model's answer ended before it was complete",
                {"provider": self.name, "model": self.default_model},
            )

    def _result(self, outcome: _Outcome) -> ChatResult:
        return ChatResult(
            text=outcome.text,
            model=self.default_model,
            provider=self.name,
            tokens_used=outcome.prompt_tokens + outcome.completion_tokens,
        )

    async def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        # One GGUF is loaded: a persona's own `model` (an Ollama name) cannot be honoured
        # here, and the result's `model` says which model really answered.
        messages = self._fit(request.messages)
        outcome = await self._complete(self._body(request, messages), on_delta)
        # Estimates can fall short (digits and rare words take a token each): drop the
        # older half of the history and try again, before any text was streamed.
        while (
            outcome.error_type == "exceed_context_size_error"
            and not outcome.pieces
            and len(messages) > 2
        ):
            history = messages[1:-1]
            messages = [messages[0], *history[len(history) // 2 + 1 :], messages[-1]]
            outcome = await self._complete(self._body(request, messages), on_delta)
        self._check(outcome)
        return self._result(outcome)

    async def generate_json(self, request: ChatRequest, schema: dict[str, Any]) -> StructuredResult:
        """Answer with a JSON value that conforms to `schema`: llama.cpp turns the schema
        into a grammar that constrains every token; the answer is then parsed and checked."""
        import jsonschema

        try:
            validator_class = jsonschema.validators.validator_for(schema)
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidParams(f"Invalid JSON schema: {exc.message}") from exc
        body = self._body(request)
        body["json_schema"] = schema
        outcome = await self._complete(body, None)
        if outcome.error is not None and outcome.error_type == "invalid_request_error":
            raise InvalidParams(f"llama.cpp cannot use this JSON schema: {outcome.error}")
        self._check(outcome)
        try:
            value = json.loads(outcome.text)
        except ValueError as exc:
            cut = outcome.finish_reason == "length"
            raise Unavailable(
                f"The local model's JSON answer was cut off at LLAMA_MAX_TOKENS={self.max_tokens}"
                if cut
                else f"The local model's answer is not valid JSON: {exc}",
                {"provider": self.name, "model": self.default_model},
            ) from exc
        errors = sorted(validator_class(schema).iter_errors(value), key=lambda e: e.path)
        if errors:
            raise Unavailable(
                f"The local model's JSON answer does not match the schema: {errors[0].message}",
                {"provider": self.name, "model": self.default_model},
            )
        return StructuredResult(value=value, result=self._result(outcome))

    # -- the rest of the Protocol -----------------------------------------------------------

    async def metrics(self) -> dict[str, float]:
        """llama.cpp's own counters (tokens predicted, prompt tokens, ...), by name."""
        await self.wait_loaded()
        text: str = await asyncio.wrap_future(
            self._executor.submit(lambda: str(self._server.handle_metrics()))
        )
        figures: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("llamacpp:"):
                key, _, value = line.partition(" ")
                with contextlib.suppress(ValueError):
                    figures[key.removeprefix("llamacpp:")] = float(value)
        return figures

    async def list_models(self) -> list[ModelInfo]:
        try:
            stat = await asyncio.to_thread(self.model_path.stat)
        except OSError as exc:
            raise self._unavailable(
                f"LLAMA_MODEL_PATH={self.model_path} cannot be read ({type(exc).__name__}): "
                "set it to a GGUF model file"
            ) from exc
        return [
            ModelInfo(
                name=self.default_model,
                size=stat.st_size,
                modified_at=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
                family="gguf",
            )
        ]

    async def health(self) -> ProviderHealth:
        address = str(self.model_path)
        if self._load_error is not None:
            return ProviderHealth(self.name, False, self._load_error, address)
        if not await asyncio.to_thread(self.model_path.is_file):
            return ProviderHealth(
                self.name, False, f"LLAMA_MODEL_PATH={self.model_path} is not a file", address
            )
        state = "loaded" if self.loaded else "loading" if self._load_job else "not loaded yet"
        return ProviderHealth(
            self.name,
            True,
            f"{self.default_model} in-process, {state} ({self._shape()})",
            address,
        )

    def _shape(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{threads}, context {self.context_tokens} tokens"

    async def resolve(self) -> LLMProvider:
        return self

    async def aclose(self) -> None:
        with self._guard:
            if self._closed:
                return
            self._closed = True
        for stop in list(self._stops):
            stop.set()
        # Unload on the model thread, after whatever runs there has stopped.
        await asyncio.wrap_future(self._executor.submit(self._unload))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _unload(self) -> None:
        self._server = None  # the Server's destructor joins llama.cpp's own threads
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


def _retrieve(job: asyncio.Future[_Outcome]) -> None:
    """Collect the outcome of a generation nobody awaits any more (cancelled or timed
    out), so that its exception, if any, is logged instead of reported as never
    retrieved."""
    if not job.cancelled() and job.exception() is not None:
        log.warning("llamacpp: an abandoned generation failed: %r", job.exception())
