"""Bearer tokens: create (the secret is shown once), list, revoke, and authenticate.

Only the SHA-256 of a secret is stored: secrets are 256 random bits, so a plain hash
cannot be reversed by guessing, and lookup by hash needs no per-row comparison. Every
new connection (and every stateless HTTP request) is checked against the database, so a
token revoked with `persona-mcp token revoke`, even from another process, is refused on
the next connection.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from persona_mcp.auth.principal import LOCAL, Principal
from persona_mcp.clock import Clock
from persona_mcp.errors import InvalidParams, NotFound, Unauthenticated
from persona_mcp.store import tokens as repo
from persona_mcp.store.api import Database
from persona_mcp.store.config import SERVER
from persona_mcp.store.tokens import TokenRow

PREFIX = "pmcp_"
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOUCH_EVERY_SECONDS = 60.0  # last_used_at is written at most this often per token


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._touched: dict[str, float] = {}

    async def create(
        self, user_id: str, *, admin: bool = False, label: str = ""
    ) -> tuple[TokenRow, str]:
        """A new token for `user_id`; returns its row and the secret (shown only now)."""
        if not USER_NAME.match(user_id) or user_id == SERVER:
            raise InvalidParams.field(
                "user",
                "use 1-64 letters, digits or _ . @ - (starting with a letter or digit), "
                f"not {SERVER!r}",
            )
        secret = PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(
            id="tok_" + secrets.token_hex(6),
            user_id=user_id,
            label=label,
            scopes=("user", "admin") if admin else ("user",),
            created_at=self._clock.now(),
            last_used_at=None,
            revoked_at=None,
        )
        await self._db.write(lambda conn: repo.insert(conn, row, digest(secret)))
        return row, secret

    async def list(self) -> list[TokenRow]:
        return await self._db.read(repo.all_tokens)

    async def revoke(self, token_id: str) -> None:
        now = self._clock.now()
        if not await self._db.write(lambda conn: repo.revoke(conn, token_id, now)):
            raise NotFound(f"No active token {token_id!r}", {"token_id": token_id})

    async def authenticate(self, secret: str) -> Principal:
        """The principal of a valid secret; Unauthenticated for an unknown or revoked one."""
        hashed = digest(secret.strip())
        row = await self._db.read(lambda conn: repo.by_secret(conn, hashed))
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("Invalid or revoked token")
        now = self._clock.now()
        if now - self._touched.get(row.id, float("-inf")) >= TOUCH_EVERY_SECONDS:
            self._touched[row.id] = now
            await self._db.write(lambda conn: repo.touch(conn, row.id, now))
        return Principal(row.user_id, frozenset(row.scopes), row.id)

    async def resolve(self, secret: str | None, mode: str) -> Principal:
        """The caller behind a credential. A token given is always checked (a wrong one is
        never downgraded to anonymous); without one, AUTH_MODE=off means the local admin."""
        if secret:
            return await self.authenticate(secret)
        if mode == "off":
            return LOCAL
        raise Unauthenticated("A bearer token is required (AUTH_MODE=required)")
