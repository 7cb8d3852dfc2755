"""The store behind its interface: concurrent writers on either backend, PostgreSQL's
statement translation, and its errors translated to the store's own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from persona_mcp.app import App
from persona_mcp.auth.principal import LOCAL_USER
from persona_mcp.errors import RateLimited, StorageUnavailable
from persona_mcp.memory.service import MemoryInput
from persona_mcp.store.postgres.dialect import Untranslatable, translate
from tests.conftest import make_settings, store_connection


async def _instances(tmp_path: Path, backend: str, **overrides: object) -> list[App]:
    """Two instances over one PostgreSQL database, or the one SQLite allows a file."""
    first = make_settings(tmp_path / "a", **overrides)
    settings = [first]
    if backend == "postgresql":
        settings.append(make_settings(tmp_path / "b", database_url=first.database_url, **overrides))
    apps = []
    for s in settings:
        app = App(s)
        await app.start(background=False)
        apps.append(app)
    return apps


async def test_two_hundred_concurrent_stores_from_each_of_two_writers_leave_four_hundred(
    tmp_path: Path, backend: str
) -> None:
    apps = await _instances(tmp_path, backend)
    try:
        writers = [apps[i % len(apps)] for i in range(2)]
        persona = writers[0].personas.visible(LOCAL_USER)[0]

        async def store(app: App, n: int) -> None:
            await app.memory.store(LOCAL_USER, persona, [MemoryInput(f"memory {n} of many")])

        await asyncio.gather(
            *(store(app, w * 1000 + i) for w, app in enumerate(writers) for i in range(200))
        )
        for app in apps:
            assert await app.memory.count(LOCAL_USER, persona.id) == 400
    finally:
        for app in apps:
            await app.close()
    with store_connection(apps[0].settings) as conn:
        rids = [r[0] for r in conn.execute("SELECT rid FROM memories ORDER BY rid")]
    assert len(rids) == len(set(rids)) == 400


async def test_a_per_user_cap_checked_in_the_write_holds_under_concurrent_writers(
    tmp_path: Path, backend: str
) -> None:
    apps = await _instances(tmp_path, backend, max_memories_per_user=300)
    try:
        persona = apps[0].personas.visible(LOCAL_USER)[0]

        async def store(app: App, n: int) -> bool:
            try:
                await app.memory.store(LOCAL_USER, persona, [MemoryInput(f"memory {n}")])
            except RateLimited:
                return False
            return True

        stored = await asyncio.gather(*(store(apps[i % len(apps)], i) for i in range(400)))
        assert sum(stored) == 300
        assert await apps[-1].memory.count(LOCAL_USER, persona.id) == 300
    finally:
        for app in apps:
            await app.close()


@pytest.mark.sqlite_only("runs once: it needs no database server, it names one not there")
async def test_an_unreachable_postgresql_server_is_storage_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "no-server"
    missing.mkdir()
    settings = make_settings(tmp_path / "data", database_url=f"postgresql:///x?host={missing}")
    app = App(settings)
    with pytest.raises(StorageUnavailable) as failed:
        await app.start(background=False)
    assert "unreachable" in failed.value.message


@pytest.mark.sqlite_only("runs once: the translation itself, no database")
def test_sqlite_statements_become_postgresql_ones_with_literals_untouched() -> None:
    s = translate("SELECT * FROM t WHERE a = ? AND b LIKE '50% ?' AND c IN (?, ?)")
    assert s.sql == "SELECT * FROM t WHERE a = $1 AND b LIKE '50% ?' AND c IN ($2, $3)"
    named = translate("UPDATE t SET x = max(:floor, y) WHERE x > :floor AND z::int = :z")
    assert named.sql == "UPDATE t SET x = GREATEST($1, y) WHERE x > $1 AND z::int = $2"
    assert named.args({"floor": 0.1, "z": 3, "unused": 9}) == [0.1, 3]
    assert translate("SELECT max(a), min(b, max(c, d)) FROM t").sql == (
        "SELECT max(a), LEAST(b, GREATEST(c, d)) FROM t"
    )
    ignored = translate("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING rid")
    assert ignored.sql == "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING rid"
    assert translate("SELECT 1 WHERE a IS NOT ? AND b IS ?").sql == (
        "SELECT 1 WHERE a IS DISTINCT FROM $1 AND b IS NOT DISTINCT FROM $2"
    )
    assert (
        translate("SELECT a FROM t LIMIT -1 OFFSET ?").sql == "SELECT a FROM t LIMIT ALL OFFSET $1"
    )
    assert translate("PRAGMA defer_foreign_keys = ON").sql == "SET CONSTRAINTS ALL DEFERRED"
    for untranslatable in (
        "UPDATE OR IGNORE t SET a = ?",
        "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?",
        "SELECT value FROM json_each(?)",
        "PRAGMA table_info(t)",
    ):
        with pytest.raises(Untranslatable):
            translate(untranslatable)
