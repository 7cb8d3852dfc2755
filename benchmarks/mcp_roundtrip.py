"""MCP `tools/call` round trip: persona-mcp beside a bare SDK server returning the same result.

Prints goal / measured / verdict rows; it is not a test. The fair baseline is a bare
official-SDK low-level `Server` (no registry, no sessions, no database) that serves ONE
tool: persona-mcp's own `persona.list` tool definition (same name, input schema and
output schema) answering persona-mcp's own `persona.list` result (the same
`structuredContent` and JSON text, captured from the persona-mcp server at the start of
the run). Both servers therefore send the same bytes, and the SDK client does the same
work on both replies, output-schema validation included; what differs is what each
server spends producing them.

Targets, measured in the same run:

- persona-mcp over stdio (`persona-mcp stdio`, spawned by the SDK client) and over
  Streamable HTTP (`persona-mcp serve`, http://127.0.0.1:PORT/mcp), each with a fresh
  temporary data directory, `--llm offline` and `EMBEDDING_PROVIDER=none` (persona.list
  never embeds) and no rate limit;
- the bare SDK server, run by this same script with a hidden flag, over stdio and over
  Streamable HTTP (`Server.streamable_http_app()` under uvicorn on 127.0.0.1).

Each target is driven by the official SDK `Client` (`mode="legacy"`: the `initialize`
handshake, 2025-11-25; `mode="auto"`: `server/discover`, 2026-07-28), one call at a time.
After the warm-up the two targets of one transport and mode take turns in blocks of
five calls (persona-mcp first in odd blocks, bare first in even ones), so machine noise
falls on both alike. Besides the client-side round trip, the CPU time each server process spends per
call is read from /proc (user + system), which depends least on other load.

Goal (issue 10): persona-mcp's round trip within 1.3x of the bare server's (p50 and mean),
on both transports.

    .venv/bin/python benchmarks/mcp_roundtrip.py                  # 500 calls per target
    .venv/bin/python benchmarks/mcp_roundtrip.py --quick          # 100 calls per target
    .venv/bin/python benchmarks/mcp_roundtrip.py --calls 2000 --modes legacy --json
    .venv/bin/python benchmarks/mcp_roundtrip.py --transports http

Everything stays on loopback, is bounded in time (`--timeout`), and every server process
is stopped on the way out.
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
from common import cpu_seconds, free_port, percentile, start_server, stop_server

TARGET_RATIO = 1.3
TOOL = "persona.list"
BLOCK = 5  # calls per block: short blocks, so noise falls on both targets alike
EMBEDDING_NOTE = (
    "persona-mcp runs with EMBEDDING_PROVIDER=none: persona.list never embeds, so the "
    "bundled embedding model is irrelevant here (and would only slow startup)"
)


def dump(model: Any) -> Any:
    """An SDK model as it goes on the wire."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def wire_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


# -- the bare SDK server (run by this script in a child process) ---------------------------


def bare_server(transport: str, payload_path: str, port: int | None) -> int:
    """A low-level SDK `Server` with one tool, answering the captured result on every call."""
    import anyio
    import mcp_types as types
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError

    payload = json.loads(Path(payload_path).read_text())
    tool = types.Tool.model_validate(payload["tool"])
    text = payload["result"]["content"][0]["text"]
    data = payload["result"]["structuredContent"]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name != tool.name:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=data)

    server: Server[Any] = Server(
        "bare-sdk", version="0", on_list_tools=list_tools, on_call_tool=call_tool
    )
    if transport == "stdio":
        from mcp.server.stdio import stdio_server

        async def run() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(run)
        return 0
    if transport == "http" and port:
        import uvicorn

        app = server.streamable_http_app(host="127.0.0.1")
        # Same uvicorn defaults as `persona-mcp serve` (auto loop and HTTP parser, no access log).
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return 0
    print("usage: --bare-server stdio PAYLOAD | --bare-server http PAYLOAD PORT", file=sys.stderr)
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


@dataclass
class HttpServer:
    url: str
    pid: int


@contextlib.contextmanager
def bare_http_server(payload: Path, log: TextIO, timeout: float) -> Iterator[HttpServer]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--bare-server", "http", str(payload),
         str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        wait_port(process, port, timeout)
        yield HttpServer(f"http://127.0.0.1:{port}/mcp", process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def persona_http_server(timeout: float) -> Iterator[HttpServer]:
    server = start_server(env={"EMBEDDING_PROVIDER": "none"}, timeout=timeout)
    try:
        yield HttpServer(f"{server.http_url}/mcp", server.pid)
    finally:
        stop_server(server)


# The SDK spawns stdio servers with a minimal environment; these still reach persona-mcp
# (the HTTP server gets this process's whole environment).
PASSED_ON = {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "OPENBLAS_NUM_THREADS")}


