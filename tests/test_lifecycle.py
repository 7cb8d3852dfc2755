"""Memory lifecycle through the WebSocket door: decay, pruning, restore, automatic pruning,
session cleanup, and a prune killed half-way."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.clock import ManualClock
from tests.conftest import RunningServer, free_port, make_settings, serve, store_env


async def fresh_persona(client: PersonaClient, name: str) -> str:
    return str((await client.call("persona.create", {"name": name}))["persona"]["id"])


async def store_many(
    client: PersonaClient, persona: str, n: int, importance: float | None = 0.7, **extra: Any
) -> list[dict[str, Any]]:
    items = [
        {"content": f"note {i} about the harbour and the {i % 5} boats", **extra}
        | ({"importance": importance} if importance is not None else {})
        for i in range(n)
    ]
    out = []
    for start in range(0, n, 1000):
        result = await client.call(
            "memory.store_batch", {"persona_id": persona, "memories": items[start : start + 1000]}
        )
        out.extend(result["memories"])
    return out


async def importances(client: PersonaClient, ids: list[str]) -> list[float]:
    return [
        (await client.call("memory.get", {"memory_id": i}))["memory"]["importance"] for i in ids
    ]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("linear", lambda i, a: i - 0.002 * 48),
        ("exponential", lambda i, a: i * math.exp(-0.002 * 48)),
        ("logarithmic", lambda i, a: i - 0.002 * math.log(49)),
        ("step", lambda i, a: i - 0.002 * 24 * 2),
        ("access_based", lambda i, a: i * math.exp(-0.002 * 48 / (1 + 0.5 * a))),
    ],
)
async def test_decay_force_lowers_importance_by_the_chosen_mode(
    client: PersonaClient, mode: str, expected: Any
) -> None:
    persona = await fresh_persona(client, f"decay-{mode}")
    stored = await store_many(client, persona, 3)
    for _ in range(2):  # two accesses each, to show access_based slowing down
        await client.call("memory.search", {"query": "harbour boats", "persona_id": persona})
    result = await client.call(
        "memory.decay_force", {"persona_id": persona, "mode": mode, "rate": 0.002, "hours": 48}
    )
    assert result["decayed"] == 3
    for value in await importances(client, [m["id"] for m in stored]):
        assert value == pytest.approx(expected(0.7, 2), abs=1e-6)


async def test_decay_never_takes_importance_below_the_floor(client: PersonaClient) -> None:
    config = await client.call("memory.set_decay_config", {"min_importance": 0.25})
    assert config["min_importance"] == 0.25
    persona = await fresh_persona(client, "floor")
    stored = await store_many(client, persona, 5)
    low = (await client.call(
        "memory.store", {"persona_id": persona, "content": "faint", "importance": 0.1}
    ))["memory"]  # fmt: skip
    await client.call("memory.decay_force", {"mode": "linear", "rate": 0.5, "hours": 1000})
    assert await importances(client, [m["id"] for m in stored]) == [0.25] * 5
    # Already below the floor: left as it was, never raised.
    assert await importances(client, [low["id"]]) == [0.1]


async def test_decay_config_is_validated_and_persisted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    async with serve(settings) as server, server.client() as c:
        with pytest.raises(RpcError) as bad:
            await c.call("memory.set_decay_config", {"mode": "sideways"})
        assert bad.value.code == -32602
        with pytest.raises(RpcError):
            await c.call("memory.set_decay_config", {"rate": -1})
        await c.call("memory.set_decay_config", {"mode": "step", "rate": 0.01})
        changed = await c.call("memory.set_decay_config", {"interval_seconds": 120})
        assert (changed["mode"], changed["rate"], changed["interval_seconds"]) == (
            "step",
            0.01,
            120,
        )
    async with serve(settings) as server, server.client() as c:
        stats = await c.call("memory.decay_stats")
        assert (stats["mode"], stats["rate"], stats["interval_seconds"]) == ("step", 0.01, 120)


async def test_decay_start_stats_and_stop_control_a_real_background_job(
    client: PersonaClient,
) -> None:
    persona = await fresh_persona(client, "aging")
    await store_many(client, persona, 3)
    before = await client.call("memory.decay_stats")
    assert before["running"] is False  # background processing is off in tests
    started = await client.call(
        "memory.decay_start", {"interval_seconds": 0.1, "mode": "exponential"}
    )
    assert started["running"] is True
    assert started["next_run_at"] is not None
    stats = started
    for _ in range(100):  # bounded wait for two passes
        stats = await client.call("memory.decay_stats")
        if stats["runs"] >= before["runs"] + 2:
            break
        await asyncio.sleep(0.05)
    assert stats["runs"] >= before["runs"] + 2
    assert stats["last_run_at"] is not None
    stopped = await client.call("memory.decay_stop")
    assert stopped["running"] is False
    assert stopped["enabled"] is False
    runs = stopped["runs"]
    await asyncio.sleep(0.3)
    assert (await client.call("memory.decay_stats"))["runs"] == runs


async def test_a_dry_run_prune_deletes_nothing(client: PersonaClient) -> None:
    persona = await fresh_persona(client, "dry")
    await store_many(client, persona, 30, importance=0.3)
    preview = await client.call("memory.prune", {"persona_id": persona, "dry_run": True})
    assert preview["dry_run"] is True
    assert preview["pruned_count"] == 20
    assert preview["prune_run_id"] is None
    assert (await client.call("memory.stats", {"persona_id": persona}))["total"] == 30
    recommended = await client.call(
        "memory.prune_recommendations", {"persona_id": persona, "limit": 5}
    )
    assert len(recommended["candidates"]) == 5
    assert all(c["reason"] for c in recommended["candidates"])


async def test_a_prune_keeps_protected_memories_and_restore_brings_all_back_exactly(
    mclient: PersonaClient,
) -> None:
    persona = await fresh_persona(mclient, "prune")
    plain = await store_many(mclient, persona, 30, importance=0.55, metadata={"k": "v"})
    vital = await store_many(mclient, persona, 4, importance=0.85)
    zebras = [
        (await mclient.call("memory.store", {
            "persona_id": persona, "content": f"the zebra number {i} at the zoo",
            "importance": 0.5,
        }))["memory"]
        for i in range(3)
    ]  # fmt: skip
    for _ in range(8):
        await mclient.call(
            "memory.search", {"query": "zebra zoo", "persona_id": persona, "limit": 3}
        )
    pruned = await mclient.call("memory.prune", {"persona_id": persona, "target_count": 0})
    assert pruned["remaining"] == 10
    assert pruned["pruned_count"] == 37 - 10
    kept = set(
        r["memory"]["id"]
        for r in (await mclient.call(
            "memory.search", {"query": "harbour zebra note", "persona_id": persona, "limit": 100}
        ))["results"]
    )  # fmt: skip
    assert {m["id"] for m in vital + zebras} <= kept
    gone = set(pruned["pruned_ids"])
    assert gone <= {m["id"] for m in plain}
    some = next(iter(gone))
    with pytest.raises(RpcError):
        await mclient.call("memory.get", {"memory_id": some})

    restored = await mclient.call("memory.restore", {"prune_run_id": pruned["prune_run_id"]})
    assert set(restored["restored_ids"]) == gone
    by_id = {m["id"]: m for m in plain}
    for memory_id in gone:
        back = (await mclient.call("memory.get", {"memory_id": memory_id}))["memory"]
        original = by_id[memory_id]
        for field in ("content", "importance", "metadata", "memory_type", "occurred_at"):
            assert back[field] == original[field], field
    found = await mclient.call(
        "memory.search", {"query": by_id[some]["content"], "persona_id": persona}
    )
    # Near the top, by meaning again: its near-identical restored neighbours ("note 12
    # about the harbour and the 2 boats") lend each other weight and may edge ahead.
    assert some in [r["memory"]["id"] for r in found["results"][:3]]
    assert found["semantic"] is True
    stats = await mclient.call("memory.prune_stats")
    assert stats["restored_total"] == len(gone)
    assert stats["archived"] == 0


async def test_a_live_memory_is_found_by_its_words_among_many_archived_ones_like_it(
    client: PersonaClient,
) -> None:
    await client.call("memory.set_pruning_config", {"auto_prune": False})
    persona = await fresh_persona(client, "Tidewatcher")
    await store_many(client, persona, 12, importance=0.9)
    old = []
    for start in (0, 1000):  # more than a search reads from the index at first
        old += (
            await client.call(
                "memory.store_batch",
                {"persona_id": persona, "memories": [
                    {"content": f"the tide table for day {i}", "importance": 0.1}
                    for i in range(start, start + 1000)
                ]},
            )
        )["memories"]  # fmt: skip
    kept = await client.call(
        "memory.store",
        {"persona_id": persona, "content": "I keep the tide table by the door",
         "importance": 0.9},
    )  # fmt: skip
    pruned = await client.call(
        "memory.prune", {"persona_id": persona, "strategy": "importance_only", "target_count": 13}
    )
    assert set(pruned["pruned_ids"]) == {m["id"] for m in old}
    found = await client.call(
        "memory.search", {"persona_id": persona, "query": "tide table", "limit": 5}
    )
    assert [r["memory"]["id"] for r in found["results"]][:1] == [kept["memory"]["id"]]
    stats = await client.call("memory.stats", {"persona_id": persona})
    assert stats["total"] == 13


async def test_restore_needs_exactly_one_selector_and_unknown_runs_are_not_found(
    client: PersonaClient,
) -> None:
    for params in ({}, {"memory_ids": ["a"], "prune_run_id": "b"}):
        with pytest.raises(RpcError) as bad:
            await client.call("memory.restore", params)
        assert bad.value.code == -32602
    with pytest.raises(RpcError) as missing:
        await client.call("memory.restore", {"prune_run_id": "no-such-run"})
    assert missing.value.code == -32001


async def test_storing_past_the_limit_prunes_back_on_its_own(
    server: RunningServer, client: PersonaClient
) -> None:
    persona = await fresh_persona(client, "auto")
    vital = await store_many(client, persona, 20, importance=0.9)
    await store_many(client, persona, 1060, importance=None)
    await server.app.memory.drain()  # the automatic prune runs after the store returned
    stats = await client.call("memory.stats", {"persona_id": persona})
    assert 900 <= stats["total"] < 1000
    for memory in vital:
        assert (await client.call("memory.get", {"memory_id": memory["id"]}))["memory"]
    prune_stats = await client.call("memory.prune_stats")
    assert prune_stats["pruned_by_trigger"]["automatic"] == 1080 - stats["total"]


async def test_idle_sessions_are_closed_by_the_cleanup_job(app_factory: Any) -> None:
    clock = ManualClock()
    app = await app_factory(clock=clock)
    idle = await app.sessions.open("default", "websocket")
    clock.advance(23 * 3600)
    busy = await app.sessions.open("default", "websocket")
    assert await app.session_cleanup.run_once() == 0
    clock.advance(2 * 3600)
    assert await app.session_cleanup.run_once() == 1
    assert idle.id not in app.sessions.open_sessions
    assert busy.id in app.sessions.open_sessions
    closed = await app.db.read(
        lambda conn: conn.execute(
            "SELECT closed_at FROM sessions WHERE id = ?", (idle.id,)
        ).fetchone()[0]
    )
    assert closed == clock.now()


@pytest.mark.sqlite_only("reads the SQLite file the killed process left")
async def test_a_server_killed_during_a_prune_loses_no_acknowledged_memory(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        **store_env(data),
        "EMBEDDING_PROVIDER": "none",
        "BACKGROUND_PROCESSING": "false",
    }
    exe = str(Path(sys.executable).parent / "persona-mcp")
    proc = await asyncio.create_subprocess_exec(
        exe, "serve", "--port", str(port), "--llm", "offline",
        "--env-file", str(tmp_path / "none.env"), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    acknowledged: list[str] = []
    try:
        client = PersonaClient(f"ws://127.0.0.1:{port}/mcp", timeout=60)
        for _ in range(200):  # bounded wait for the server
            try:
                await client.connect()
                break
            except OSError:
                await asyncio.sleep(0.05)
        persona = await fresh_persona(client, "doomed")
        # One prune run only (2000 memories would also trigger the automatic one), cut
        # into one-memory batches so that the kill lands between two of them.
        await client.call("memory.set_pruning_config", {"auto_prune": False, "batch_size": 1})
        acknowledged = [m["id"] for m in await store_many(client, persona, 2000, importance=0.5)]
        prune = asyncio.create_task(
            client.call("memory.prune", {"persona_id": persona, "target_count": 10})
        )
        db = sqlite3.connect(f"file:{data / 'persona_memory.db'}?mode=ro", uri=True)
        for _ in range(400):  # kill as soon as the prune has archived something
            row = db.execute("SELECT max(pruned_count) FROM prune_runs").fetchone()
            if row and row[0]:
                break
            await asyncio.sleep(0.01)
        db.close()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        with pytest.raises((ConnectionError, RpcError, asyncio.TimeoutError)):
            await prune
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    db = sqlite3.connect(data / "persona_memory.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    live = {r[0] for r in db.execute("SELECT memory_id FROM memory_scores")}
    archived = {r[0] for r in db.execute("SELECT id FROM memory_archive")}
    rows = {r[0] for r in db.execute("SELECT id FROM memories")}  # archived in place
    db.close()
    assert rows == live | archived
    assert archived, "the prune should have been cut short after archiving some memories"
    assert live | archived == set(acknowledged)
    assert not live & archived

    settings = make_settings(data)
    async with serve(settings) as server, server.client() as c:
        stats = await c.call("memory.prune_stats")
        assert stats["last_run"]["status"] == "interrupted"
        restored = await c.call("memory.restore", {"prune_run_id": stats["last_run"]["id"]})
        assert set(restored["restored_ids"]) == archived
        assert (await c.call("memory.stats", {"persona_id": "doomed"}))["total"] == 2000


@pytest.mark.parametrize("estimate", ["sampled", "too low"])
async def test_a_large_prune_takes_exactly_the_lowest_scores_however_the_cut_is_estimated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, estimate: str
) -> None:
    # Enough prunable memories that the cut's score is estimated from a sample; with the
    # estimate too low the rest are found after it. Many ties: 60 distinct importances.
    from persona_mcp.store import lifecycle

    if estimate == "too low":
        monkeypatch.setattr(lifecycle, "_cap_rank", lambda expected: 1)
    settings = make_settings(tmp_path, max_memories_per_persona=10_000, pruning_threshold=9_000)
    async with serve(settings) as server, server.client() as client:
        await _prune_many(client)


async def _prune_many(client: PersonaClient) -> None:
    persona = await fresh_persona(client, "many")
    stored = []
    for start in range(0, 6000, 1000):
        items = [
            {"content": f"entry {i} on the ledger", "importance": 0.1 + (i * 7919 % 60) / 100}
            for i in range(start, start + 1000)
        ]
        result = await client.call("memory.store_batch", {"persona_id": persona, "memories": items})
        stored.extend(result["memories"])
    prunable = [m for m in stored if m["importance"] < 0.8]
    order = sorted(prunable, key=lambda m: (m["importance"], m["created_at"], m["id"]))
    want = len(stored) - 4800
    params = {"persona_id": persona, "target_count": 4800, "strategy": "importance_only"}
    preview = await client.call("memory.prune", params | {"dry_run": True})
    assert preview["pruned_ids"] == [m["id"] for m in order[:want]]
    pruned = await client.call("memory.prune", params)
    assert set(pruned["pruned_ids"]) == {m["id"] for m in order[:want]}
    assert pruned["remaining"] == 4800
