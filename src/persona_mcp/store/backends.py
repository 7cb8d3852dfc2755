"""Which store a server uses: PostgreSQL when DATABASE_URL names one, else the SQLite
file in the data directory (the default: `make run` needs no database server)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from persona_mcp.config import Settings
from persona_mcp.store.api import Database


def open_store(settings: Settings, readers: int | None = None) -> Database:
    """The (not yet opened) database the settings name."""
    if settings.database_url:
        from persona_mcp.store.postgres.db import PgDatabase  # psycopg only when used

        return PgDatabase(settings.database_url, **({"readers": readers} if readers else {}))
    from persona_mcp.store.db import Database as SQLiteDatabase

    return SQLiteDatabase(settings.db_path, **({"readers": readers} if readers else {}))


def check_storage(settings: Settings) -> None:
    """Check, before the server starts, that the store opens and migrates (and take the
    SQLite file's lock for this process): a bad store is one clear error."""
    if settings.database_url:
        from persona_mcp.store.postgres.db import check_storage as check_pg

        check_pg(settings.database_url)
    else:
        from persona_mcp.store.db import check_storage as check_sqlite

        check_sqlite(settings.db_path)


def storage_name(settings: Settings) -> str:
    """Where the store is, for logs: the SQLite file, or the URI without its password."""
    return redacted_url(settings.database_url) if settings.database_url else str(settings.db_path)


def redacted_url(url: str) -> str:
    """A database URI with its password left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host))
