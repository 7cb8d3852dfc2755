"""MCP `tools/call` round trip: persona-mcp next to a bare SDK server, stdio and HTTP.

Prints figures; it is not a test. Four targets are measured in the same run:

- persona-mcp over stdio (`persona-mcp stdio`, spawned by the SDK client) and over
  Streamable HTTP (`persona-mcp serve`, http://127.0.0.1:PORT/mcp), both with a fresh
  temporary data directory, `--llm offline` and `EMBEDDING_PROVIDER=none`;
- a bare SDK server: an `MCPServer` with one trivial tool (`ping`, returning a small
  dict), run by this same script with a hidden flag, over stdio and over Streamable HTTP
  (uvicorn on 127.0.0.1, `MCPServer.streamable_http_app()`).

Each target is driven by the official SDK `Client` (`mode="legacy"`: the `initialize`
handshake, 2025-11-25; `mode="auto"`: `server/discover`, 2026-07-28), one call at a
time: `persona.list` with `{}` for persona-mcp, `ping` with `{}` for the bare server.
After the warm-up the two targets of one transport and mode take turns in blocks
(persona-mcp first in odd blocks, bare first in even ones), so that machine noise falls
on both alike. The target is persona-mcp within 1.3x of the bare SDK server (p50 and
mean) on both transports.

    .venv/bin/python benchmarks/mcp_roundtrip.py                  # 500 calls per target
    .venv/bin/python benchmarks/mcp_roundtrip.py --quick          # 100 calls per target
    .venv/bin/python benchmarks/mcp_roundtrip.py --calls 2000 --modes legacy --json

Everything stays on loopback, is bounded in time (`--timeout`), and every server
process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, percentile, start_server, stop_server

TARGET_RATIO = 1.3
PERSONA_TOOL = "persona.list"
BARE_TOOL = "ping"
BLOCKS = 10
EMBEDDING_NOTE = (
    "persona-mcp runs with EMBEDDING_PROVIDER=none: persona.list never embeds, so the "
    "bundled embedding model is irrelevant here (and would only slow startup)"
)


# -- the bare SDK server (run by this script in a child process) ---------------------------


def bare_server(transport: str, port: int | None) -> int:
    """An `MCPServer` with one trivial tool, over stdio or Streamable HTTP on loopback."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bare-sdk", version="0")

    # async: a sync tool would cost the bare server a worker-thread hop per call.
    @server.tool(name=BARE_TOOL, description="Answer with a small constant dict")
    async def ping() -> dict[str, Any]:
        return {"ok": True, "server": "bare-sdk"}

    if transport == "stdio":
        server.run("stdio")
        return 0
    if transport == "http" and port:
        import uvicorn

        app = server.streamable_http_app(host="127.0.0.1")
        # Same uvicorn defaults as `persona-mcp serve` (auto loop and HTTP parser, no access log).
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return 0
    print("usage: --bare-server stdio | --bare-server http PORT", file=sys.stderr)
    return 2


# -- server processes ------------------------------------------------------------------------


def wait_port(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bare HTTP server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.02)
    raise RuntimeError("bare HTTP server did not listen in time")


@contextlib.contextmanager
def bare_http_server(log: TextIO, timeout: float) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--bare-server", "http", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    try:
        wait_port(process, port, timeout)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def persona_http_server(timeout: float) -> Iterator[str]:
    server = start_server(env={"EMBEDDING_PROVIDER": "none"}, timeout=timeout)
    try:
        yield f"{server.http_url}/mcp"
    finally:
        stop_server(server)


def persona_exe() -> str:
    return str(Path(sys.executable).parent / "persona-mcp")


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Target:
    name: str  # "persona-mcp" or "bare-sdk"
    tool: str
    client: Any = None
    protocol: str = ""
    response_bytes: int = 0
    validate_ms: float = math.nan
    samples: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ms = self.samples
        return {
            "target": self.name,
            "tool": self.tool,
            "protocol": self.protocol,
            "calls": len(ms),
            "response_bytes": self.response_bytes,
            "p50_ms": percentile(ms, 50),
            "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99),
            "mean_ms": statistics.fmean(ms) if ms else math.nan,
            "min_ms": min(ms) if ms else math.nan,
            "client_validate_ms": self.validate_ms,
        }


async def call_once(target: Target) -> float:
    started = time.perf_counter()
    result = await target.client.call_tool(target.tool, {})
    elapsed = (time.perf_counter() - started) * 1000
    if result.is_error:
        raise RuntimeError(f"{target.name} {target.tool} failed: {result.content}")
    return elapsed


