"""WebSocket JSON-RPC benchmark: start-up, latency, throughput, 10,000 idle connections
with the server's memory per connection, and event fan-out to 1,000 subscribers.

Prints goal / measured / verdict rows; it is not a test. By default it starts its own
server (the installed `persona-mcp` console script next to this interpreter, a temporary
data directory, `--llm offline`, a free loopback port, its open-files limit raised for
the connections), measures, and always stops the server again:

    .venv/bin/python benchmarks/ws_rpc.py            # full run (about 4 min)
    .venv/bin/python benchmarks/ws_rpc.py --quick    # short run (about 1 min)
    .venv/bin/python benchmarks/ws_rpc.py --connections 2000 --subscribers 200
    .venv/bin/python benchmarks/ws_rpc.py --url ws://127.0.0.1:8000/mcp --pid 1234

Both include waiting for the server's embedding model to finish loading in the
background (`--settle-timeout 0` skips the wait, `--embedding-provider none` starts the
server without a model).

Measurements:

1. start-up, from process start: the TCP connection accepted (the server listens before
   its heavy imports, so a connect succeeds and waits in the backlog), the first
   WebSocket handshake accepted (goal < 2 s), the first request answered, /health;
2. round-trip latency of `persona.list`, one client, requests strictly one after another;
3. throughput and p50/p99 with many clients (`--clients 50,500`, one connection each)
   sending back to back for a fixed time (or a fixed count), for `persona.list`, for
   an unknown method (the -32601 error path: the protocol-overhead ceiling) and for
   `persona.list` with a param it does not take (-32602, the validation path). Back to
   back, a client's latency is mostly its wait behind the others (about clients / rate).
   The load generator runs in a separate process (`--load-procs N`, 0 = inside this
   process) with the `websockets` asyncio client on uvloop when it is installed. The
   server's and the generator's CPU use are reported, and the server's CPU time per
   request, which depends least on other load on the machine (goal < 50 us for the
   cheap call and both error paths, issue 10);
4. event fan-out: `--subscribers` connections (in client processes) subscribe to
   `memory.changed`; one more connection stores `--stores` memories, one `memory.store`
   at a time (`--store-in-flight K`: K at a time). Reported: events delivered in total
   per second, the delay from a stamp the publisher takes just before sending each store
   to its receipt at each subscriber (so it includes the store itself; the delay from
   the store's acknowledgement is shown too, and can be negative as the server publishes
   before it answers), events lost (by the subscribers' count, and by the server's, from
   `events.unsubscribe`). Stamps are time.monotonic(), CLOCK_MONOTONIC, one clock for all
   processes on Linux;
5. many idle connections held at once (`--connections`, default 10,000, opened from one
   client process per 2,500): each is checked with one request, the server's resident
   memory (VmRSS, and its anonymous part RssAnon) is read before and after, the
   connections are held for `--hold` seconds (past the server's 20 s ping interval) and
   each is used once more. A priming round of connections first makes the server run a
   full garbage collection, so that unrelated garbage is not freed in the middle of the
   measurement.

Everything is bounded in time and stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds, free_port, percentile

try:
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - orjson is a server dependency

    def _loads(data: bytes) -> Any:
        return json.loads(data)


T = TypeVar("T")

LIST = "persona.list"
UNKNOWN = "bench.no_such_method"
METHOD_NOT_FOUND = -32601
# A method name, a space, then its params as JSON (see `request`): the validation path.
BAD_PARAMS = 'persona.list {"bench_no_such_param":1}'
INVALID_PARAMS = -32602

STARTUP_TIMEOUT = 20.0  # seconds to wait for the server to come up
OPEN_TIMEOUT = 10.0  # per WebSocket handshake
CLOSE_TIMEOUT = 2.0

TARGET_STARTUP_S = 2.0
TARGET_P50_MS = 1.0
TARGET_RPS = 5000.0
TARGET_CPU_US = 50.0  # server CPU per cheap call, the error paths included (issue 10)


# -- small helpers -------------------------------------------------------------------


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """uvloop's event loop when it is installed (a cheaper client), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def run_async(coro: Awaitable[T]) -> T:
    factory, _ = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


def summarize_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    values = sorted(latencies_s)
    if not values:
        return {"p50_ms": float("nan"), "p90_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "p50_ms": percentile(values, 50) * 1e3,
        "p90_ms": percentile(values, 90) * 1e3,
        "p99_ms": percentile(values, 99) * 1e3,
        "max_ms": values[-1] * 1e3,
        "mean_ms": sum(values) / len(values) * 1e3,
    }


def raise_nofile(needed: int) -> tuple[int, int]:
    """Raise the soft open-files limit to at least `needed` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft, hard


def _set_nofile(needed: int) -> None:
    """Set the soft open-files limit to `needed` (capped by the hard limit); for a child."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def proc_nofile(pid: int) -> int | None:
    """The soft open-files limit of a running process, from /proc/PID/limits."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            value = line.split()[3]
            return None if value == "unlimited" else int(value)
    return None


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, VmHWM (kB) of a process, from /proc; empty if unreadable.

    VmRSS = RssAnon + RssFile + RssShmem. RssFile (mapped libraries, model files) can
    shrink at any time when the kernel reclaims clean pages, so per-connection memory
    is computed from RssAnon, the heap, which is where connection state lives.
    """
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"}:
            out[key] = int(rest.split()[0])
    return out


async def cpu_share(pid: int | None, start_at: float, stop_at: float) -> float | None:
    """The fraction of one core `pid` used between two time.monotonic() instants."""
    if not pid:
        return None
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    c1, t1 = cpu_seconds(pid), time.monotonic()
    if c0 is None or c1 is None or t1 <= t0:
        return None
    return (c1 - c0) / (t1 - t0)


