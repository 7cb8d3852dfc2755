"""`persona-mcp migrate-store`: a whole store from SQLite to PostgreSQL and back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona_mcp.app import App
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.portability.migrate import open_named
from persona_mcp.store import transfer
from persona_mcp.store.api import Database
from tests import pgsupport
from tests.conftest import make_settings, serve

EXE = Path(sys.executable).parent / "persona-mcp"


@pytest.fixture
def pg_url(pg_server: pgsupport.Server) -> Iterator[str]:
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


def migrate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    return subprocess.run(
        [str(EXE), "migrate-store", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def counts(name: str) -> dict[str, int]:
    db: Database = open_named(name)
    await db.open()
    try:
        return await db.read(
            lambda conn: {t: transfer.count(conn, t) for t, _ in transfer.tables()}
        )
    finally:
        await db.close()


async def test_a_store_moves_to_postgresql_and_back_with_its_embeddings(
    tmp_path: Path, pg_url: str, minilm: MiniLMEmbedder
) -> None:
    source = make_settings(tmp_path / "sqlite", embedding_provider="minilm")
    async with serve(source, App(source, embedder=minilm)) as server, server.client() as c:
        await c.call("persona.create", {"name": "Traveller"})
        for text in ("My sister lives in Lisbon.", "I am allergic to peanuts.", "I play cello."):
            await c.call("memory.store", {"content": text, "persona_id": "Traveller"})
        await c.call(
            "persona.chat", {"message": "Hello there, Traveller!", "persona_id": "Traveller"}
        )
    sqlite_store = f"sqlite:{source.db_path}"
    before = await counts(sqlite_store)

    moved = migrate(tmp_path, "--from", sqlite_store, "--to", pg_url)
    assert moved.returncode == 0, moved.stderr
    assert "memories: 3/3" in moved.stderr.replace("\x1b[K", "").replace("\r", "\n")
    assert await counts(pg_url) == before

    target = make_settings(tmp_path / "pg", embedding_provider="minilm", database_url=pg_url)
    async with serve(target, App(target, embedder=minilm)) as server, server.client() as c:
        found = await c.call(
            "memory.search", {"query": "which relative lives abroad?", "persona_id": "Traveller"}
        )
        assert found["semantic"] is True  # the vectors came along: nothing to embed again
        assert found["results"][0]["memory"]["content"] == "My sister lives in Lisbon."
        stats = await c.call("memory.stats", {"persona_id": "Traveller"})
        assert stats["index"]["embedded"] == stats["total"]

    refused = migrate(tmp_path, "--from", sqlite_store, "--to", pg_url)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert migrate(tmp_path, "--from", sqlite_store, "--to", pg_url, "--force").returncode == 0
    assert await counts(pg_url) == before

    back = f"sqlite:{tmp_path / 'back' / 'persona_memory.db'}"
    returned = migrate(tmp_path, "--from", pg_url, "--to", back)
    assert returned.returncode == 0, returned.stderr
    assert await counts(back) == before


def test_a_store_named_neither_sqlite_nor_postgresql_is_refused(tmp_path: Path) -> None:
    refused = migrate(tmp_path, "--from", "mysql://x", "--to", f"sqlite:{tmp_path / 'x.db'}")
    assert refused.returncode == 2 and "sqlite:PATH or postgresql://" in refused.stderr
