"""Bearer tokens: rows keyed by the SHA-256 of the secret (the secret itself is never kept)."""

from __future__ import annotations

from dataclasses import dataclass

from persona_mcp.store.api import Connection, Row


@dataclass(frozen=True)
class TokenRow:
    id: str
    user_id: str
    label: str
    scopes: tuple[str, ...]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


def _row(r: Row) -> TokenRow:
    return TokenRow(
        id=r["id"],
        user_id=r["user_id"],
        label=r["label"],
        scopes=tuple(r["scopes"].split()),
        created_at=r["created_at"],
        last_used_at=r["last_used_at"],
        revoked_at=r["revoked_at"],
    )


def insert(conn: Connection, row: TokenRow, secret_sha256: str) -> None:
    conn.execute(
        """INSERT INTO tokens (id, user_id, label, scopes, secret_sha256, created_at)
           VALUES (?, ?, ?, ?, ?, ?)""",
        (row.id, row.user_id, row.label, " ".join(row.scopes), secret_sha256, row.created_at),
    )


def by_secret(conn: Connection, secret_sha256: str) -> TokenRow | None:
    r = conn.execute("SELECT * FROM tokens WHERE secret_sha256 = ?", (secret_sha256,)).fetchone()
    return _row(r) if r else None


def all_tokens(conn: Connection) -> list[TokenRow]:
    return [_row(r) for r in conn.execute("SELECT * FROM tokens ORDER BY created_at, id")]


def revoke(conn: Connection, token_id: str, now: float) -> bool:
    cur = conn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id)
    )
    return cur.rowcount > 0


def touch(conn: Connection, token_id: str, now: float) -> None:
    conn.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