async def machine_busy(seconds: float) -> float | None:
    """The fraction of all CPUs busy over `seconds` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        await asyncio.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def request(method: str, id_: int) -> str:
    """A request; `method` may carry its params after a space ("name {...}")."""
    name, _, params = method.partition(" ")
    return f'{{"jsonrpc":"2.0","id":{id_},"method":"{name}","params":{params or "{}"}}}'


def check_reply(reply: bytes | str, id_: int, expect_error: int | None) -> None:
    """Raise unless `reply` answers request `id_` as expected.

    The fast path compares the prefix the server's serializer produces; anything else is
    parsed in full, so a differently ordered but correct reply is still accepted.
    """
    data = reply.encode() if isinstance(reply, str) else reply
    kind = b'"error":{"code":%d' % expect_error if expect_error is not None else b'"result"'
    if data.startswith(b'{"jsonrpc":"2.0","id":%d,%s' % (id_, kind)):
        return
    message = _loads(data)
    if not isinstance(message, dict) or message.get("id") != id_:
        raise RuntimeError(f"unexpected reply to id {id_}: {data[:200]!r}")
    if expect_error is None and "result" not in message:
        raise RuntimeError(f"request {id_} failed: {data[:300]!r}")
    if expect_error is not None and message.get("error", {}).get("code") != expect_error:
        raise RuntimeError(f"request {id_}: expected error {expect_error}: {data[:300]!r}")


async def open_ws(url: str, within: float = OPEN_TIMEOUT) -> ClientConnection:
    return await connect(
        url,
        compression=None,  # the server disables permessage-deflate anyway
        proxy=None,  # loopback only: never go through a proxy from the environment
        open_timeout=within,
        close_timeout=CLOSE_TIMEOUT,
        ping_interval=None,  # no keepalive traffic during measurements
        max_size=16 * 1024 * 1024,
    )


async def close_all(conns: Sequence[ClientConnection], within: float = 15.0) -> None:
    if not conns:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


async def http_get_json(host: str, port: int, path: str, within: float = 2.0) -> Any:
    """A minimal HTTP/1.1 GET (stdlib only, no proxy); returns the parsed JSON body."""
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"GET {path}: {status!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return _loads(body)


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


# -- the server under test -----------------------------------------------------------


@dataclass
class Server:
    url: str
    pid: int | None
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    log_path: Path | None = None
    startup: dict[str, Any] = field(default_factory=dict)

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def server_command() -> list[str]:
    script = Path(sys.executable).with_name("persona-mcp")
    if not script.exists():
        found = shutil.which("persona-mcp")
        if found is None:
            raise SystemExit(f"persona-mcp console script not found next to {sys.executable}")
        script = Path(found)
    return [str(script)]


def spawn_server(embedding_provider: str | None = None, nofile: int | None = None) -> Server:
    """Start `persona-mcp serve` on a free loopback port with a temporary data directory.

    `nofile` sets the server's own open-files limit (soft, capped by the hard limit) in
    the child before it execs, whatever this process's limit is.
    """
    workdir = Path(tempfile.mkdtemp(prefix="persona-bench-"))
    port = free_port()
    log_path = workdir / "server.log"
    cmd = [
        *server_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(workdir / "data"),
        "--llm",
        "offline",
        "--env-file",
        str(workdir / "no.env"),  # ignore any .env in the current directory
    ]
    url = f"ws://127.0.0.1:{port}/mcp"
    # Measure the server, not its limits: no request rate, room for every connection.
    env = dict(os.environ) | {"RATE_LIMIT_PER_MINUTE": "0", "MAX_CONNECTIONS": "1000000"}
    if embedding_provider:
        env["EMBEDDING_PROVIDER"] = embedding_provider
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: _set_nofile(nofile)) if nofile else None,
        )
    server = Server(url=url, pid=proc.pid, process=proc, workdir=workdir, log_path=log_path)
    server.startup["t0"] = t0
    return server


async def wait_ready(server: Server) -> None:
    """Time (bounded) the server's start-up from process start until:

    - its socket takes a TCP connection (the kernel completes the handshake as soon as the
      server listens, which it does before its heavy imports),
    - a WebSocket handshake is accepted (the app is up: a connect made earlier waits in
      the listen backlog and is answered then),
    - the first request (`persona.list`) is answered, and /health answers.
    """
    proc, url = server.process, server.url
    assert proc is not None
    host, port = server.host_port
    t0: float = server.startup.pop("t0")
    deadline = t0 + STARTUP_TIMEOUT

    def remaining() -> float:
        return max(0.1, deadline - time.perf_counter())

    def check_alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode} during startup:\n{server.log_tail()}"
            )

    async def first_health() -> tuple[float, Any]:
        while True:
            check_alive()
            try:
                body = await http_get_json(host, port, "/health", within=remaining())
                return time.perf_counter() - t0, body
            except (OSError, RuntimeError, TimeoutError, ValueError):
                if time.perf_counter() >= deadline:
                    raise
                await asyncio.sleep(0.01)

    t_tcp: float | None = None
    while t_tcp is None:
        check_alive()
        if time.perf_counter() >= deadline:
            raise RuntimeError(f"server not listening after {STARTUP_TIMEOUT} s")
        try:
            async with asyncio.timeout(1.0):
                _, writer = await asyncio.open_connection(host, port)
            t_tcp = time.perf_counter() - t0
            writer.close()
        except (OSError, TimeoutError):
            await asyncio.sleep(0.005)
    health_task = asyncio.create_task(first_health())
    try:
        ws: ClientConnection | None = None
        while ws is None:
            check_alive()
            if time.perf_counter() >= deadline:
                raise RuntimeError(
                    f"no WebSocket accepted after {STARTUP_TIMEOUT} s:\n{server.log_tail()}"
                )
            try:
                ws = await open_ws(url, within=remaining())
            except Exception:  # refused or reset while the server starts: try again
                await asyncio.sleep(0.01)
        t_ws = time.perf_counter() - t0
        try:
            async with asyncio.timeout(remaining()):
                await ws.send(request(LIST, 0))
                check_reply(await ws.recv(decode=False), 0, None)
            t_reply = time.perf_counter() - t0
        finally:
            await ws.close()
        t_health, health = await asyncio.wait_for(health_task, remaining())
    finally:
        health_task.cancel()
    server.startup = {
        "tcp_accept_s": t_tcp,
        "health_s": t_health,
        "ws_accept_s": t_ws,
        "first_reply_s": t_reply,
        "health": health,
    }


async def wait_settled(server: Server, limit: float) -> dict[str, Any]:
    """Wait (at most `limit` s) until the embedding model has finished loading.

    The server loads it in the background after it starts answering; measuring while it
    loads would charge its CPU and memory to the WebSocket door.
    """
    host, port = server.host_port
    t0 = time.perf_counter()
    health: dict[str, Any] = {}
    while True:
        health = await http_get_json(host, port, "/health", within=5.0)
        emb = health.get("embedder") or {}
        settled = bool(emb.get("ready") or emb.get("error") or emb.get("provider") == "none")
        waited = time.perf_counter() - t0
        if settled or waited >= limit:
            return {"settled": settled, "waited_s": waited, "embedder": emb}
        await asyncio.sleep(0.1)


# -- measurement 1: sequential latency -------------------------------------------------


async def measure_latency(url: str, warmup: int, count: int) -> dict[str, Any]:
    ws = await open_ws(url)
    try:
        async with asyncio.timeout(30 + (warmup + count) * 0.05):
            for i in range(warmup):
                await ws.send(request(LIST, i))
                check_reply(await ws.recv(decode=False), i, None)
            latencies = array("d")
            perf = time.perf_counter
            t_start = perf()
            for i in range(warmup, warmup + count):
                msg = request(LIST, i)
                t = perf()
                await ws.send(msg)
                reply = await ws.recv(decode=False)
                latencies.append(perf() - t)
                check_reply(reply, i, None)
            elapsed = perf() - t_start
            size = len(reply)
    finally:
        await ws.close()
    return {
        "requests": count,
        "reply_bytes": size,
        "sequential_rps": count / elapsed,
        **summarize_ms(latencies),
    }


# -- measurement 2: throughput under concurrency ------------------------------------


@dataclass
class LoadResult:
    completed: int
    t_first: float  # time.monotonic() (system-wide on Linux, comparable across processes)
    t_last: float
    latencies: array[float]


async def _client_loop(
    ws: ClientConnection,
    method: str,
    expect_error: int | None,
    start_at: float,
    stop_at: float | None,
    count: int | None,
) -> LoadResult:
    latencies: array[float] = array("d")
    perf = time.perf_counter
    mono = time.monotonic
    delay = start_at - mono()
    if delay > 0:
        await asyncio.sleep(delay)
    t_first = mono()
    i = 0
    while True:
        if count is not None:
            if i >= count:
                break
        elif stop_at is not None and mono() >= stop_at:
            break
        msg = request(method, i)
        t = perf()
        await ws.send(msg)
        reply = await ws.recv(decode=False)
        latencies.append(perf() - t)
        check_reply(reply, i, expect_error)
        i += 1
    return LoadResult(i, t_first, mono(), latencies)


async def _load_clients(
    url: str,
    clients: int,
    method: str,
    expect_error: int | None,
    wait_go: Callable[[], Awaitable[tuple[float, float | None]]],
    count: int | None,
    time_limit: float,
) -> tuple[list[LoadResult], float]:
    """Open `clients` connections, wait for the go signal, run, close.

    Returns the per-client results and the CPU seconds this process spent running them.
    """
    conns: list[ClientConnection] = []
    try:
        async with asyncio.timeout(OPEN_TIMEOUT + 5):
            conns = list(await asyncio.gather(*(open_ws(url) for _ in range(clients))))
        start_at, stop_at = await wait_go()
        cpu0 = time.process_time()
        async with asyncio.timeout(time_limit):
            results = await asyncio.gather(
                *(_client_loop(ws, method, expect_error, start_at, stop_at, count) for ws in conns)
            )
        return list(results), time.process_time() - cpu0
    finally:
        await close_all(conns)


def _load_worker(
    pipe: multiprocessing.connection.Connection,
    url: str,
    clients: int,
    method: str,
    expect_error: int | None,
    count: int | None,
    time_limit: float,
) -> None:
    """Entry point of a load-generator process: reports over `pipe`."""

    async def wait_go() -> tuple[float, float | None]:
        pipe.send(("ready", None))
        loop = asyncio.get_running_loop()
        msg = await asyncio.wait_for(loop.run_in_executor(None, pipe.recv), timeout=60)
        return msg  # type: ignore[no-any-return]

    try:
        results, cpu = run_async(
            _load_clients(url, clients, method, expect_error, wait_go, count, time_limit)
        )
        pipe.send(
            ("done", (cpu, [(r.completed, r.t_first, r.t_last, r.latencies) for r in results]))
        )
    except BaseException as exc:
        with contextlib.suppress(Exception):
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        pipe.close()


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def measure_throughput(
    url: str,
    *,
    server_pid: int | None,
    clients: int,
    method: str,
    expect_error: int | None,
    duration: float,
    count: int | None,
    load_procs: int,
) -> dict[str, Any]:
    time_limit = (count * 0.05 + 30) if count is not None else duration + 30
    lead = 0.2  # every client starts at the same instant, shortly after "go"
    results: list[LoadResult] = []
    load_cpu = 0.0
    server_cpu: asyncio.Task[float | None] | None = None

    def go() -> tuple[float, float | None]:
        nonlocal server_cpu
        start_at = time.monotonic() + lead
        stop_at = start_at + duration if count is None else None
        if stop_at is not None:  # sample the server's CPU over the measured window
            server_cpu = asyncio.create_task(cpu_share(server_pid, start_at, stop_at))
        return start_at, stop_at

    if load_procs == 0:

        async def wait_go() -> tuple[float, float | None]:
            return go()

        results, load_cpu = await _load_clients(
            url, clients, method, expect_error, wait_go, count, time_limit
        )
    else:
        ctx = multiprocessing.get_context("spawn")
        procs: list[Any] = []
        pipes: list[multiprocessing.connection.Connection] = []
        try:
            for n in _split(clients, load_procs):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_load_worker,
                    args=(child, url, n, method, expect_error, count, time_limit),
                    daemon=True,
                )
                proc.start()
                child.close()
                procs.append(proc)
                pipes.append(parent)
            loop = asyncio.get_running_loop()

            async def receive(pipe: multiprocessing.connection.Connection, limit: float) -> Any:
                if not await loop.run_in_executor(None, pipe.poll, limit):
                    raise TimeoutError("load generator did not answer")
                kind, payload = pipe.recv()
                if kind == "error":
                    raise RuntimeError(f"load generator failed: {payload}")
                return payload

            for pipe in pipes:
                await receive(pipe, 30 + OPEN_TIMEOUT)
            signal_go = go()
            for pipe in pipes:
                pipe.send(signal_go)
            for pipe in pipes:
                cpu, rows = await receive(pipe, time_limit + 15)
                load_cpu += cpu
                for completed, t_first, t_last, lat in rows:
                    results.append(LoadResult(completed, t_first, t_last, lat))
        finally:
            for proc in procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.kill()
                    proc.join(timeout=5)
            for pipe in pipes:
                pipe.close()
            if server_cpu is not None and not server_cpu.done():
                server_cpu.cancel()
    server_cpu_share = await server_cpu if server_cpu is not None else None
    completed = sum(r.completed for r in results)
    window = max(r.t_last for r in results) - min(r.t_first for r in results)
    latencies: list[float] = []
    for r in results:
        latencies.extend(r.latencies)
    return {
        "method": method,
        "clients": clients,
        "load_procs": load_procs,
        "requests": completed,
        "seconds": window,
        "rps": completed / window if window > 0 else float("nan"),
        # CPU as a fraction of one core over the run (load: all generator processes)
        "server_cpu": server_cpu_share,
        "load_cpu": load_cpu / window if window > 0 else None,
        "server_cpu_us_per_request": (
            (server_cpu_share / (completed / window)) * 1e6
            if server_cpu_share is not None and completed and window > 0
            else None
        ),
        **summarize_ms(latencies),
    }


# -- client processes driven over pipes ------------------------------------------------


class Channel:
    """A worker's end of its pipe, usable from asyncio (receives run in a thread)."""

    def __init__(self, pipe: multiprocessing.connection.Connection) -> None:
        self.pipe = pipe

    async def recv(self, within: float = 600.0) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.pipe.poll, within):
            raise TimeoutError("no command from the benchmark")
        return self.pipe.recv()  # type: ignore[no-any-return]

    def send(self, payload: Any) -> None:
        self.pipe.send(("ok", payload))


