"""`persona-mcp export FILE`, `persona-mcp import FILE [--replace]`, and
`persona-mcp migrate-store --from STORE --to STORE [--force]`.

They work on the data directory itself, through the same StateService as state.save and
state.load, so they need the database to themselves: like `reindex`, they take the
database's lock and stop with a clear message while a server runs on it (then use
state.save / state.load through the server instead). FILE is any path (the operator
runs them); progress goes to stderr, the summary to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from persona_mcp.auth.principal import LOCAL_USER
from persona_mcp.config import Settings
from persona_mcp.errors import PersonaMCPError

if TYPE_CHECKING:
    from persona_mcp.portability.state import LoadMode

Common = Callable[[argparse.ArgumentParser], None]


def add_state_commands(commands: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    export = commands.add_parser(
        "export", help="save a user's whole state to FILE (state.save, without a server)"
    )
    common(export)
    export.add_argument("file", metavar="FILE", help="the state file to write (.jsonl.gz)")
    export.add_argument("--user", default=LOCAL_USER, help=f"whose state (default {LOCAL_USER})")

    load = commands.add_parser(
        "import", help="load a state file into a user's data (state.load, without a server)"
    )
    common(load)
    load.add_argument("file", metavar="FILE", help="a file written by export or state.save")
    load.add_argument("--user", default=LOCAL_USER, help=f"whose data (default {LOCAL_USER})")
    load.add_argument(
        "--replace",
        action="store_true",
        help="remove everything of the user first (default: merge, replacing only the "
        "personas the file holds)",
    )


def add_migrate_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = commands.add_parser(
        "migrate-store",
        help="copy a whole store to another backend (SQLite to PostgreSQL, or back)",
    )
    migrate.add_argument(
        "--from", dest="source", required=True, metavar="STORE",
        help="sqlite:PATH or postgresql://… (only read)",
    )  # fmt: skip
    migrate.add_argument(
        "--to", dest="target", required=True, metavar="STORE",
        help="sqlite:PATH or postgresql://… (must be empty, unless --force)",
    )  # fmt: skip
    migrate.add_argument(
        "--force", action="store_true", help="empty a target that already holds data"
    )


def run_migrate_command(args: argparse.Namespace) -> int:
    """Copy the store; progress per table on stderr, the summary on stdout."""
    from persona_mcp.portability.migrate import copy_store, open_named

    async def run() -> int:
        source, target = open_named(args.source), open_named(args.target)
        await source.open()
        try:
            await target.open()
            try:
                progress = _Progress()
                copied = await copy_store(source, target, force=args.force, progress=progress)
            finally:
                await target.close()
        finally:
            await source.close()
        print(file=sys.stderr)
        print(f"copied {sum(copied.counts.values())} rows in {copied.seconds:.1f} s")
        _counts(copied.counts)
        return 0

    try:
        return asyncio.run(run())
    except PersonaMCPError as exc:
        print(f"\npersona-mcp migrate-store: {exc.message}", file=sys.stderr)
        return 2


class _Progress:
    """One self-overwriting line on stderr: stage, done/total, rate."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        final = total is not None and done >= total
        if not final and now - self._last < 0.2 and done:
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        of = f"/{total}" if total is not None else ""
        print(f"\r{stage}: {done}{of} ({rate:.0f}/s)\x1b[K", end="", file=sys.stderr, flush=True)


def run_state_command(args: argparse.Namespace, settings: Settings) -> int:
    from persona_mcp.app import App

    path = Path(args.file).expanduser().resolve()

    async def run() -> int:
        app = App(settings)
        await app.start(background=False)
        progress = _Progress()
        try:
            if args.command == "export":
                saved = await app.state.save(args.user, path, progress)
                rows = sum(saved.counts.values())
                print(file=sys.stderr)
                print(
                    f"saved {rows} rows of {args.user} to {saved.path} ({saved.bytes} bytes) "
                    f"in {time.perf_counter() - progress.started:.1f} s"
                )
                _counts(saved.counts)
            else:
                mode: LoadMode = "replace" if args.replace else "merge"
                loaded = await app.state.load(args.user, path, mode, progress)
                rows = sum(loaded.counts.values())
                print(file=sys.stderr)
                print(
                    f"loaded {rows} rows into {args.user} ({mode}; {loaded.reembedded} vectors "
                    f"re-embedded) in {time.perf_counter() - progress.started:.1f} s"
                )
                _counts(loaded.counts)
        finally:
            await app.close()
        return 0

    try:
        return asyncio.run(run())
    except PersonaMCPError as exc:
        print(f"\npersona-mcp {args.command}: {exc.message}", file=sys.stderr)
        for err in (exc.data or {}).get("errors", [])[1:]:
            print(f"  {err['field']}: {err['message']}", file=sys.stderr)
        return 2


def _counts(counts: dict[str, int]) -> None:
    print("  " + ", ".join(f"{name} {n}" for name, n in counts.items() if n))