async def validation_ms(target: Target, result: Any, repeat: int = 200) -> float:
    """What the SDK client spends per call re-validating `structuredContent` against the
    tool's `outputSchema` (jsonschema, in this process): part of every round trip above."""
    session = target.client.session
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await session.validate_tool_result(target.tool, result)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50)


async def measure_pair(targets: list[Target], warmup: int, calls: int) -> None:
    """Warm each target up, then alternate blocks of calls between the two."""
    first_results: dict[str, Any] = {}
    for target in targets:
        first = await target.client.call_tool(target.tool, {})
        if first.is_error:
            raise RuntimeError(f"{target.name} {target.tool} failed: {first.content}")
        first_results[target.name] = first
        target.protocol = str(target.client.protocol_version)
        target.response_bytes = len(
            json.dumps([c.model_dump(mode="json", by_alias=True) for c in first.content])
        )
        for _ in range(warmup):
            await call_once(target)
    sizes = [calls // BLOCKS + (1 if i < calls % BLOCKS else 0) for i in range(BLOCKS)]
    for block, size in enumerate(sizes):
        order = targets if block % 2 == 0 else targets[::-1]
        for target in order:
            for _ in range(size):
                target.samples.append(await call_once(target))
    for target in targets:
        target.validate_ms = await validation_ms(target, first_results[target.name])


@contextlib.asynccontextmanager
async def connected(target: Target, source: Any, mode: str) -> AsyncIterator[Target]:
    from mcp import Client

    async with Client(source, mode=mode, read_timeout_seconds=30) as client:
        target.client = client
        try:
            yield target
        finally:
            target.client = None


def stdio_sources(tmp: Path, log: TextIO) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Transport factories (one subprocess per connection) for persona-mcp and bare, stdio."""
    from mcp.client.stdio import StdioServerParameters, stdio_client

    def persona() -> Any:
        data_dir = Path(tempfile.mkdtemp(prefix="persona-stdio-", dir=tmp))
        params = StdioServerParameters(
            command=persona_exe(),
            args=["stdio", "--data-dir", str(data_dir), "--llm", "offline",
                  "--env-file", str(data_dir / "none.env")],
            env={"EMBEDDING_PROVIDER": "none", "PERSONA_MCP_DATA_DIR": str(data_dir),
                 "RATE_LIMIT_PER_MINUTE": "0"},
            cwd=str(data_dir),
        )  # fmt: skip
        return stdio_client(params, errlog=log)

    def bare() -> Any:
        params = StdioServerParameters(
            command=sys.executable,
            args=[str(Path(__file__).resolve()), "--bare-server", "stdio"],
            cwd=str(tmp),
        )
        return stdio_client(params, errlog=log)

    return persona, bare


def http_sources(persona_url: str, bare_url: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from mcp.client.streamable_http import streamable_http_client

    return (lambda: streamable_http_client(persona_url)), (lambda: streamable_http_client(bare_url))


async def run_pair(
    transport: str,
    mode: str,
    sources: tuple[Callable[[], Any], Callable[[], Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    import anyio

    persona = Target("persona-mcp", PERSONA_TOOL)
    bare = Target("bare-sdk", BARE_TOOL)
    row: dict[str, Any] = {"transport": transport, "mode": mode}
    try:
        with anyio.fail_after(args.timeout):
            async with (
                connected(persona, sources[0](), mode),
                connected(bare, sources[1](), mode),
            ):
                await measure_pair([persona, bare], args.warmup, args.calls)
    except TimeoutError:
        row["error"] = f"timed out after {args.timeout:g} s (--timeout)"
        return row
    except Exception as exc:  # reported, not raised: the other rows still count
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    row["persona"] = persona.summary()
    row["bare"] = bare.summary()
    row["ratio_p50"] = row["persona"]["p50_ms"] / row["bare"]["p50_ms"]
    row["ratio_mean"] = row["persona"]["mean_ms"] / row["bare"]["mean_ms"]
    row["pass"] = max(row["ratio_p50"], row["ratio_mean"]) <= TARGET_RATIO
    # The same ratio with the client's outputSchema validation taken out of both sides.
    row["ratio_p50_without_client_validation"] = (
        row["persona"]["p50_ms"] - persona.validate_ms
    ) / (row["bare"]["p50_ms"] - bare.validate_ms)
    return row


async def run_all(args: argparse.Namespace, tmp: Path, log: TextIO) -> list[dict[str, Any]]:
    rows = []
    for mode in args.modes:
        rows.append(await run_pair("stdio", mode, stdio_sources(tmp, log), args))
    with (
        persona_http_server(args.startup_timeout) as persona_url,
        bare_http_server(log, args.startup_timeout) as bare_url,
    ):
        for mode in args.modes:
            rows.append(await run_pair("http", mode, http_sources(persona_url, bare_url), args))
    return rows


# -- reporting -------------------------------------------------------------------------------


def print_report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from importlib.metadata import version

    print(
        f"MCP tools/call round trip: {args.calls} sequential calls per target after "
        f"{args.warmup} warm-up calls, in {BLOCKS} alternating blocks"
    )
    print(
        f"python {platform.python_version()}, mcp {version('mcp')}, "
        f"{os.cpu_count()} CPUs; persona-mcp: {PERSONA_TOOL} {{}}, bare-sdk: MCPServer "
        f"{BARE_TOOL} {{}}"
    )
    print(f"note: {EMBEDDING_NOTE}")
    print(
        "bytes: the tool result's content as JSON (persona-mcp also sends it again as "
        "structuredContent); valid.: p50 of the SDK client's own jsonschema check of "
        "structuredContent against the tool's outputSchema, included in every round trip"
    )
    print()
    head = (
        f"{'transport':<9} {'mode':<6} {'target':<11} {'protocol':<10} {'calls':>5} "
        f"{'bytes':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'mean':>7} {'valid.':>7}  (ms)"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        if "error" in row:
            print(f"{row['transport']:<9} {row['mode']:<6} ERROR {row['error']}")
            continue
        for key in ("bare", "persona"):
            s = row[key]
            print(
                f"{row['transport']:<9} {row['mode']:<6} {s['target']:<11} {s['protocol']:<10} "
                f"{s['calls']:>5} {s['response_bytes']:>6} {s['p50_ms']:>7.3f} "
                f"{s['p90_ms']:>7.3f} {s['p99_ms']:>7.3f} {s['mean_ms']:>7.3f} "
                f"{s['client_validate_ms']:>7.3f}"
            )
        verdict = "PASS" if row["pass"] else "MISS"
        print(
            f"{'':<17} persona/bare: p50 {row['ratio_p50']:.2f}x, mean {row['ratio_mean']:.2f}x"
            f"  -> {verdict} (target <= {TARGET_RATIO}x); p50 without client validation "
            f"{row['ratio_p50_without_client_validation']:.2f}x"
        )
    print()
    for transport in ("stdio", "http"):
        mine = [r for r in rows if r["transport"] == transport]
        if not mine:
            continue
        ok = all(r.get("pass") for r in mine)
        modes = ", ".join(
            f"{r['mode']}: {'error' if 'error' in r else ('PASS' if r['pass'] else 'MISS')}"
            for r in mine
        )
        print(f"{transport:<6} {'PASS' if ok else 'MISS'}  ({modes})")


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 calls per target")
    parser.add_argument("--calls", type=int, help="measured calls per target (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up calls per target")
    parser.add_argument("--modes", default="legacy,auto", help="client modes: legacy,auto")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per transport+mode")
    parser.add_argument("--startup-timeout", type=float, default=60, help="seconds per server")
    parser.add_argument("--bare-server", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = 100 if args.quick else 500
    if args.calls < BLOCKS:
        parser.error(f"--calls must be at least {BLOCKS}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in ("legacy", "auto")]
    if bad or not args.modes:
        parser.error(f"--modes takes legacy and/or auto, not {bad or args.modes}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server:
        kind, *rest = args.bare_server
        return bare_server(kind, int(rest[0]) if rest else None)

    import anyio

    tmp = Path(tempfile.mkdtemp(prefix="mcp-roundtrip-"))
    log_path = tmp / "servers.log"
    try:
        with log_path.open("w") as log:
            rows = anyio.run(run_all, args, tmp, log)
        if args.json:
            report = {
                "calls": args.calls,
                "warmup": args.warmup,
                "blocks": BLOCKS,
                "target_ratio": TARGET_RATIO,
                "note": EMBEDDING_NOTE,
                "rows": rows,
            }
            print(json.dumps(report, indent=2))
        else:
            print_report(rows, args)
        errors = [r for r in rows if "error" in r]
        if errors:
            print(f"server log (tail):\n{log_path.read_text()[-3000:]}", file=sys.stderr)
        return 1 if errors else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