Role = Callable[[Channel, str, int, dict[str, Any]], Awaitable[None]]


def _pool_worker(
    pipe: multiprocessing.connection.Connection,
    role: str,
    url: str,
    n: int,
    options: dict[str, Any],
) -> None:
    """Entry point of a client process: runs `role` with `n` connections of its own."""
    raise_nofile(n + 64)
    chan = Channel(pipe)
    try:
        run_async(ROLES[role](chan, url, n, options))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        pipe.close()


class Pool:
    """Client processes, each holding its share of the connections of one role."""

    def __init__(self, role: str, url: str, total: int, procs: int, options: dict[str, Any]):
        self.shares = [n for n in _split(total, max(1, min(procs, total))) if n > 0]
        ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        self.pipes: list[multiprocessing.connection.Connection] = []
        for n in self.shares:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_pool_worker, args=(child, role, url, n, options), daemon=True
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.pipes.append(parent)

    async def ask(self, command: str, arg: Any = None, within: float = 120.0) -> list[Any]:
        """Send one command to every process; their answers, in order (bounded wait)."""
        for pipe in self.pipes:
            pipe.send((command, arg))
        loop = asyncio.get_running_loop()
        answers = []
        deadline = time.monotonic() + within
        for pipe in self.pipes:
            left = max(0.1, deadline - time.monotonic())
            if not await loop.run_in_executor(None, pipe.poll, left):
                raise TimeoutError(f"client process did not answer {command!r} in {within:.0f} s")
            kind, payload = pipe.recv()
            if kind == "error":
                raise RuntimeError(f"client process failed: {payload}")
            answers.append(payload)
        return answers

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close", None))
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()


