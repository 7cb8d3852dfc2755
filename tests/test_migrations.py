"""Schema migrations of existing databases: a database written before m011_memory_split
(embeddings and scores in the memory rows) opens migrated and answers as before."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np

from persona_mcp.app import App
from persona_mcp.auth import LOCAL_USER
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.memory import retrieval
from persona_mcp.store.db import connect
from persona_mcp.store.migrations import MIGRATIONS
from tests.conftest import make_settings, serve

PERSONA = "0b7c1d7e-0000-4000-8000-000000000001"
LIVE = {
    "m-cello": ("The user plays the cello in a quartet on Sundays.", 0.6, 3, 0),
    "m-dog": ("The user's dog is called Biscuit and loves the beach.", 0.5, 0, 1),
    "m-tea": ("The user drinks green tea every morning.", 0.3, 1, 0),
}
ARCHIVED = ("m-sister", "The user's sister Maya lives in Lisbon and teaches piano.", 0.2)
ENTITY = "ent_0000000000000001"


def database_as_of(path: Path, last: str) -> sqlite3.Connection:
    """A database with the migrations up to `last` applied, recorded as they would be."""
    names = [name for name, _ in MIGRATIONS]
    conn = connect(path)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for name, fn in MIGRATIONS[: names.index(last) + 1]:
        conn.execute("BEGIN IMMEDIATE")
        fn(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
        conn.execute("COMMIT")
    return conn


def blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


async def write_m010_data(path: Path, minilm: MiniLMEmbedder) -> float:
    """Memories with embeddings, scores, a version and graph edges, and one memory pruned
    into the archive with its embedding and archived edge, in the m010 schema."""
    now = 1_750_000_000.0
    texts = [text for text, *_ in LIVE.values()] + [ARCHIVED[1]]
    vectors = await minilm.embed([retrieval.embedding_text(t, "") for t in texts])
    conn = database_as_of(path, "m010_visual")
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO personas (id, user_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (PERSONA, LOCAL_USER, "Old Friend", now, now),
    )
    for (memory_id, (text, importance, accesses, pinned)), vector in zip(
        LIVE.items(), vectors, strict=False
    ):
        conn.execute(
            """INSERT INTO memories (id, persona_id, user_id, content, memory_type, importance,
                   base_importance, emotional_valence, access_count, last_accessed_at,
                   created_at, occurred_at, source, metadata, context, embedding,
                   embedding_model, decayed_at, pinned)
               VALUES (?, ?, ?, ?, 'fact', ?, ?, 0.1, ?, ?, ?, ?, 'api', ?, '', ?, ?, ?, ?)""",
            (memory_id, PERSONA, LOCAL_USER, text, importance, importance + 0.1, accesses,
             now if accesses else None, now, now, json.dumps({"from": memory_id}),
             blob(vector), minilm.model, now - 60, pinned),
        )  # fmt: skip
    conn.execute(
        """INSERT INTO memory_versions (memory_id, version, user_id, content, importance,
               metadata, changed_at, reason) VALUES ('m-sister', 1, ?, 'The user has a sister.',
               0.4, '{}', ?, 'edit')""",
        (LOCAL_USER, now),
    )
    conn.execute(
        """INSERT INTO graph_entities (id, user_id, persona_id, name, kind, created_at,
               updated_at) VALUES (?, ?, ?, 'Maya', 'person', ?, ?)""",
        (ENTITY, LOCAL_USER, PERSONA, now, now),
    )
    conn.execute(
        """INSERT INTO graph_edges (user_id, persona_id, edge_type, src_memory, dst_entity,
               weight, created_at) VALUES (?, ?, 'mentions', 'm-cello', ?, 1.0, ?)""",
        (LOCAL_USER, PERSONA, ENTITY, now),
    )
    conn.execute(
        """INSERT INTO prune_runs (id, user_id, persona_id, strategy, trigger, status,
               started_at, finished_at, pruned_count)
           VALUES ('run-1', ?, ?, 'importance_only', 'manual', 'complete', ?, ?, 1)""",
        (LOCAL_USER, PERSONA, now, now),
    )
    memory_id, text, importance = ARCHIVED
    conn.execute(
        """INSERT INTO memory_archive (id, prune_run_id, archived_at, prune_score, reason,
               persona_id, user_id, content, memory_type, importance, base_importance,
               emotional_valence, access_count, last_accessed_at, created_at, occurred_at,
               source, metadata, importance_breakdown, context, embedding, embedding_model,
               decayed_at, pinned, superseded_by)
           VALUES (?, 'run-1', ?, 0.2, 'low', ?, ?, ?, 'fact', ?, 0.4, 0.2, 2, ?, ?, ?, 'api',
               '{"k": 1}', NULL, '', ?, ?, ?, 0, NULL)""",
        (memory_id, now, PERSONA, LOCAL_USER, text, importance, now, now, now,
         blob(vectors[3]), minilm.model, now - 30),
    )  # fmt: skip
    conn.execute(
        """INSERT INTO graph_edge_archive (user_id, persona_id, edge_type, src_memory,
               dst_entity, weight, created_at)
           VALUES (?, ?, 'mentions', 'm-sister', ?, 1.0, ?)""",
        (LOCAL_USER, PERSONA, ENTITY, now),
    )
    conn.execute("COMMIT")
    conn.close()
    return now


async def test_a_database_from_before_the_memory_split_reads_searches_and_restores(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    settings = make_settings(tmp_path / "data", embedding_provider="minilm")
    settings.data_dir.mkdir(parents=True)
    now = await write_m010_data(settings.db_path, minilm)

    app = App(settings, embedder=minilm)
    async with serve(settings, app) as server, server.client() as client:
        for memory_id, (text, importance, accesses, pinned) in LIVE.items():
            memory = (await client.call("memory.get", {"memory_id": memory_id}))["memory"]
            assert memory["content"] == text
            assert memory["importance"] == importance
            assert memory["access_count"] == accesses
            assert memory["pinned"] is bool(pinned)
            assert memory["metadata"] == {"from": memory_id}
        stats = await client.call("memory.stats", {"persona_id": PERSONA})
        assert stats["total"] == 3
        assert stats["index"]["embedded"] == 3  # the vectors moved over
        found = await client.call(
            "memory.search",
            {"query": "what instrument does the user play", "persona_id": PERSONA},
        )
        assert found["semantic"] is True
        assert found["results"][0]["memory"]["id"] == "m-cello"
        assert found["results"][0]["why"]["semantic"] > 0
        hidden = await client.call(
            "memory.search", {"query": "sister Maya Lisbon piano", "persona_id": PERSONA}
        )
        assert "m-sister" not in [r["memory"]["id"] for r in hidden["results"]]

        restored = await client.call("memory.restore", {"prune_run_id": "run-1"})
        assert restored["restored_ids"] == ["m-sister"]
        back = (await client.call("memory.get", {"memory_id": "m-sister"}))["memory"]
        assert back["content"] == ARCHIVED[1]
        assert back["importance"] == ARCHIVED[2]
        assert back["access_count"] == 2
        assert back["metadata"] == {"k": 1}
        history = await client.call("memory.history", {"memory_id": "m-sister"})
        assert [v["content"] for v in history["versions"]] == ["The user has a sister."]
        neighbours = await client.call("graph.neighbors", {"node_id": "m-sister"})
        assert [n["node"]["id"] for n in neighbours["neighbors"]] == [ENTITY]
        again = await client.call(
            "memory.search",
            {"query": "where does the user's sister live", "persona_id": PERSONA},
        )
        assert again["results"][0]["memory"]["id"] == "m-sister"
        assert again["results"][0]["why"]["semantic"] > 0  # its vector came back with it

    conn = sqlite3.connect(settings.db_path)
    try:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(memories)")}
        assert not columns & {"embedding", "embedding_model", "importance", "access_count"}
        vectors = dict(conn.execute("SELECT memory_id, model FROM memory_vectors"))
        assert vectors == {m: minilm.model for m in [*LIVE, "m-sister"]}
        decayed = dict(conn.execute("SELECT memory_id, decayed_at FROM memory_scores"))
        assert decayed == {"m-cello": now - 60, "m-dog": now - 60, "m-tea": now - 60,
                           "m-sister": now - 30}  # fmt: skip
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
