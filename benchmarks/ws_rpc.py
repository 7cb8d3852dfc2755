"""WebSocket JSON-RPC benchmark: startup, latency, throughput and idle-connection memory.

Prints figures; it is not a test. By default it starts its own server (the installed
`persona-mcp` console script next to this interpreter, a temporary data directory,
`--llm offline`, a free loopback port), measures, and always stops the server again:

    .venv/bin/python benchmarks/ws_rpc.py            # full run (about 20 s)
    .venv/bin/python benchmarks/ws_rpc.py --quick    # short run (about 8 s)
    .venv/bin/python benchmarks/ws_rpc.py --url ws://127.0.0.1:8000/mcp --pid 1234

Both times include waiting for the server's embedding model to finish loading in the
background (about 4 s here; `--settle-timeout 0` skips the wait, `--embedding-provider
none` starts the server without a model).

Measurements:

1. startup: process start until /health answers and until a WebSocket is accepted;
2. round-trip latency of `persona.list`, one client, requests strictly one after another;
3. throughput: many clients (one connection each) sending back to back for a fixed time
   (or a fixed count), for `persona.list` and for an unknown method (the -32601 error
   path: the protocol-overhead ceiling). The load generator runs in a separate process
   (`--load-procs N`, 0 = inside this process) with the `websockets` asyncio client on
   uvloop when it is installed. 0, 1 and 2 processes measured the same here: the
   generator needs about 40% of a core where the server saturates one, so the server
   is the bottleneck. The server's and the generator's CPU use are reported, and the
   server's CPU time per request, which depends least on other load on the machine;
4. many idle connections held at once: each is checked with one request, and the
   server's resident memory (VmRSS, and its anonymous part RssAnon) is read before and
   after. A priming round of connections first makes the server run a full garbage
   collection, so that unrelated garbage is not freed in the middle of the measurement.

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
from common import free_port, percentile

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

STARTUP_TIMEOUT = 20.0  # seconds to wait for the server to come up
OPEN_TIMEOUT = 10.0  # per WebSocket handshake
CLOSE_TIMEOUT = 2.0

TARGET_STARTUP_S = 2.0
TARGET_P50_MS = 1.0
TARGET_RPS = 5000.0


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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far, from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    return f'{{"jsonrpc":"2.0","id":{id_},"method":"{method}","params":{{}}}}'


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


def spawn_server(embedding_provider: str | None = None) -> Server:
    """Start `persona-mcp serve` on a free loopback port with a temporary data directory."""
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
        )
    server = Server(url=url, pid=proc.pid, process=proc, workdir=workdir, log_path=log_path)
    server.startup["t0"] = t0
    return server


async def wait_ready(server: Server) -> None:
    """Wait (bounded) until the server answers /health and accepts a WebSocket."""
    proc, url = server.process, server.url
    assert proc is not None
    _, port = server.host_port
    t0 = server.startup.pop("t0")
    deadline = t0 + STARTUP_TIMEOUT
    health: Any = None
    t_health: float | None = None
    t_ws: float | None = None
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode} during startup:\n{server.log_tail()}"
            )
        if t_health is None:
            try:
                health = await http_get_json("127.0.0.1", port, "/health", within=1.0)
                t_health = time.perf_counter() - t0
            except (OSError, RuntimeError, TimeoutError, ValueError):
                await asyncio.sleep(0.01)
                continue
        try:
            ws = await open_ws(url, within=1.0)
        except Exception:  # handshake not possible yet
            await asyncio.sleep(0.01)
            continue
        t_ws = time.perf_counter() - t0
        await ws.close()
        break
    if t_ws is None:
        raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT} s:\n{server.log_tail()}")
    server.startup = {"health_s": t_health, "ws_accept_s": t_ws, "health": health}


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


async def measure_idle_connections(
    url: str, pid: int | None, total: int, batch: int
) -> dict[str, Any]:
    """Hold `total` connections open at once, use each once, and read the server's RSS."""
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    # Prime the server with a round of connections first: their allocations make Python
    # run a full garbage collection, which frees memory unrelated to connections (e.g. a
    # stale model-file mapping) that would otherwise vanish mid-measurement.
    primer: list[ClientConnection] = []
    try:
        async with asyncio.timeout(30):
            primer_total = min(200, total)
            for start in range(0, primer_total, batch):
                n = min(batch, primer_total - start)
                primer.extend(
                    ws
                    for ws in await asyncio.gather(
                        *(open_ws(url) for _ in range(n)), return_exceptions=True
                    )
                    if not isinstance(ws, BaseException)
                )
    finally:
        await close_all(primer)
    await asyncio.sleep(0.3)  # let the previous connections wind down
    before = await stable_status(pid) if pid else {}
    fds_before = fd_count(pid) if pid else None
    conns: list[ClientConnection] = []
    open_failures: list[str] = []
    try:
        t0 = time.perf_counter()
        async with asyncio.timeout(60 + total * 0.05):
            for start in range(0, total, batch):
                n = min(batch, total - start)
                for ws in await asyncio.gather(
                    *(open_ws(url) for _ in range(n)), return_exceptions=True
                ):
                    if isinstance(ws, BaseException):
                        open_failures.append(f"{type(ws).__name__}: {ws}")
                    else:
                        conns.append(ws)
        open_s = time.perf_counter() - t0
        await asyncio.sleep(0.3)
        opened = proc_status(pid) if pid else {}

        async def probe(ws: ClientConnection, i: int) -> float:
            t = time.perf_counter()
            await ws.send(request(LIST, i))
            check_reply(await ws.recv(decode=False), i, None)
            return time.perf_counter() - t

        # Every connection must be usable: one persona.list on each, in batches.
        t0 = time.perf_counter()
        probe_lat: list[float] = []
        probe_failures: list[str] = []
        async with asyncio.timeout(60 + total * 0.05):
            for start in range(0, len(conns), batch):
                chunk = conns[start : start + batch]
                for lat in await asyncio.gather(
                    *(probe(ws, start + j) for j, ws in enumerate(chunk)),
                    return_exceptions=True,
                ):
                    if isinstance(lat, BaseException):
                        probe_failures.append(f"{type(lat).__name__}: {lat}")
                    else:
                        probe_lat.append(lat)
        probe_s = time.perf_counter() - t0
        await asyncio.sleep(0.3)
        health = await http_get_json(host, port, "/health")
        during = proc_status(pid) if pid else {}
        fds_during = fd_count(pid) if pid else None
        still_open = sum(1 for ws in conns if ws.state.name == "OPEN")
    finally:
        await close_all(conns, within=30)
    await asyncio.sleep(0.3)
    after = proc_status(pid) if pid else {}
    failures = open_failures + probe_failures
    figures: dict[str, Any] = {
        "connections": total,
        "opened": len(conns),
        "usable": min(len(probe_lat), still_open),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "server_reports_connections": health.get("connections"),
        "open_seconds": open_s,
        "open_per_second": len(conns) / open_s if open_s > 0 else float("nan"),
        "probe_seconds": probe_s,
        "probe_p50_ms": percentile(sorted(probe_lat), 50) * 1e3,
    }
    if before and during and conns:
        figures.update(
            rss_before_kb=before["VmRSS"],
            rss_opened_kb=opened.get("VmRSS"),
            rss_with_connections_kb=during["VmRSS"],
            rss_after_close_kb=after.get("VmRSS"),
            rss_per_connection_kb=(during["VmRSS"] - before["VmRSS"]) / len(conns),
            anon_before_kb=before.get("RssAnon"),
            file_before_kb=before.get("RssFile"),
            file_with_connections_kb=during.get("RssFile"),
            anon_with_connections_kb=during.get("RssAnon"),
            anon_per_connection_kb=(
                (during["RssAnon"] - before["RssAnon"]) / len(conns)
                if "RssAnon" in during and "RssAnon" in before
                else None
            ),
            server_fds_before=fds_before,
            server_fds_with_connections=fds_during,
        )
    return figures


