"""A real PostgreSQL for the tests: pgserver's wheel (PostgreSQL 16.2 with pgvector 0.6.2),
started once per session on a Unix socket in a temporary folder, with a template
database migrated once so that each test's fresh database is a quick copy of it."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from persona_mcp.store.postgres.migrations import apply_migrations

TEMPLATE = "persona_template"


def with_database(url: str, name: str) -> str:
    """The same server's URI for another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class Server:
    def __init__(self, handle: Any, url: str) -> None:
        self._handle = handle
        self.url = url  # the `postgres` database
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    def create_database(self) -> str:
        """A fresh, migrated, empty database; returns its URI."""
        with self._lock:
            name = f"test_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return with_database(self.url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self._handle.cleanup()


def start(folder: Path, timeout: float) -> Server:
    """Start the server (bounded by `timeout` seconds) and migrate the template."""
    import pgserver

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(pgserver.get_server, folder / "pgdata", cleanup_mode="delete")
        try:
            handle = future.result(timeout=timeout)
        except FutureTimeout as exc:
            raise RuntimeError(f"PostgreSQL did not start within {timeout:.0f} s") from exc
    url = handle.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")
    with psycopg.connect(with_database(url, TEMPLATE), autocommit=True) as conn:
        apply_migrations(conn)
    return Server(handle, url)