def persona_exe() -> str:
    return str(Path(sys.executable).parent / "persona-mcp")


def child_pid(marker: str, taken: set[int]) -> int | None:
    """The pid of a child of this process whose command line holds `marker` (stdio
    servers are spawned by the SDK client, which does not tell their pid)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in taken:
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me and marker in cmdline:
            return int(entry.name)
    return None


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Target:
    name: str  # "persona-mcp" or "bare-sdk"
    client: Any = None
    pid: int | None = None
    protocol: str = ""
    response_bytes: int = 0
    validate_ms: float = math.nan
    cpu_seconds: float = 0.0
    samples: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ms = self.samples
        cpu_us = self.cpu_seconds / len(ms) * 1e6 if ms and self.pid else math.nan
        return {
            "target": self.name,
            "protocol": self.protocol,
            "calls": len(ms),
            "response_bytes": self.response_bytes,
            "p50_ms": percentile(ms, 50),
            "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99),
            "mean_ms": statistics.fmean(ms) if ms else math.nan,
            "min_ms": min(ms) if ms else math.nan,
            "server_cpu_us_per_call": cpu_us,
            "client_validate_ms": self.validate_ms,
        }


async def call_once(target: Target) -> float:
    started = time.perf_counter()
    result = await target.client.call_tool(TOOL, {})
    elapsed = (time.perf_counter() - started) * 1000
    if result.is_error:
        raise RuntimeError(f"{target.name} {TOOL} failed: {result.content}")
    return elapsed


async def validation_ms(target: Target, result: Any, repeat: int = 200) -> float:
    """What the SDK client spends per call re-validating `structuredContent` against the
    tool's `outputSchema` (jsonschema, in this process): part of every round trip above."""
    session = target.client.session
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await session.validate_tool_result(TOOL, result)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50)


async def measure_pair(targets: list[Target], warmup: int, calls: int) -> None:
    """Warm each target up, then alternate blocks of calls between the two."""
    first_results: dict[str, Any] = {}
    for target in targets:
        first = await target.client.call_tool(TOOL, {})
        if first.is_error:
            raise RuntimeError(f"{target.name} {TOOL} failed: {first.content}")
        first_results[target.name] = first
        target.protocol = str(target.client.protocol_version)
        target.response_bytes = wire_bytes(dump(first))
        for _ in range(warmup):
            await call_once(target)
    sizes = [min(BLOCK, calls - start) for start in range(0, calls, BLOCK)]
    for block, size in enumerate(sizes):
        order = targets if block % 2 == 0 else targets[::-1]
        for target in order:
            before = cpu_seconds(target.pid) if target.pid else None
            for _ in range(size):
                target.samples.append(await call_once(target))
            after = cpu_seconds(target.pid) if target.pid else None
            if before is not None and after is not None:
                target.cpu_seconds += after - before
    for target in targets:
        target.validate_ms = await validation_ms(target, first_results[target.name])


@contextlib.asynccontextmanager
async def connected(
    target: Target, source: Any, mode: str, pid: Callable[[], int | None]
) -> AsyncIterator[Target]:
    from mcp import Client

    async with Client(source, mode=mode, read_timeout_seconds=30) as client:
        target.client = client
        target.pid = pid()
        try:
            yield target
        finally:
            target.client = None


Source = tuple[Callable[[], Any], Callable[[], int | None]]


def stdio_sources(tmp: Path, payload: Path, log: TextIO) -> tuple[Source, Source]:
    """Transport factories (one subprocess per connection) for persona-mcp and bare, stdio."""
    from mcp.client.stdio import StdioServerParameters, stdio_client

    taken: set[int] = set()

    def found(marker: str) -> Callable[[], int | None]:
        def pid() -> int | None:
            value = child_pid(marker, taken)
            if value is not None:
                taken.add(value)
            return value

        return pid

    def persona() -> Any:
        data_dir = Path(tempfile.mkdtemp(prefix="persona-stdio-", dir=tmp))
        params = StdioServerParameters(
            command=persona_exe(),
            args=["stdio", "--data-dir", str(data_dir), "--llm", "offline",
                  "--env-file", str(data_dir / "none.env")],
            env={"EMBEDDING_PROVIDER": "none", "PERSONA_MCP_DATA_DIR": str(data_dir),
                 "RATE_LIMIT_PER_MINUTE": "0", **PASSED_ON},
            cwd=str(data_dir),
        )  # fmt: skip
        return stdio_client(params, errlog=log)

    def bare() -> Any:
        params = StdioServerParameters(
            command=sys.executable,
            args=[str(Path(__file__).resolve()), "--bare-server", "stdio", str(payload)],
            cwd=str(tmp),
        )
        return stdio_client(params, errlog=log)

    return (persona, found("persona-mcp stdio")), (bare, found("--bare-server stdio"))