# -- report ------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def print_table(rows: list[tuple[str, str, str, bool | None]]) -> None:
    header = ("figure", "value", "target")
    widths = [max(len(header[i]), *(len(str(r[i])) for r in rows)) for i in range(3)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  result"
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
    st = fig.get("startup")
    if st:
        yield ("startup: /health answers", f"{st['health_s']:.3f} s", "", None)
        ok = st["ws_accept_s"] < TARGET_STARTUP_S
        yield ("startup: WebSocket accepted", f"{st['ws_accept_s']:.3f} s", "< 2 s", ok)
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
    for key, label, target in (
        ("throughput", LIST, True),
        ("throughput_error_path", "unknown method (-32601)", False),
    ):
        tp = fig.get(key)
        if not tp:
            continue
        head = f"{label} x{tp['clients']} clients"
        ok = tp["rps"] >= TARGET_RPS if target else None
        yield (head, f"{tp['rps']:,.0f} req/s", ">= 5,000 req/s" if target else "", ok)
        yield ("  latency p50 / p99", f"{tp['p50_ms']:.2f} / {tp['p99_ms']:.2f} ms", "", None)
        cpu = [
            f"{name} {tp[key] * 100:.0f}%"
            for name, key in (("server", "server_cpu"), ("load generator", "load_cpu"))
            if tp.get(key) is not None
        ]
        if cpu:
            yield ("  CPU (% of one core)", ", ".join(cpu), "", None)
        if tp.get("server_cpu_us_per_request") is not None:
            per = f"{tp['server_cpu_us_per_request']:.0f} us"
            yield ("  server CPU per request", per, "", None)
    idle = fig.get("idle")
    if idle:
        n = idle["connections"]
        ok = idle["usable"] == n and idle["server_reports_connections"] in (None, n)
        yield ("idle connections usable", f"{idle['usable']}/{n}", f"{n}/{n}", ok)
        yield ("  server /health connections", str(idle["server_reports_connections"]), "", None)
        if idle["failures"]:
            yield ("  failures", f"{idle['failures']} ({idle['first_failure']})", "", None)
        yield ("  opened in", f"{idle['open_seconds']:.2f} s", "", None)
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
            yield ("  server VmRSS after closing them", mib(idle["rss_after_close_kb"]), "", None)
            per_rss = f"{idle['rss_per_connection_kb']:.1f} KiB"
            yield ("  VmRSS growth per connection", per_rss, "", None)
            if idle.get("anon_per_connection_kb") is not None:
                heap = f"{mib(idle['anon_before_kb'])} -> {mib(idle['anon_with_connections_kb'])}"
                yield ("  server heap (RssAnon)", heap, "", None)
                per_anon = f"{idle['anon_per_connection_kb']:.1f} KiB"
                yield ("  heap growth per connection", per_anon, "", None)
            moved = (idle.get("file_with_connections_kb") or 0) - (idle.get("file_before_kb") or 0)
            if abs(moved) > 4096:
                yield ("  note: file-backed RSS moved", mib(moved), "(not connections)", None)
        else:
            yield ("  server RSS", "n/a (pass --pid)", "", None)


# -- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", help="benchmark a running server (ws://127.0.0.1:PORT/mcp)")
    p.add_argument("--pid", type=int, help="the running server's pid (for its memory)")
    p.add_argument("--requests", type=int, help="latency: sequential requests (default 2000)")
    p.add_argument("--warmup", type=int, help="latency: warm-up requests (default 200)")
    p.add_argument("--clients", type=int, default=50, help="throughput: clients (default 50)")
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
    p.add_argument("--connections", type=int, default=1000, help="idle connections (default 1000)")
    p.add_argument("--batch", type=int, default=100, help="connections opened at once")
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
    p.add_argument("--quick", action="store_true", help="a short run (under 10 s)")
    p.add_argument("--json", action="store_true", help="also print all figures as a JSON line")
    p.add_argument("--skip", action="append", default=[], choices=["latency", "throughput", "idle"])
    args = p.parse_args(argv)
    args.requests = args.requests or (500 if args.quick else 2000)
    args.warmup = args.warmup if args.warmup is not None else (100 if args.quick else 200)
    args.duration = args.duration or (1.0 if args.quick else 5.0)
    if args.url:
        parts = urlsplit(args.url)
        if parts.scheme != "ws" or parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
            p.error("--url must be a ws:// URL on loopback")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fig: dict[str, Any] = {"client_loop": loop_factory()[1]}
    fig["cpu_count"] = os.cpu_count()
    fig["loadavg_at_start"] = os.getloadavg()[0]
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
            server = spawn_server(args.embedding_provider)
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
            for key, method, code in (
                ("throughput", LIST, None),
                ("throughput_error_path", UNKNOWN, METHOD_NOT_FOUND),
            ):
                how = f"{args.count} each" if args.count else f"{args.duration:g} s"
                where = f"{args.load_procs} load process(es)" if args.load_procs else "in-process"
                print(f"throughput: {args.clients} clients x {method}, {how}, {where} ...")
                fig[key] = await measure_throughput(
                    server.url,
                    server_pid=server.pid,
                    clients=args.clients,
                    method=method,
                    expect_error=code,
                    duration=args.duration,
                    count=args.count,
                    load_procs=args.load_procs,
                )
        if "idle" not in args.skip:
            print(f"idle: opening {args.connections} connections in batches of {args.batch} ...")
            fig["idle"] = await measure_idle_connections(
                server.url, server.pid, args.connections, args.batch
            )
    finally:
        if server is not None:
            server.stop()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The server inherits the limit when it is raised before it starts.
    soft, _ = raise_nofile(args.connections + args.clients + 256)
    if soft != resource.RLIM_INFINITY and soft < args.connections + 64:
        print(f"open-files limit {soft} is too low for {args.connections} connections")
        return 2
    # A plain `kill` should still stop the server: turn SIGTERM into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    fig = run_async(run(args))
    fig["total_seconds"] = time.perf_counter() - t0
    fig["nofile_soft_limit"] = soft
    print()
    print_table(list(build_rows(fig)))
    print(f"\n(total {fig['total_seconds']:.1f} s)")
    if args.json:
        print(json.dumps(_clean(fig), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