async def _open_many(
    url: str, n: int, batch: int, prepare: Callable[[ClientConnection], Awaitable[None]] | None
) -> tuple[list[ClientConnection], list[str]]:
    """Open `n` connections, `batch` handshakes at a time; the opened ones and failures."""
    conns: list[ClientConnection] = []
    failures: list[str] = []

    async def one() -> ClientConnection:
        ws = await open_ws(url)
        if prepare is not None:
            try:
                await prepare(ws)
            except BaseException:
                await ws.close()
                raise
        return ws

    for start in range(0, n, batch):
        for ws in await asyncio.gather(
            *(one() for _ in range(min(batch, n - start))), return_exceptions=True
        ):
            if isinstance(ws, BaseException):
                failures.append(f"{type(ws).__name__}: {ws}")
            else:
                conns.append(ws)
    return conns, failures


async def _probe_all(
    conns: Sequence[ClientConnection], id_: int, batch: int
) -> tuple[array[float], list[str]]:
    """One `persona.list` on every connection, `batch` at a time: latencies, failures."""

    async def probe(ws: ClientConnection) -> float:
        t = time.perf_counter()
        await ws.send(request(LIST, id_))
        check_reply(await ws.recv(decode=False), id_, None)
        return time.perf_counter() - t

    latencies: array[float] = array("d")
    failures: list[str] = []
    for start in range(0, len(conns), batch):
        for lat in await asyncio.gather(
            *(probe(ws) for ws in conns[start : start + batch]), return_exceptions=True
        ):
            if isinstance(lat, BaseException):
                failures.append(f"{type(lat).__name__}: {lat}")
            else:
                latencies.append(lat)
    return latencies, failures


async def _idle_role(chan: Channel, url: str, n: int, options: dict[str, Any]) -> None:
    """Hold `n` idle connections: open them, probe each on command, close at the end."""
    conns: list[ClientConnection] = []
    batch = int(options["batch"])
    try:
        while True:
            command, arg = await chan.recv()
            if command == "open":
                t0 = time.perf_counter()
                async with asyncio.timeout(60 + n * 0.05):
                    conns, failures = await _open_many(url, n, batch, None)
                chan.send(
                    {
                        "opened": len(conns),
                        "failed": len(failures),
                        "failures": failures[:3],
                        "seconds": time.perf_counter() - t0,
                    }
                )
            elif command == "probe":
                async with asyncio.timeout(60 + n * 0.05):
                    lat, failures = await _probe_all(conns, int(arg), batch)
                chan.send(
                    {
                        "latencies": lat,
                        "failed": len(failures),
                        "failures": failures[:3],
                        "open": sum(1 for ws in conns if ws.state.name == "OPEN"),
                    }
                )
            elif command == "close":
                await close_all(conns, within=30)
                conns = []
                chan.send({})
                return
    finally:
        await close_all(conns, within=30)


async def _subscriber_role(chan: Channel, url: str, n: int, options: dict[str, Any]) -> None:
    """`n` connections subscribed to memory.changed; each records when every event arrives.

    Receipt times are time.monotonic(): CLOCK_MONOTONIC, one clock for every process of
    the machine on Linux, so they compare with the publisher's stamps in another process.
    """
    batch = int(options["batch"])
    conns: list[ClientConnection] = []
    received: list[list[tuple[float, bytes]]] = []
    replies: list[asyncio.Queue[bytes]] = []
    readers: list[asyncio.Task[None]] = []
    complete: list[asyncio.Event] = []  # set once a connection has `want[0]` events
    want = [float("inf")]

    async def subscribe(ws: ClientConnection) -> None:
        await ws.send(
            '{"jsonrpc":"2.0","id":1,"method":"events.subscribe",'
            '"params":{"topics":["memory.changed"]}}'
        )
        reply = _loads(await ws.recv(decode=False))
        if reply.get("id") != 1 or "subscription_id" not in (reply.get("result") or {}):
            raise RuntimeError(f"subscribe refused: {reply}")

    async def read(
        ws: ClientConnection, got: list[tuple[float, bytes]], q: Any, done: asyncio.Event
    ) -> None:
        mono = time.monotonic
        with contextlib.suppress(Exception):  # the connection closed: stop recording
            while True:
                raw = await ws.recv(decode=False)
                if raw.startswith(b'{"jsonrpc":"2.0","method":'):
                    got.append((mono(), raw))
                    if len(got) >= want[0]:
                        done.set()
                else:
                    q.put_nowait(raw)

    try:
        while True:
            command, arg = await chan.recv()
            if command == "open":
                t0 = time.perf_counter()
                async with asyncio.timeout(60 + n * 0.05):
                    conns, failures = await _open_many(url, n, batch, subscribe)
                for ws in conns:
                    got: list[tuple[float, bytes]] = []
                    q: asyncio.Queue[bytes] = asyncio.Queue()
                    done = asyncio.Event()
                    received.append(got)
                    replies.append(q)
                    complete.append(done)
                    readers.append(asyncio.create_task(read(ws, got, q, done)))
                cpu0 = time.process_time()
                chan.send(
                    {
                        "subscribed": len(conns),
                        "failed": len(failures),
                        "failures": failures[:3],
                        "seconds": time.perf_counter() - t0,
                    }
                )
            elif command == "drain":
                sent_at, acked_at, expected, within = arg
                want[0] = expected
                for got, done in zip(received, complete, strict=True):
                    if len(got) >= expected:
                        done.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(within):
                        await asyncio.gather(*(done.wait() for done in complete))
                cpu = time.process_time() - cpu0
                chan.send(_tally(received, sent_at, acked_at, cpu))
            elif command == "unsubscribe":
                lost = await _unsubscribe_all(conns, replies)
                chan.send(lost)
            elif command == "close":
                await close_all(conns, within=30)
                conns = []
                chan.send({})
                return
    finally:
        for task in readers:
            task.cancel()
        await close_all(conns, within=30)


def _tally(
    received: list[list[tuple[float, bytes]]],
    sent_at: dict[str, float],
    acked_at: dict[str, float],
    cpu: float,
) -> dict[str, Any]:
    """Delivery delays and counts from what each subscriber connection recorded."""
    delays: array[float] = array("d")
    after_ack: array[float] = array("d")
    duplicates = foreign = 0
    counts: list[int] = []
    first = last = None
    for got in received:
        seen: set[str] = set()
        mine = 0
        for t, raw in got:
            message = _loads(raw)
            if message.get("method") != "memory.changed":
                continue
            ids = (message.get("params") or {}).get("memory_ids") or []
            for mid in ids:
                if mid not in sent_at:
                    foreign += 1
                    continue
                if mid in seen:
                    duplicates += 1
                    continue
                seen.add(mid)
                mine += 1
                delays.append(t - sent_at[mid])
                after_ack.append(t - acked_at[mid])
                first = t if first is None else min(first, t)
                last = t if last is None else max(last, t)
        counts.append(mine)
    return {
        "delays": delays,
        "after_ack": after_ack,
        "counts": counts,
        "duplicates": duplicates,
        "foreign": foreign,
        "first": first,
        "last": last,
        "cpu": cpu,
    }


