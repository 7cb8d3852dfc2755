"""What the benchmark scripts share: a server subprocess on loopback, percentiles, and the
bundled model measured by itself."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    started_at: float
    ready_seconds: float

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/mcp"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float = 60.0,
    data_dir: Path | None = None,
) -> Server:
    """Start `persona-mcp serve` on a free port with a fresh data folder (or `data_dir`,
    one the caller prepared; `stop_server` removes it either way); wait for /health."""
    exe = Path(sys.executable).parent / "persona-mcp"
    port = free_port()
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="persona-bench-"))
    # Benchmarks measure the server, not its limits: no request rate limit.
    environment = {
        **os.environ, "PERSONA_MCP_DATA_DIR": str(data_dir), "RATE_LIMIT_PER_MINUTE": "0",
        **(env or {}),
    }  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--llm", "offline",
         "--env-file", str(data_dir / "none.env"), *args],
        env=environment, cwd=data_dir,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                break
        except OSError:
            time.sleep(0.02)
    else:
        process.kill()
        raise RuntimeError("server did not answer /health in time")
    return Server(process, port, data_dir, started, time.perf_counter() - started)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)
    shutil.rmtree(server.data_dir, ignore_errors=True)


def stop_servers(servers: Sequence[Server]) -> None:
    for server in servers:
        server.process.terminate()
    for server in servers:
        stop_server(server)


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used so far, all its threads: the scheduler's nanosecond
    figures (/proc/PID/task/*/schedstat), else user + system ticks from /proc/PID/stat."""
    total, found = 0, False
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
                found = True
    if found:
        return total / 1e9
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Postgres:
    url: str
    handle: Any
    folder: Path

    def stop(self) -> None:
        self.handle.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> Postgres:
    """A throwaway PostgreSQL 16 with pgvector (the `pgserver` wheel of the dev extra) on
    a Unix socket, and a fresh database on it."""
    import pgserver
    import psycopg

    folder = Path(tempfile.mkdtemp(prefix="persona-bench-pg-"))
    handle = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    url = handle.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench")
    return Postgres(url.replace("/postgres?", "/bench?", 1), handle, folder)


async def model_alone(
    texts: Sequence[str], batch: int, queries: Sequence[str] = ()
) -> dict[str, float | None]:
    """The bundled model by itself, in this process, with the server's settings: how fast
    it encodes `texts` in batches of `batch` (the most any ingest of them can reach on
    this machine) and the p50 of one query (part of every search). Run it after the
    server has stopped, so the two do not share the cores."""
    from persona_mcp.embeddings.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    await embedder.wait_ready()
    try:
        await embedder.embed(list(texts[:batch]))  # warm
        t0 = time.perf_counter()
        for start in range(0, len(texts), batch):
            await embedder.embed(list(texts[start : start + batch]))
        rate = len(texts) / (time.perf_counter() - t0)
        ms = []
        for query in queries:
            t0 = time.perf_counter()
            await embedder.embed([query])
            ms.append((time.perf_counter() - t0) * 1000)
    finally:
        await embedder.aclose()
    return {
        "encode_per_second": round(rate, 1),
        "query_ms": round(percentile(ms, 50), 2) if ms else None,
    }
