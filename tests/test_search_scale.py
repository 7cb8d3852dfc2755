"""Search that stays fast as a persona grows, and still ranks as a full scan would."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from persona_mcp.client import PersonaClient
from persona_mcp.memory import retrieval
from persona_mcp.memory.vectors import EXACT_ROWS, Shelf
from tests.conftest import make_settings, serve

DIM = 384


def clustered_vectors(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 200 topics, as embeddings of real memories cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 200, n)] + 0.8 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def full_scan(
    shelf: Shelf, vectors: np.ndarray, lexical: dict[int, float], query: np.ndarray, k: int
) -> list[int]:
    """The reference ranking: every row's exact float32 cosine and fused score."""
    lex = np.zeros(shelf.size)
    for rid, score in lexical.items():
        lex[rid] = score
    scores = retrieval.fused_scores(lex, vectors @ query, shelf.occurred, [])
    return [int(i) for i in np.argsort(-scores)[:k]]


def test_a_large_shelf_ranks_its_best_memories_as_a_full_scan_would() -> None:
    n = 3 * EXACT_ROWS
    vectors = clustered_vectors(n)
    shelf = Shelf(DIM)
    # Rows an hour apart in runs of ten: neighbours lend weight within a run only.
    occurred = [i * 3600.0 + (i // 10) * 86400.0 for i in range(n)]
    shelf.add(list(range(n)), vectors, occurred)
    rng = np.random.default_rng(1)
    top1 = overlap = 0
    queries = 90  # enough that the overlap is an estimate, not one seed's luck
    for _ in range(queries):
        target = int(rng.integers(0, n))
        query = vectors[target] + 0.3 * rng.standard_normal(DIM).astype(np.float32)
        query = (query / np.linalg.norm(query)).astype(np.float32)
        lexical = {target: 1.0, int(rng.integers(0, n)): 0.5}
        ranked, on_shelf = retrieval.rank_shelf(shelf, lexical, query, [], None, 10)
        assert on_shelf == set(lexical)
        got = sorted(ranked, key=lambda rid: -ranked[rid][0])
        expected = full_scan(shelf, vectors, lexical, query, 10)
        top1 += got[0] == expected[0]
        overlap += len(set(got) & set(expected))
    assert top1 == queries
    assert overlap / (10 * queries) >= 0.9


def test_nearest_rows_found_ahead_rank_as_those_found_in_place_even_after_a_removal() -> None:
    n = 2 * EXACT_ROWS
    vectors = clustered_vectors(n, seed=4)
    shelf = Shelf(DIM)
    shelf.add(list(range(n)), vectors, [i * 3600.0 for i in range(n)])
    query = vectors[321]
    lexical = {321: 1.0, 4000: 0.4}
    nearest = retrieval.nearest_rids(shelf, query)
    assert nearest is not None and 321 in nearest
    ahead = retrieval.rank_shelf(shelf, lexical, query, [], None, 10, nearest=nearest)
    assert ahead == retrieval.rank_shelf(shelf, lexical, query, [], None, 10)
    # Rows archived between the two steps (positions shift) are simply left out.
    gone = [int(r) for r in nearest[:5] if r != 321]
    shelf.remove(gone)
    ranked, _ = retrieval.rank_shelf(shelf, lexical, query, [], None, 10, nearest=nearest)
    assert 321 in ranked and not set(gone) & set(ranked)
    # A small shelf scores every row: nothing is found ahead.
    small = Shelf(DIM)
    small.add([1, 2], vectors[:2], [0.0, 0.0])
    assert retrieval.nearest_rids(small, query) is None


def test_a_narrow_filter_on_a_large_shelf_still_finds_its_rows() -> None:
    n = 2 * EXACT_ROWS
    vectors = clustered_vectors(n, seed=2)
    shelf = Shelf(DIM)
    shelf.add(list(range(n)), vectors, [i * 86400.0 for i in range(n)])
    allowed = {7, 1234, 5000}
    ranked, _ = retrieval.rank_shelf(shelf, {}, vectors[1234], [], allowed, 10)
    assert set(ranked) == allowed
    assert max(ranked, key=lambda rid: ranked[rid][0]) == 1234


def test_removing_and_restoring_rows_keeps_the_shelf_in_rowid_order() -> None:
    vectors = clustered_vectors(500, seed=3)
    shelf = Shelf(DIM, capacity=16)  # grows several times
    shelf.add(list(range(0, 1000, 2)), vectors, [0.0] * 500)
    shelf.remove(list(range(0, 200, 2)))
    shelf.add([10, 20], vectors[:2], [0.0, 0.0])  # restored: back in order
    assert list(shelf.rids[:3]) == [10, 20, 200]
    positions, found = shelf.positions([10, 20, 202, 3])
    assert list(found) == [True, True, True, False]
    cos = shelf.cosine(vectors[0], positions[:1])
    assert abs(float(cos[0]) - 1.0) < 0.01  # int8 codes keep the cosine


def test_common_words_are_left_out_of_the_full_text_query_but_the_rarest_stays() -> None:
    counts = {"harbour": 9000, "boats": 7000, "zebra": 3, "note": 8000}
    kept = retrieval.within_budget(["note", "harbour", "zebra", "boats", "unseen"], counts)
    assert kept == ["zebra", "unseen"]
    assert retrieval.within_budget(["harbour", "boats"], counts) == ["boats"]
    expression = retrieval.match_expression("the harbour zebra", frequencies=counts)
    assert expression == '"zebra"*'


async def test_a_persona_outnumbered_in_the_index_still_finds_its_own_words(
    client: PersonaClient,
) -> None:
    crowd = (await client.call("persona.create", {"name": "Crowd"}))["persona"]["id"]
    loner = (await client.call("persona.create", {"name": "Loner"}))["persona"]["id"]
    await client.call("memory.set_pruning_config", {"auto_prune": False})
    many = [{"content": f"the walrus number {i} sang by the pier"} for i in range(600)]
    await client.call("memory.store_batch", {"persona_id": crowd, "memories": many})
    mine = await client.call(
        "memory.store", {"persona_id": loner, "content": "A walrus waved at me from the pier."}
    )
    found = await client.call("memory.search", {"query": "walrus pier", "persona_id": loner})
    assert [r["memory"]["id"] for r in found["results"]] == [mine["memory"]["id"]]
    crowded = await client.call(
        "memory.search", {"query": "walrus pier", "persona_id": crowd, "limit": 50}
    )
    assert len(crowded["results"]) == 50
    assert all(r["memory"]["persona_id"] == crowd for r in crowded["results"])


async def test_a_terms_count_is_taken_again_once_many_memories_were_stored_since(
    tmp_path: Path,
) -> None:
    """A count taken while a persona was small must not stand for it grown tenfold: the
    lexical budget would let a now common term through and score all of its matches."""
    from persona_mcp.memory import service as memory_service

    settings = make_settings(tmp_path / "data", embedding_provider="none")
    async with serve(settings) as server, server.client() as client:
        memory = server.app.memory

        async def count() -> int:
            return (await memory._db.read(lambda conn: memory._frequencies(conn, ["lantern"])))[
                "lantern"
            ]

        await client.call("memory.set_pruning_config", {"auto_prune": False})
        await client.call(
            "memory.store_batch",
            {"persona_id": "Aria", "memories": [{"content": "the lantern glowed"}] * 10},
        )
        assert await count() == 10
        more = memory_service.TERM_COUNT_STORES + 1
        for start in range(0, more, 1000):
            batch = [{"content": f"a lantern walk number {i}"} for i in range(start, more)][:1000]
            await client.call("memory.store_batch", {"persona_id": "Aria", "memories": batch})
        assert await count() == 10 + more
