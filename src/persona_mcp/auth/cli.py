"""`persona-mcp token create|list|revoke`: token administration against the database.

Runs beside a live server (SQLite WAL): a token created or revoked here counts from the
server's next connection on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from persona_mcp.auth.tokens import TokenService
from persona_mcp.clock import SystemClock
from persona_mcp.config import Settings
from persona_mcp.errors import PersonaMCPError
from persona_mcp.store.backends import open_store


def add_token_commands(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    token = commands.add_parser("token", help="create, list and revoke bearer tokens")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create a token for a user; prints the secret once (last line)"
    )
    common(create)
    create.add_argument("--user", required=True, help="the user the token acts for")
    create.add_argument("--admin", action="store_true", help="grant admin scope")
    create.add_argument("--label", default="", help="a note to recognize the token by")
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    common(listing)
    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    common(revoke)
    revoke.add_argument("id", help="the token id (from `persona-mcp token list`)")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_token_command(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        db = open_store(settings, readers=1)
        await db.open()
        tokens = TokenService(db, SystemClock())
        try:
            if args.token_command == "create":
                row, secret = await tokens.create(args.user, admin=args.admin, label=args.label)
                print(f"token {row.id} for user {row.user_id} ({', '.join(row.scopes)})")
                print("the secret is shown only now; keep it safe:")
                print(secret)
            elif args.token_command == "list":
                rows = await tokens.list()
                print(
                    "\t".join(["ID", "USER", "LABEL", "SCOPES", "CREATED", "LAST_USED", "STATUS"])
                )
                for r in rows:
                    status = "active" if r.revoked_at is None else f"revoked {_when(r.revoked_at)}"
                    fields = [r.id, r.user_id, r.label or "-", ",".join(r.scopes)]
                    fields += [_when(r.created_at), _when(r.last_used_at), status]
                    print("\t".join(fields))
            else:
                await tokens.revoke(args.id)
                print(f"revoked {args.id}")
        except PersonaMCPError as exc:
            print(f"persona-mcp token {args.token_command}: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await db.close()
        return 0

    return asyncio.run(run())