def http_sources(persona: HttpServer, bare: HttpServer) -> tuple[Source, Source]:
    from mcp.client.streamable_http import streamable_http_client

    return (
        (lambda: streamable_http_client(persona.url), lambda: persona.pid),
        (lambda: streamable_http_client(bare.url), lambda: bare.pid),
    )


async def run_pair(
    transport: str, mode: str, sources: tuple[Source, Source], args: argparse.Namespace
) -> dict[str, Any]:
    import anyio

    persona = Target("persona-mcp")
    bare = Target("bare-sdk")
    row: dict[str, Any] = {"transport": transport, "mode": mode}
    (persona_source, persona_pid), (bare_source, bare_pid) = sources
    try:
        with anyio.fail_after(args.timeout):
            async with (
                connected(persona, persona_source(), mode, persona_pid),
                connected(bare, bare_source(), mode, bare_pid),
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
    row["ratio_server_cpu"] = (
        row["persona"]["server_cpu_us_per_call"] / row["bare"]["server_cpu_us_per_call"]
    )
    row["pass"] = max(row["ratio_p50"], row["ratio_mean"]) <= TARGET_RATIO
    # The same ratio with the client's outputSchema validation taken out of both sides.
    row["ratio_p50_without_client_validation"] = (
        row["persona"]["p50_ms"] - persona.validate_ms
    ) / (row["bare"]["p50_ms"] - bare.validate_ms)
    return row


async def capture(url: str, payload: Path) -> dict[str, Any]:
    """persona-mcp's own persona.list tool and result, for the bare server to serve; and
    the size of its tools/list."""
    from mcp import Client

    async with Client(url, mode="legacy", read_timeout_seconds=30) as client:
        listed = await client.list_tools()
        tool = next(t for t in listed.tools if t.name == TOOL)
        result = await client.call_tool(TOOL, {})
    text = json.dumps({"tool": dump(tool), "result": dump(result)})
    payload.write_text(text)  # noqa: ASYNC240 - a few KB, once, before anything is timed
    return {
        "tools": len(listed.tools),
        "tools_list_bytes": wire_bytes(dump(listed)),
        "output_schema_bytes": sum(wire_bytes(t.output_schema or {}) for t in listed.tools),
        "tool_output_schema_bytes": wire_bytes(tool.output_schema or {}),
        "result_bytes": wire_bytes(dump(result)),
    }


async def run_all(args: argparse.Namespace, tmp: Path, log: TextIO) -> dict[str, Any]:
    rows = []
    payload = tmp / "payload.json"
    with persona_http_server(args.startup_timeout) as persona_http:
        sizes = await capture(persona_http.url, payload)
        if "stdio" in args.transports:
            for mode in args.modes:
                rows.append(await run_pair("stdio", mode, stdio_sources(tmp, payload, log), args))
        if "http" in args.transports:
            with bare_http_server(payload, log, args.startup_timeout) as bare_http:
                for mode in args.modes:
                    sources = http_sources(persona_http, bare_http)
                    rows.append(await run_pair("http", mode, sources, args))
    return {"sizes": sizes, "rows": rows}


# -- reporting -------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    from importlib.metadata import version

    rows, sizes = report["rows"], report["sizes"]
    print(
        f"MCP tools/call round trip: {args.calls} sequential calls per target after "
        f"{args.warmup} warm-up calls, in alternating blocks of {BLOCK}"
    )
    print(
        f"python {platform.python_version()}, mcp {version('mcp')}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"both targets: {TOOL} {{}}; bare-sdk is a low-level SDK Server answering persona-mcp's "
        f"captured {TOOL} result ({sizes['result_bytes']} bytes) under the same tool definition"
    )
    print(f"note: {EMBEDDING_NOTE}")
    print(
        "bytes: the CallToolResult as JSON; cpu: server process CPU per call (us, /proc); "
        "valid.: p50 of the SDK client's own jsonschema check of structuredContent against "
        "the outputSchema, included in every round trip"
    )
    print()
    head = (
        f"{'transport':<9} {'mode':<6} {'target':<11} {'protocol':<10} {'calls':>5} "
        f"{'bytes':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'mean':>7} {'valid.':>7} {'cpu':>6}"
        "  (ms)"
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
                f"{s['client_validate_ms']:>7.3f} {s['server_cpu_us_per_call']:>6.0f}"
            )
    print()
    table: list[tuple[str, str, str, bool | None]] = []
    for row in rows:
        name = f"{row['transport']} {row['mode']}: round trip persona-mcp / bare SDK"
        if "error" in row:
            table.append((name, "error", f"<= {TARGET_RATIO}x", False))
            continue
        measured = f"p50 {row['ratio_p50']:.2f}x, mean {row['ratio_mean']:.2f}x"
        table.append((name, measured, f"<= {TARGET_RATIO}x", row["pass"]))
        p, b = row["persona"], row["bare"]
        cpu = (
            f"{p['server_cpu_us_per_call']:.0f} / {b['server_cpu_us_per_call']:.0f} us "
            f"({row['ratio_server_cpu']:.2f}x)"
        )
        table.append(("  server CPU per call, persona-mcp / bare", cpu, "", None))
        without = f"{row['ratio_p50_without_client_validation']:.2f}x"
        table.append(("  p50 ratio without client validation", without, "", None))
    for transport in ("stdio", "http"):
        mine = [r for r in rows if r["transport"] == transport]
        if mine:
            ok = all(r.get("pass") for r in mine)
            modes = ", ".join(r["mode"] for r in mine)
            table.append((f"{transport}: every mode ({modes})", "", f"<= {TARGET_RATIO}x", ok))
    table.append((f"tools/list size ({sizes['tools']} tools)", f"{sizes['tools_list_bytes']:,} B",
                  "", None))  # fmt: skip
    table.append(("  all outputSchemas", f"{sizes['output_schema_bytes']:,} B", "", None))
    table.append((f"  {TOOL} outputSchema", f"{sizes['tool_output_schema_bytes']:,} B", "", None))
    header = ("figure", "measured", "goal")
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) for i in range(3)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  verdict"
    print(line)
    print("-" * len(line))
    for name, measured, goal, ok in table:
        print(
            f"{name.ljust(widths[0])}  {measured.rjust(widths[1])}  {goal.ljust(widths[2])}  "
            f"{verdict(ok)}"
        )


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 calls per target")
    parser.add_argument("--calls", type=int, help="measured calls per target (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up calls per target")
    parser.add_argument("--modes", default="legacy,auto", help="client modes: legacy,auto")
    parser.add_argument("--transports", default="stdio,http", help="transports: stdio,http")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per transport+mode")
    parser.add_argument("--startup-timeout", type=float, default=60, help="seconds per server")
    parser.add_argument("--bare-server", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = 100 if args.quick else 500
    if args.calls < 2 * BLOCK:
        parser.error(f"--calls must be at least {2 * BLOCK}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in ("legacy", "auto")]
    if bad or not args.modes:
        parser.error(f"--modes takes legacy and/or auto, not {bad or args.modes}")
    args.transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    bad = [t for t in args.transports if t not in ("stdio", "http")]
    if bad or not args.transports:
        parser.error(f"--transports takes stdio and/or http, not {bad or args.transports}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server:
        kind, payload, port = (*args.bare_server, None, None)[:3]
        if payload is None:
            parser_usage = "--bare-server stdio PAYLOAD | --bare-server http PAYLOAD PORT"
            print(f"usage: {parser_usage}", file=sys.stderr)
            return 2
        return bare_server(kind, payload, int(port) if port else None)

    import anyio

    tmp = Path(tempfile.mkdtemp(prefix="mcp-roundtrip-"))
    log_path = tmp / "servers.log"
    try:
        with log_path.open("w") as log:
            report = anyio.run(run_all, args, tmp, log)
        if args.json:
            figures = {
                "calls": args.calls,
                "warmup": args.warmup,
                "block": BLOCK,
                "target_ratio": TARGET_RATIO,
                "note": EMBEDDING_NOTE,
                **report,
            }
            print(json.dumps(figures, indent=2))
        else:
            print_report(report, args)
        errors = [r for r in report["rows"] if "error" in r]
        if errors:
            print(f"server log (tail):\n{log_path.read_text()[-3000:]}", file=sys.stderr)
        return 1 if errors else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