async def _unsubscribe_all(
    conns: Sequence[ClientConnection], replies: Sequence[asyncio.Queue[bytes]]
) -> dict[str, Any]:
    """events.unsubscribe on every connection: the losses the server counted."""

    async def one(ws: ClientConnection, q: asyncio.Queue[bytes]) -> int:
        await ws.send('{"jsonrpc":"2.0","id":2,"method":"events.unsubscribe","params":{}}')
        async with asyncio.timeout(15):
            while True:
                reply = _loads(await q.get())
                if reply.get("id") == 2:
                    return int(reply["result"]["lost"])

    lost = 0
    failures: list[str] = []
    for result in await asyncio.gather(
        *(one(ws, q) for ws, q in zip(conns, replies, strict=True)), return_exceptions=True
    ):
        if isinstance(result, BaseException):
            failures.append(f"{type(result).__name__}: {result}")
        else:
            lost += result
    return {"server_lost": lost, "failed": len(failures), "failures": failures[:3]}


ROLES: dict[str, Role] = {"idle": _idle_role, "subscriber": _subscriber_role}


def client_procs(total: int, per_proc: int, requested: int | None) -> int:
    """How many client processes share `total` connections (`--client-procs` or auto)."""
    if requested:
        return requested
    return max(1, -(-total // per_proc))


# -- measurement 3: many idle connections ---------------------------------------------


async def stable_status(pid: int, within: float = 5.0) -> dict[str, int]:
    """/proc status once the heap (RssAnon) has stopped moving (bounded wait)."""
    deadline = time.monotonic() + within
    last = proc_status(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = proc_status(pid)
        if abs(now.get("RssAnon", 0) - last.get("RssAnon", 0)) <= 64:
            return now
        last = now
    return last


async def _prime(url: str, n: int, batch: int) -> None:
    """Open and close a round of connections so the server runs a full garbage collection
    first: it frees memory unrelated to connections (e.g. a stale model-file mapping)
    that would otherwise vanish in the middle of the measurement."""
    primer: list[ClientConnection] = []
    try:
        async with asyncio.timeout(30):
            primer, _ = await _open_many(url, n, batch, None)
    finally:
        await close_all(primer)
    await asyncio.sleep(0.3)  # let them wind down


async def measure_idle_connections(
    url: str, pid: int | None, total: int, batch: int, procs: int, hold: float
) -> dict[str, Any]:
    """Hold `total` connections open at once (from `procs` client processes), use each
    once, read the server's RSS, hold them `hold` seconds, and use each once more."""
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    await _prime(url, min(200, total), batch)
    before = await stable_status(pid) if pid else {}
    fds_before = fd_count(pid) if pid else None
    per_proc_batch = max(10, batch // procs)
    pool = Pool("idle", url, total, procs, {"batch": per_proc_batch})
    try:
        t0 = time.perf_counter()
        opened_rows = await pool.ask("open", within=90 + total * 0.05)
        open_s = time.perf_counter() - t0
        await asyncio.sleep(0.3)
        opened = proc_status(pid) if pid else {}
        health_opened = await http_get_json(host, port, "/health", within=10)
        t0 = time.perf_counter()
        probe_rows = await pool.ask("probe", 1, within=90 + total * 0.05)
        probe_s = time.perf_counter() - t0
        during = await stable_status(pid, within=3.0) if pid else {}
        fds_during = fd_count(pid) if pid else None
        if hold > 0:
            print(f"idle: holding {total} connections for {hold:g} s ...")
            await asyncio.sleep(hold)
        final_rows = await pool.ask("probe", 2, within=90 + total * 0.05)
        health_end = await http_get_json(host, port, "/health", within=10)
        end = proc_status(pid) if pid else {}
        await pool.ask("close", within=60)
    finally:
        pool.stop()
    await asyncio.sleep(0.5)
    after = proc_status(pid) if pid else {}
    n_open = sum(r["opened"] for r in opened_rows)
    failures = [
        f for rows in (opened_rows, probe_rows, final_rows) for r in rows for f in r["failures"]
    ]
    probe_lat: list[float] = sorted(x for r in probe_rows for x in r["latencies"])
    figures: dict[str, Any] = {
        "connections": total,
        "client_procs": len(pool.shares),
        "opened": n_open,
        "usable": sum(len(r["latencies"]) for r in probe_rows),
        "usable_at_end": min(
            sum(len(r["latencies"]) for r in final_rows), sum(r["open"] for r in final_rows)
        ),
        "hold_seconds": hold,
        "failures": sum(
            r["failed"] for rows in (opened_rows, probe_rows, final_rows) for r in rows
        ),
        "first_failure": failures[0] if failures else None,
        "server_reports_connections": health_opened.get("connections"),
        "server_reports_connections_end": health_end.get("connections"),
        "open_seconds": open_s,
        "open_per_second": n_open / open_s if open_s > 0 else float("nan"),
        "probe_seconds": probe_s,
        "probe_p50_ms": percentile(probe_lat, 50) * 1e3,
        "probe_p99_ms": percentile(probe_lat, 99) * 1e3,
        "server_nofile": proc_nofile(pid) if pid else None,
    }
    if before and during and n_open:
        figures.update(
            rss_before_kb=before["VmRSS"],
            rss_opened_kb=opened.get("VmRSS"),
            rss_with_connections_kb=during["VmRSS"],
            rss_at_end_kb=end.get("VmRSS"),
            rss_after_close_kb=after.get("VmRSS"),
            rss_per_connection_kb=(during["VmRSS"] - before["VmRSS"]) / n_open,
            anon_before_kb=before.get("RssAnon"),
            file_before_kb=before.get("RssFile"),
            file_with_connections_kb=during.get("RssFile"),
            anon_with_connections_kb=during.get("RssAnon"),
            anon_per_connection_kb=(
                (during["RssAnon"] - before["RssAnon"]) / n_open
                if "RssAnon" in during and "RssAnon" in before
                else None
            ),
            server_fds_before=fds_before,
            server_fds_with_connections=fds_during,
        )
    return figures


# -- measurement 4: event fan-out --------------------------------------------------------


async def _publish(
    ws: ClientConnection, persona_id: str, stores: int, in_flight: int
) -> tuple[dict[str, float], dict[str, float], array[float]]:
    """Store `stores` memories, `in_flight` requests at a time on one connection.

    Returns each memory id's send and acknowledgement stamps (time.monotonic()) and the
    stores' latencies.
    """
    mono = time.monotonic
    loop = asyncio.get_running_loop()
    pending: dict[int, asyncio.Future[tuple[float, Any]]] = {}
    sent_at: dict[str, float] = {}
    acked_at: dict[str, float] = {}
    store_lat: array[float] = array("d")
    ids = iter(range(1, stores + 1))

    async def read() -> None:
        while True:
            raw = await ws.recv(decode=False)
            t = mono()
            message = _loads(raw)
            future = pending.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result((t, message))

    async def lane() -> None:
        for i in ids:  # the lanes share one iterator: each id is sent once
            msg = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "memory.store",
                    "params": {
                        "persona_id": persona_id,
                        "content": f"Fan-out benchmark note {i}: the tide was high at dawn.",
                        "importance": 0.5,
                        "memory_type": "observation",
                    },
                }
            )
            future: asyncio.Future[tuple[float, Any]] = loop.create_future()
            pending[i] = future
            t = mono()
            await ws.send(msg)
            t_ack, reply = await future
            if "result" not in reply:
                raise RuntimeError(f"memory.store {i} failed: {str(reply)[:300]}")
            mid = reply["result"]["memory"]["id"]
            sent_at[mid], acked_at[mid] = t, t_ack
            store_lat.append(t_ack - t)

    reader = asyncio.create_task(read())
    try:
        lanes: asyncio.Future[list[None]] = asyncio.gather(*(lane() for _ in range(in_flight)))
        waiters: list[asyncio.Future[Any]] = [reader, lanes]
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if reader in done:  # the connection closed under the lanes
            reader.result()
            raise RuntimeError("the publisher's connection ended")
        await lanes  # a failed store fails the measurement
    finally:
        reader.cancel()
        lanes.cancel()
    return sent_at, acked_at, store_lat


async def measure_fanout(
    url: str,
    pid: int | None,
    subscribers: int,
    stores: int,
    batch: int,
    procs: int,
    in_flight: int = 1,
) -> dict[str, Any]:
    """`subscribers` connections subscribe to memory.changed; one more connection stores
    `stores` memories, one memory.store at a time; every event's delivery is timed.

    The delay runs from a stamp the publisher takes just before sending the store to the
    subscriber's receipt (the server publishes the event before it answers the store, so
    the event can arrive before the acknowledgement; the delay from the acknowledgement
    is reported too).
    """
    pool = Pool("subscriber", url, subscribers, procs, {"batch": max(10, batch // procs)})
    publisher: ClientConnection | None = None
    try:
        rows = await pool.ask("open", within=90 + subscribers * 0.05)
        subscribed = sum(r["subscribed"] for r in rows)
        sub_failures = [f for r in rows for f in r["failures"]]
        publisher = await open_ws(url)
        await publisher.send(request(LIST, 0))
        listing = _loads(await publisher.recv(decode=False))["result"]
        persona_id = listing["active_persona_id"]
        mono = time.monotonic
        c0 = cpu_seconds(pid) if pid else None
        t_begin = mono()
        async with asyncio.timeout(60 + stores * 1.0):
            sent_at, acked_at, store_lat = await _publish(publisher, persona_id, stores, in_flight)
        t_stored = mono()
        tallies = await pool.ask(
            "drain", (sent_at, acked_at, stores, 30.0), within=60 + subscribers * 0.05
        )
        c1 = cpu_seconds(pid) if pid else None
        unsub = await pool.ask("unsubscribe", within=60)
        await pool.ask("close", within=60)
    finally:
        if publisher is not None:
            await publisher.close()
        pool.stop()
    delays = sorted(x for t in tallies for x in t["delays"])
    after_ack = sorted(x for t in tallies for x in t["after_ack"])
    counts = [c for t in tallies for c in t["counts"]]
    last = max((t["last"] for t in tallies if t["last"] is not None), default=None)
    received = len(delays)
    expected = stores * subscribed
    window = (last - t_begin) if last is not None else float("nan")
    return {
        "subscribers": subscribers,
        "subscribed": subscribed,
        "client_procs": len(pool.shares),
        "subscribe_failures": len(sub_failures),
        "first_failure": sub_failures[0] if sub_failures else None,
        "stores": stores,
        "in_flight": in_flight,
        "store_seconds": t_stored - t_begin,
        "stores_per_second": stores / (t_stored - t_begin),
        "store_p50_ms": percentile(sorted(store_lat), 50) * 1e3,
        "store_p99_ms": percentile(sorted(store_lat), 99) * 1e3,
        "expected": expected,
        "received": received,
        "lost": expected - received,
        "server_lost": sum(u["server_lost"] for u in unsub),
        "unsubscribe_failures": sum(u["failed"] for u in unsub),
        "duplicates": sum(t["duplicates"] for t in tallies),
        "foreign": sum(t["foreign"] for t in tallies),
        "min_per_subscriber": min(counts) if counts else 0,
        "delivery_seconds": window,
        "events_per_second": received / window if window and window > 0 else float("nan"),
        "delay_p50_ms": percentile(delays, 50) * 1e3,
        "delay_p99_ms": percentile(delays, 99) * 1e3,
        "delay_max_ms": (delays[-1] * 1e3) if delays else float("nan"),
        "after_ack_p50_ms": percentile(after_ack, 50) * 1e3,
        "after_ack_p99_ms": percentile(after_ack, 99) * 1e3,
        "server_cpu": (
            (c1 - c0) / window if c0 is not None and c1 is not None and window > 0 else None
        ),
        "client_cpu": sum(t["cpu"] for t in tallies) / window if window > 0 else None,
    }


# -- report ------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def print_table(rows: list[tuple[str, str, str, bool | None]]) -> None:
    header = ("figure", "measured", "goal")
    widths = [max(len(header[i]), *(len(str(r[i])) for r in rows)) for i in range(3)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  verdict"
    print(line)
    print("-" * len(line))
    for name, value, target, ok in rows:
        print(
            f"{name.ljust(widths[0])}  {value.rjust(widths[1])}  {target.ljust(widths[2])}  "
            f"{verdict(ok)}"
        )


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if value != value else round(value, 4)  # NaN -> null
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def build_rows(fig: dict[str, Any]) -> Iterator[tuple[str, str, str, bool | None]]:
    load = fig.get("loadavg")
    if load:
        yield ("machine load average (1/5/15 min)", " ".join(f"{x:.2f}" for x in load), "", None)
    st = fig.get("startup")
    if st:
        yield ("startup: TCP connection accepted", f"{st['tcp_accept_s']:.3f} s", "", None)
        ok = st["ws_accept_s"] < TARGET_STARTUP_S
        yield ("startup: first WebSocket accepted", f"{st['ws_accept_s']:.3f} s", "< 2 s", ok)
        yield ("startup: first request answered", f"{st['first_reply_s']:.3f} s", "", None)
        yield ("startup: /health answers", f"{st['health_s']:.3f} s", "", None)
    settle = fig.get("settle")
    if settle:
        emb = settle["embedder"]
        if emb.get("provider") == "none":
            value = "no model"
        elif emb.get("ready") and emb.get("load_seconds") is not None:
            value = f"{emb['load_seconds']:.2f} s"
        else:
            value = "ready" if emb.get("ready") else ("not ready" if settle["settled"] else "?")
        note = "" if settle["settled"] else f"waited {settle['waited_s']:.0f} s, gave up"
        yield (f"embedder ({emb.get('provider')}) load", value, note, None)
    if fig.get("server_rss_idle_kb"):
        yield (
            "server VmRSS idle (before measuring)",
            f"{fig['server_rss_idle_kb'] / 1024:.1f} MiB",
            "",
            None,
        )
    lat = fig.get("latency")
    if lat:
        n = lat["requests"]
        ok = lat["p50_ms"] < TARGET_P50_MS
        yield (f"{LIST} latency p50 (1 client, n={n})", f"{lat['p50_ms']:.3f} ms", "< 1 ms", ok)
        for key in ("p90", "p99", "mean"):
            yield (f"{LIST} latency {key}", f"{lat[key + '_ms']:.3f} ms", "", None)
        yield (f"{LIST} sequential", f"{lat['sequential_rps']:,.0f} req/s", "", None)
    runs = [(tp, LIST, tp["clients"] == fig.get("rps_clients")) for tp in fig.get("throughput", [])]
    if fig.get("throughput_error_path"):
        runs.append((fig["throughput_error_path"], "unknown method (-32601)", False))
    if fig.get("throughput_invalid_params"):
        runs.append((fig["throughput_invalid_params"], "invalid params (-32602)", False))
    for tp, label, target in runs:
        head = f"{label} x{tp['clients']} clients, back to back"
        ok = tp["rps"] >= TARGET_RPS if target else None
        yield (head, f"{tp['rps']:,.0f} req/s", ">= 5,000 req/s" if target else "", ok)
        pct = f"{tp['p50_ms']:.2f} / {tp['p99_ms']:.2f} ms"
        yield ("  latency p50 / p99", pct, "measure (issue 12)" if label == LIST else "", None)
        cpu = [
            f"{name} {tp[key] * 100:.0f}%"
            for name, key in (("server", "server_cpu"), ("load generator", "load_cpu"))
            if tp.get(key) is not None
        ]
        if cpu:
            yield ("  CPU (% of one core)", ", ".join(cpu), "", None)
        if tp.get("server_cpu_us_per_request") is not None:
            us = tp["server_cpu_us_per_request"]
            cheap = label != LIST or tp["clients"] == fig.get("rps_clients")
            goal = f"< {TARGET_CPU_US:.0f} us" if cheap else ""
            yield (
                "  server CPU per request",
                f"{us:.0f} us",
                goal,
                us < TARGET_CPU_US if cheap else None,
            )
    idle = fig.get("idle")
    if idle:
        n = idle["connections"]
        ok = idle["usable"] == n and idle["server_reports_connections"] in (None, n)
        yield (
            "idle connections held, each used once",
            f"{idle['usable']:,}/{n:,}",
            f"{n:,}/{n:,}",
            ok,
        )
        yield ("  client processes", str(idle["client_procs"]), "", None)
        yield ("  server /health connections", str(idle["server_reports_connections"]), "", None)
        yield ("  server open-files limit", str(idle["server_nofile"]), "", None)
        yield (
            "  opened in",
            f"{idle['open_seconds']:.2f} s ({idle['open_per_second']:,.0f}/s)",
            "",
            None,
        )
        yield (
            "  one request each: p50 / p99",
            f"{idle['probe_p50_ms']:.1f} / {idle['probe_p99_ms']:.1f} ms",
            "",
            None,
        )
        ok_end = idle["usable_at_end"] == n and idle["server_reports_connections_end"] in (None, n)
        yield (
            f"  still usable after {idle['hold_seconds']:g} s held",
            f"{idle['usable_at_end']:,}/{n:,}",
            f"{n:,}/{n:,}",
            ok_end,
        )
        if idle["failures"]:
            yield ("  failures", f"{idle['failures']} ({idle['first_failure']})", "", None)
        if "rss_before_kb" in idle:

            def mib(kb: float | None) -> str:
                return "?" if kb is None else f"{kb / 1024:.1f} MiB"

            freed = (fig.get("server_rss_idle_kb") or 0) - idle["rss_before_kb"]
            if freed > 4096:
                # Memory the server held as garbage until its next full collection.
                yield ("  freed by the priming round (full GC)", mib(freed), "", None)
            yield ("  server VmRSS before", mib(idle["rss_before_kb"]), "", None)
            yield (f"  server VmRSS, {n} just opened", mib(idle["rss_opened_kb"]), "", None)
            yield (
                f"  server VmRSS, {n} open, each used once",
                mib(idle["rss_with_connections_kb"]),
                "",
                None,
            )
            yield ("  server VmRSS at the end of the hold", mib(idle["rss_at_end_kb"]), "", None)
            yield ("  server VmRSS after closing them", mib(idle["rss_after_close_kb"]), "", None)
            per_rss = f"{idle['rss_per_connection_kb']:.1f} KiB"
            yield ("  VmRSS growth per connection", per_rss, "measure (issue 12)", None)
            if idle.get("anon_per_connection_kb") is not None:
                heap = f"{mib(idle['anon_before_kb'])} -> {mib(idle['anon_with_connections_kb'])}"
                yield ("  server heap (RssAnon)", heap, "", None)
                per_anon = f"{idle['anon_per_connection_kb']:.1f} KiB"
                yield ("  heap growth per connection", per_anon, "measure (issue 12)", None)
            moved = (idle.get("file_with_connections_kb") or 0) - (idle.get("file_before_kb") or 0)
            if abs(moved) > 4096:
                yield ("  note: file-backed RSS moved", mib(moved), "(not connections)", None)
        else:
            yield ("  server RSS", "n/a (pass --pid)", "", None)
    fan = fig.get("fanout")
    if fan:
        n = fan["subscribers"]
        yield (
            "fan-out: subscribers of memory.changed",
            f"{fan['subscribed']:,}/{n:,}",
            f"{n:,}/{n:,}",
            fan["subscribed"] == n,
        )
        yield ("  client processes", str(fan["client_procs"]), "", None)
        yield (
            f"  memory.store x{fan['stores']}, {fan['in_flight']} at a time",
            f"{fan['stores_per_second']:,.0f}/s, p50 {fan['store_p50_ms']:.1f} ms,"
            f" p99 {fan['store_p99_ms']:.1f} ms",
            "",
            None,
        )
        yield (
            "  events delivered",
            f"{fan['received']:,}/{fan['expected']:,}",
            f"{fan['expected']:,}/{fan['expected']:,}",
            fan["received"] == fan["expected"] and fan["duplicates"] == 0,
        )
        yield (
            "  events/s delivered (all subscribers)",
            f"{fan['events_per_second']:,.0f}/s",
            "measure (issue 12)",
            None,
        )
        yield ("  delivery delay p50 (from send)", f"{fan['delay_p50_ms']:.1f} ms", "", None)
        yield (
            "  delivery delay p99 (from send)",
            f"{fan['delay_p99_ms']:.1f} ms",
            "measure (issue 12)",
            None,
        )
        yield ("  delivery delay max (from send)", f"{fan['delay_max_ms']:.1f} ms", "", None)
        yield (
            "  delay from the store's ack p50 / p99",
            f"{fan['after_ack_p50_ms']:.1f} / {fan['after_ack_p99_ms']:.1f} ms",
            "",
            None,
        )
        lost = f"{fan['lost']:,} (server counted {fan['server_lost']:,})"
        yield ("  events lost", lost, "0 (counted if any)", fan["lost"] == 0)
        if fan["duplicates"] or fan["foreign"]:
            yield (
                "  duplicates / unknown ids",
                f"{fan['duplicates']} / {fan['foreign']}",
                "0 / 0",
                False,
            )
        cpu = [
            f"{name} {fan[key] * 100:.0f}%"
            for name, key in (("server", "server_cpu"), ("subscribers", "client_cpu"))
            if fan.get(key) is not None
        ]
        if cpu:
            yield ("  CPU (% of one core)", ", ".join(cpu), "", None)
        yield ("  clock for the delays (all processes)", "CLOCK_MONOTONIC", "", None)


# -- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", help="benchmark a running server (ws://127.0.0.1:PORT/mcp)")
    p.add_argument("--pid", type=int, help="the running server's pid (for its memory)")
    p.add_argument("--requests", type=int, help="latency: sequential requests (default 2000)")
    p.add_argument("--warmup", type=int, help="latency: warm-up requests (default 200)")
    p.add_argument(
        "--clients",
        default="50,500",
        help="throughput and p50/p99: client counts, comma-separated (default 50,500)",
    )
    p.add_argument("--duration", type=float, help="throughput: seconds per run (default 5)")
    p.add_argument(
        "--count", type=int, help="throughput: requests per client instead of a duration"
    )
    p.add_argument(
        "--load-procs",
        type=int,
        default=1,
        help="throughput: load-generator processes; 0 = in this process (default 1)",
    )
    p.add_argument("--connections", type=int, help="idle connections (default 10000; --quick 1000)")
    p.add_argument("--batch", type=int, default=100, help="connections opened at once")
    p.add_argument(
        "--hold",
        type=float,
        help="idle: seconds to hold the connections before using each again"
        " (default 25, past the server's 20 s ping interval; --quick 1)",
    )
    p.add_argument(
        "--subscribers",
        type=int,
        help="fan-out: subscriber connections (default 1000; --quick 100)",
    )
    p.add_argument(
        "--stores",
        type=int,
        help="fan-out: memories stored, one at a time (default 200; --quick 50)",
    )
    p.add_argument(
        "--store-in-flight",
        type=int,
        default=1,
        help="fan-out: memory.store requests in flight at once on the publisher (default 1)",
    )
    p.add_argument(
        "--client-procs",
        type=int,
        help="client processes for the idle and fan-out connections"
        " (default: one per 2500 idle / 500 subscriber connections)",
    )
    p.add_argument(
        "--settle-timeout",
        type=float,
        default=60.0,
        help="wait at most this long for the embedding model to load before measuring;"
        " 0 = do not wait (default 60)",
    )
    p.add_argument(
        "--embedding-provider",
        choices=["minilm", "ollama", "openai", "none"],
        help="EMBEDDING_PROVIDER for the server this script starts (default: the server's)",
    )
    p.add_argument("--quick", action="store_true", help="a short run (about 30 s)")
    p.add_argument("--json", action="store_true", help="also print all figures as a JSON line")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["latency", "throughput", "idle", "fanout"],
    )
    args = p.parse_args(argv)
    args.requests = args.requests or (500 if args.quick else 2000)
    args.warmup = args.warmup if args.warmup is not None else (100 if args.quick else 200)
    args.duration = args.duration or (1.0 if args.quick else 5.0)
    args.connections = args.connections or (1000 if args.quick else 10000)
    args.hold = args.hold if args.hold is not None else (1.0 if args.quick else 25.0)
    args.subscribers = args.subscribers or (100 if args.quick else 1000)
    args.stores = args.stores or (50 if args.quick else 200)
    try:
        args.clients = [int(x) for x in str(args.clients).split(",") if x.strip()]
    except ValueError:
        p.error("--clients takes comma-separated numbers")
    if not args.clients or min(args.clients) < 1:
        p.error("--clients needs at least one positive number")
    if args.url:
        parts = urlsplit(args.url)
        if parts.scheme != "ws" or parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
            p.error("--url must be a ws:// URL on loopback")
    return args


def nofile_needed(args: argparse.Namespace) -> int:
    """Open files the server needs: the largest number of connections held at once."""
    return int(max(args.connections, args.subscribers + 1, max(args.clients))) + 512


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fig: dict[str, Any] = {"client_loop": loop_factory()[1]}
    fig["cpu_count"] = os.cpu_count()
    fig["loadavg"] = os.getloadavg()
    fig["machine_busy_at_start"] = busy = await machine_busy(0.5)
    if busy is not None and busy > 0.15:
        print(
            f"note: the CPUs were {busy:.0%} busy before the run: other processes compete "
            "for the CPU, figures will be lower than on an idle machine"
        )
    server: Server | None = None
    try:
        if args.url:
            server = Server(url=args.url, pid=args.pid)
            host, port = server.host_port
            fig["health"] = await http_get_json(host, port, "/health", within=5.0)
        else:
            server = spawn_server(args.embedding_provider, nofile=nofile_needed(args))
            await wait_ready(server)
            fig["startup"] = {k: v for k, v in server.startup.items() if k != "health"}
            fig["health"] = server.startup["health"]
        fig["url"] = server.url
        if args.settle_timeout > 0:
            print(
                f"waiting (at most {args.settle_timeout:g} s) for the embedding model to load ..."
            )
            fig["settle"] = await wait_settled(server, args.settle_timeout)
            await asyncio.sleep(0.3)
        if server.pid:
            fig["server_rss_idle_kb"] = proc_status(server.pid).get("VmRSS")
            fig["server_anon_idle_kb"] = proc_status(server.pid).get("RssAnon")
        print(f"server {server.url} (pid {server.pid or '?'}), client loop {fig['client_loop']}")

        if "latency" not in args.skip:
            print(f"latency: {args.warmup} warm-up + {args.requests} sequential {LIST} ...")
            fig["latency"] = await measure_latency(server.url, args.warmup, args.requests)
        if "throughput" not in args.skip:
            how = f"{args.count} each" if args.count else f"{args.duration:g} s"
            where = f"{args.load_procs} load process(es)" if args.load_procs else "in-process"
            runs: list[tuple[str, str, int | None, int]] = [
                ("throughput", LIST, None, n) for n in args.clients
            ]
            runs.append(("throughput_error_path", UNKNOWN, METHOD_NOT_FOUND, args.clients[0]))
            runs.append(("throughput_invalid_params", BAD_PARAMS, INVALID_PARAMS, args.clients[0]))
            fig["throughput"] = []
            fig["rps_clients"] = args.clients[0]
            for key, method, code, clients in runs:
                print(f"throughput: {clients} clients x {method}, {how}, {where} ...")
                result = await measure_throughput(
                    server.url,
                    server_pid=server.pid,
                    clients=clients,
                    method=method,
                    expect_error=code,
                    duration=args.duration,
                    count=args.count,
                    load_procs=args.load_procs,
                )
                if key == "throughput":
                    fig["throughput"].append(result)
                else:
                    fig[key] = result
        if "fanout" not in args.skip:
            procs = client_procs(args.subscribers, 500, args.client_procs)
            print(
                f"fan-out: {args.subscribers} subscribers ({procs} client process(es)),"
                f" {args.stores} memory.store, {args.store_in_flight} in flight ..."
            )
            fig["fanout"] = await measure_fanout(
                server.url,
                server.pid,
                args.subscribers,
                args.stores,
                args.batch,
                procs,
                args.store_in_flight,
            )
        if "idle" not in args.skip:
            procs = client_procs(args.connections, 2500, args.client_procs)
            print(
                f"idle: opening {args.connections} connections from {procs} client"
                f" process(es), {args.batch} handshakes at a time ..."
            )
            fig["idle"] = await measure_idle_connections(
                server.url, server.pid, args.connections, args.batch, procs, args.hold
            )
    finally:
        if server is not None:
            server.stop()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # This process holds few connections itself (the client processes raise their own
    # limit); the server's limit is set where it is spawned.
    soft, _ = raise_nofile(max(args.clients) + 1024)
    if args.url is None and (args.connections + 64 > resource.getrlimit(resource.RLIMIT_NOFILE)[1]):
        print(f"the hard open-files limit is too low for {args.connections} connections")
        return 2
    # A plain `kill` should still stop the server: turn SIGTERM into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    fig = run_async(run(args))
    fig["total_seconds"] = time.perf_counter() - t0
    fig["nofile_soft_limit"] = soft
    fig["loadavg_at_end"] = os.getloadavg()
    print()
    print_table(list(build_rows(fig)))
    load = " ".join(f"{x:.2f}" for x in fig["loadavg_at_end"])
    print(f"\n(total {fig['total_seconds']:.1f} s; load average at the end {load})")
    if args.json:
        print(json.dumps(_clean(fig), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
