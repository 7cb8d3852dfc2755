"""The command line: parses arguments, builds settings, then calls into the services."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import get_args

from pydantic import ValidationError

from persona_mcp import __version__
from persona_mcp.auth.cli import add_token_commands, run_token_command
from persona_mcp.bench import add_bench_command, run_bench
from persona_mcp.client.interactive import add_client_command, run_client_command
from persona_mcp.config import LLMProviderName, Settings, load_settings
from persona_mcp.errors import PersonaMCPError
from persona_mcp.native import cap_malloc_arenas
from persona_mcp.portability.cli import (
    add_migrate_command,
    add_state_commands,
    run_migrate_command,
    run_state_command,
)

log = logging.getLogger("persona_mcp")


def _llm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--llm", choices=get_args(LLMProviderName), help="LLM provider (LLM_PROVIDER)"
    )
    parser.add_argument(
        "--llama-model",
        metavar="GGUF",
        help="a GGUF model file run in-process for --llm llamacpp or auto (LLAMA_MODEL_PATH)",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="where the database lives (PERSONA_MCP_DATA_DIR)")
    parser.add_argument("--debug", action="store_const", const=True, help="verbose logging")
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persona-mcp",
        description="Local-first persona and memory server (WebSocket JSON-RPC and MCP).",
    )
    parser.add_argument("--version", action="version", version=f"persona-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the server: WebSocket JSON-RPC and MCP over HTTP at /mcp"
    )
    _common(serve)
    serve.add_argument("--host", help="bind address (SERVER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SERVER_PORT, default 8000)")
    _llm(serve)
    _auth(serve)

    serve.add_argument(
        "--simulate",
        type=int,
        metavar="N",
        help="after start, run an N-turn chatroom of the default personas (SIMULATE_TURNS)",
    )

    simulate = commands.add_parser(
        "simulate", help="run a chatroom of personas on a topic and print each turn"
    )
    _common(simulate)
    simulate.add_argument(
        "--personas", required=True, help="2-8 persona names or ids, comma-separated"
    )
    simulate.add_argument("--topic", required=True, help="what they talk about")
    simulate.add_argument("--turns", type=int, default=12, help="at most this many turns")
    simulate.add_argument("--seed", type=int, help="the same seed replays an offline run")
    simulate.add_argument(
        "--llm", choices=["auto", "ollama", "openai", "offline"], help="LLM provider (LLM_PROVIDER)"
    )

    stdio = commands.add_parser(
        "stdio", help="serve MCP over stdin/stdout (for Claude Desktop and other launchers)"
    )
    _common(stdio)
    _llm(stdio)
    _auth(stdio)

    reindex = commands.add_parser(
        "reindex", help="re-embed every memory with the configured embedding model"
    )
    _common(reindex)
    add_token_commands(commands, _common)
    add_state_commands(commands, _common)
    add_migrate_command(commands)
    add_client_command(commands)
    add_bench_command(commands)
    return parser


def _auth(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--auth",
        choices=["off", "required"],
        help="off: callers without a token are the local admin; required: every caller "
        "needs a bearer token (AUTH_MODE, default off)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "data_dir": args.data_dir,
        "debug_mode": args.debug,
        "server_host": getattr(args, "host", None),
        "server_port": getattr(args, "port", None),
        "llm_provider": getattr(args, "llm", None),
        "auth_mode": getattr(args, "auth", None),
        "llama_model_path": getattr(args, "llama_model", None),
        "simulate_turns": getattr(args, "simulate", None),
    }
    return load_settings(env_file=args.env_file, **overrides)


def _logging(settings: Settings) -> None:
    # Logs always go to stderr: stdout may carry a protocol (stdio).
    logging.basicConfig(
        level=logging.DEBUG if settings.debug_mode else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(message: str) -> int:
    """A start-up failure: one readable line on stderr, no traceback."""
    print(f"persona-mcp: cannot start: {message}", file=sys.stderr)
    return 1


def _claim_storage(settings: Settings) -> int | None:
    """Lock the database to this process and check it opens and migrates, before
    anything slow starts; a failure is one line and an exit code."""
    from persona_mcp.store.backends import check_storage

    try:
        check_storage(settings)
    except PersonaMCPError as exc:
        return _fail(exc.message)
    return None


def serve(settings: Settings) -> int:
    from persona_mcp.transports.server import bind

    cap_malloc_arenas()
    if not settings.is_loopback and settings.auth_mode != "required":
        print(
            f"refusing to bind to {settings.server_host}: a non-loopback address needs "
            "authentication. Start with --auth required (AUTH_MODE=required) and give each "
            "caller a token from `persona-mcp token create --user NAME`.",
            file=sys.stderr,
        )
        return 2
    failed = _claim_storage(settings)
    if failed is not None:
        return failed
    try:
        sock = bind(settings.server_host, settings.server_port)
    except OSError as exc:
        return _fail(f"{settings.server_host}:{settings.server_port}: {exc.strerror or exc}")
    # Bound and listening before the heavy imports: clients queue instead of being refused.
    import uvicorn

    from persona_mcp.store.backends import storage_name
    from persona_mcp.transports.asgi import create_asgi
    from persona_mcp.transports.server import uvicorn_config

    server = uvicorn.Server(uvicorn_config(settings, create_asgi(settings)))
    log.info(
        "persona-mcp %s on ws://%s:%s/mcp (data: %s)",
        __version__,
        settings.server_host,
        settings.server_port,
        storage_name(settings),
    )
    server.run(sockets=[sock])  # uvicorn's own loop setup picks uvloop when it is installed
    return 0


def stdio(settings: Settings) -> int:
    """Serve MCP on stdin/stdout until stdin closes; stdout carries only protocol."""
    cap_malloc_arenas()
    import anyio
    from mcp.server.stdio import stdio_server

    from persona_mcp.app import App
    from persona_mcp.errors import Unauthenticated
    from persona_mcp.transports.mcp import McpDoor

    async def run() -> int:
        app = App(settings)
        await app.start()
        token = settings.mcp_token.get_secret_value() if settings.mcp_token else None
        try:
            principal = await app.tokens.resolve(token, settings.auth_mode)
        except Unauthenticated as exc:
            await app.close()
            print(f"persona-mcp stdio: {exc.message}; set PERSONA_MCP_TOKEN", file=sys.stderr)
            return 2
        door = McpDoor(app, "mcp-stdio", None, principal)
        try:
            async with stdio_server() as (read_stream, write_stream):
                await door.server.run(
                    read_stream, write_stream, door.server.create_initialization_options()
                )
        finally:
            await door.close()
            await app.close()
        return 0

    return anyio.run(run)


def reindex(settings: Settings) -> int:
    from persona_mcp.app import App

    async def run() -> int:
        app = App(settings)
        await app.start(background=False)
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"\rre-embedded {done}/{total} memories ({rate:.0f}/s)", end="", file=sys.stderr)

        try:
            print(f"loading {app.memory.embedder.model} ...", file=sys.stderr)
            count = await app.memory.reindex(progress)
        finally:
            await app.close()
        print(f"\nre-embedded {count} memories in {time.perf_counter() - started:.1f} s")
        return 0

    return asyncio.run(run())


def simulate(settings: Settings, args: argparse.Namespace) -> int:
    from persona_mcp.app import App
    from persona_mcp.simulation.report import run_and_print

    async def run() -> int:
        app = App(settings)
        await app.start(background=False)
        try:
            names = [n.strip() for n in args.personas.split(",") if n.strip()]
            await run_and_print(app, names, args.topic, args.turns, args.seed, print)
        finally:
            await app.close()
        return 0

    try:
        return asyncio.run(run())
    except PersonaMCPError as exc:
        print(f"persona-mcp simulate: {exc.message}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    # One BLAS thread: numpy's pool would fight torch's for the cores and triple the tail
    # latency of the query-vector products (measured on 2 cores).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":  # a script that starts its own servers, given the rest
        return run_bench(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "client":  # a client of a server: no settings, no data directory
        return run_client_command(args)
    if args.command == "migrate-store":  # names both stores itself
        logging.basicConfig(level=logging.WARNING)
        return run_migrate_command(args)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    _logging(settings)
    if args.command in {
        "stdio",
        "reindex",
        "export",
        "import",
    }:  # token commands may run beside a server
        failed = _claim_storage(settings)
        if failed is not None:
            return failed
    if args.command == "serve":
        return serve(settings)
    if args.command == "stdio":
        return stdio(settings)
    if args.command == "reindex":
        return reindex(settings)
    if args.command == "token":
        return run_token_command(args, settings)
    if args.command == "simulate":
        return simulate(settings, args)
    if args.command in {"export", "import"}:
        return run_state_command(args, settings)
    raise AssertionError(args.command)
