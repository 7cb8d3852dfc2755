"""Memory rows, their full-text index and embeddings. Plain functions over a connection.

A memory is three rows (see the m011_memory_split migration): the wide one in
`memories` (text, type, times, metadata), its narrow row of scores in `memory_scores`
(importance, accesses, decay stamp, pin: what decay and pruning read and rewrite), and
its vector in `memory_vectors` once embedded. They are written in one transaction; the
full-text index follows `memories` through triggers.

A memory is live while it has its scores row. A pruned (archived) one keeps its wide
row, full-text entry and vector and has an archive row instead (see m012 and
`store.lifecycle`), so every read of live memories goes through `ROWS`, `live_ids` or
(where a row is looked up already) the absence of an archive row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from persona_mcp.embeddings.base import Vectors
from persona_mcp.store.api import Connection, Row, json_values

COLUMNS = (
    "m.rid, m.id, m.persona_id, m.user_id, m.content, m.memory_type, s.importance, "
    "m.base_importance, m.emotional_valence, s.access_count, s.last_accessed_at, m.created_at, "
    "m.occurred_at, m.source, m.metadata, m.importance_breakdown, m.context, s.pinned, "
    "m.superseded_by"
)
# A live memory with its scores; COLUMNS are read from here.
ROWS = (
    "memories m JOIN memory_scores s "
    "ON s.user_id = m.user_id AND s.persona_id = m.persona_id AND s.memory_id = m.id"
)


def ids_first(conn: Connection) -> str:
    """The join after a list of ids (`json_values`): SQLite is told to read the list first
    and each one's rows by key (its planner may otherwise scan the table per id)."""
    return "JOIN" if conn.dialect == "postgresql" else "CROSS JOIN"


def rids_of(conn: Connection, memory_ids: Sequence[str]) -> list[tuple[int, str]]:
    """(rid, id) of these memories, live or archived (from the index on ids)."""
    join = ids_first(conn)
    return [
        (int(r[0]), str(r[1]))
        for r in conn.execute(
            f"SELECT m.rid, m.id FROM {json_values(conn, '?')} {join} memories m ON m.id = j.value",
            (json.dumps(list(memory_ids)),),
        )
    ]


def live_ids(conn: Connection, memory_ids: Iterable[str | None]) -> set[str]:
    """Those of these memory ids that name live memories."""
    wanted = sorted(m for m in set(memory_ids) if m)
    if not wanted:
        return set()
    join = ids_first(conn)
    return {
        r[0]
        for r in conn.execute(
            f"""SELECT m.id FROM {json_values(conn, "?")} {join} memories m ON m.id = j.value
                JOIN memory_scores s ON s.user_id = m.user_id AND s.persona_id = m.persona_id
                    AND s.memory_id = m.id""",
            (json.dumps(wanted),),
        )
    }


def _scores_of(where: str) -> str:
    """The condition on `memory_scores` for the memories that `where` picks, by the key."""
    return (
        "(user_id, persona_id, memory_id) IN "
        f"(SELECT user_id, persona_id, id FROM memories WHERE {where})"
    )


@dataclass(frozen=True)
class MemoryRow:
    rid: int
    id: str
    persona_id: str
    user_id: str
    content: str
    memory_type: str
    importance: float
    base_importance: float
    emotional_valence: float
    access_count: int
    last_accessed_at: float | None
    created_at: float
    occurred_at: float
    source: str
    metadata: dict[str, Any]
    importance_breakdown: dict[str, Any] | None
    context: str
    pinned: bool = False
    superseded_by: str | None = None


@dataclass(frozen=True)
class NewMemory:
    id: str
    persona_id: str
    user_id: str
    content: str
    memory_type: str
    importance: float
    emotional_valence: float
    created_at: float
    occurred_at: float
    source: str
    metadata: dict[str, Any]
    importance_breakdown: dict[str, Any] | None
    context: str
    embedding: bytes | None
    embedding_model: str | None


def _row(r: Row) -> MemoryRow:
    return MemoryRow(
        rid=r["rid"],
        id=r["id"],
        persona_id=r["persona_id"],
        user_id=r["user_id"],
        content=r["content"],
        memory_type=r["memory_type"],
        importance=r["importance"],
        base_importance=r["base_importance"],
        emotional_valence=r["emotional_valence"],
        access_count=r["access_count"],
        last_accessed_at=r["last_accessed_at"],
        created_at=r["created_at"],
        occurred_at=r["occurred_at"],
        source=r["source"],
        metadata=json.loads(r["metadata"]),
        importance_breakdown=json.loads(r["importance_breakdown"])
        if r["importance_breakdown"]
        else None,
        context=r["context"],
        pinned=bool(r["pinned"]),
        superseded_by=r["superseded_by"],
    )


def to_blob(vector: Vectors) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: Sequence[bytes]) -> Vectors:
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).astype(np.float32)


def insert(conn: Connection, memories: Iterable[NewMemory]) -> list[int]:
    rids = []
    for m in memories:
        cur = conn.execute(
            """INSERT INTO memories (id, persona_id, user_id, content, memory_type,
                   base_importance, emotional_valence, created_at, occurred_at, source, metadata,
                   importance_breakdown, context)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rid""",
            (
                m.id,
                m.persona_id,
                m.user_id,
                m.content,
                m.memory_type,
                m.importance,
                m.emotional_valence,
                m.created_at,
                m.occurred_at,
                m.source,
                json.dumps(m.metadata, ensure_ascii=False),
                json.dumps(m.importance_breakdown) if m.importance_breakdown else None,
                m.context,
            ),
        )
        rid = int(cur.fetchone()[0])
        conn.execute(
            """INSERT INTO memory_scores (memory_id, user_id, persona_id, created_at, importance)
               VALUES (?, ?, ?, ?, ?)""",
            (m.id, m.user_id, m.persona_id, m.created_at, m.importance),
        )
        if m.embedding is not None and m.embedding_model is not None:
            _put_vector(conn, m.id, m.embedding, m.embedding_model)
        rids.append(rid)
    return rids


def _put_vector(conn: Connection, memory_id: str, embedding: bytes, model: str) -> None:
    conn.execute(
        """INSERT INTO memory_vectors (memory_id, model, embedding) VALUES (?, ?, ?)
           ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model,
               embedding = excluded.embedding""",
        (memory_id, model, embedding),
    )


def by_ids(conn: Connection, user_id: str, ids: Sequence[str]) -> list[MemoryRow]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM {ROWS} WHERE m.user_id = ? AND m.id IN ({marks})",
        (user_id, *ids),
    ).fetchall()
    return [_row(r) for r in rows]


def by_rids(conn: Connection, rids: Sequence[int]) -> dict[int, MemoryRow]:
    if not rids:
        return {}
    out: dict[int, MemoryRow] = {}
    for start in range(0, len(rids), 500):
        chunk = rids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(f"SELECT {COLUMNS} FROM {ROWS} WHERE m.rid IN ({marks})", chunk):
            out[r["rid"]] = _row(r)
    return out


def latest_content(conn: Connection, user_id: str, persona_id: str) -> str | None:
    row = conn.execute(
        f"""SELECT m.content FROM {ROWS} WHERE m.user_id = ? AND m.persona_id = ?
           ORDER BY m.created_at DESC, m.rid DESC LIMIT 1""",
        (user_id, persona_id),
    ).fetchone()
    return row[0] if row else None


def delete(conn: Connection, user_id: str, ids: Sequence[str]) -> list[MemoryRow]:
    rows = by_ids(conn, user_id, ids)
    for start in range(0, len(rows), 500):
        chunk = [r.rid for r in rows[start : start + 500]]
        conn.execute(f"DELETE FROM memories WHERE rid IN ({','.join('?' * len(chunk))})", chunk)
    return rows


def record_access(conn: Connection, rids: Sequence[int], now: float) -> None:
    """Count an access of these rows. On PostgreSQL this bookkeeping commits without
    waiting for its WAL flush (synchronous_commit off for this transaction only): a
    crash of the database server may forget the last few access counts, never a
    memory, and a search does not wait on a disk flush."""
    if rids and conn.dialect == "postgresql":
        conn.execute("SET LOCAL synchronous_commit = off")
    if rids:
        conn.execute(
            f"""UPDATE memory_scores SET access_count = access_count + 1, last_accessed_at = ?
                WHERE {_scores_of(f"rid IN ({','.join('?' * len(rids))})")}""",
            (now, *rids),
        )


def reinforce(conn: Connection, rid: int, importance: float, now: float, cap: float) -> None:
    """A duplicate was stated again: one more access, and importance raised a little
    (at least to the new statement's, never into the protected range by itself)."""
    conn.execute(
        f"""UPDATE memory_scores SET access_count = access_count + 1, last_accessed_at = ?,
               importance = max(importance, min(?, max(importance, ?) + 0.05))
           WHERE {_scores_of("rid = ?")}""",
        (now, cap, importance, rid),
    )


def supersede(conn: Connection, old_ids: Sequence[str], new_id: str) -> None:
    conn.executemany(
        "UPDATE memories SET superseded_by = ? WHERE id = ?", [(new_id, i) for i in old_ids]
    )


def set_pinned(conn: Connection, user_id: str, memory_id: str, pinned: bool) -> bool:
    cur = conn.execute(
        f"UPDATE memory_scores SET pinned = ? WHERE {_scores_of('user_id = ? AND id = ?')}",
        (int(pinned), user_id, memory_id),
    )
    return cur.rowcount > 0


def add_version(conn: Connection, row: MemoryRow, reason: str, now: float) -> int:
    """Keep a memory's current text and importance as a version before it changes."""
    version = int(
        conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM memory_versions WHERE memory_id = ?",
            (row.id,),
        ).fetchone()[0]
    )
    conn.execute(
        """INSERT INTO memory_versions (memory_id, version, user_id, content, importance,
               metadata, changed_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (row.id, version, row.user_id, row.content, row.importance,
         json.dumps(row.metadata, ensure_ascii=False), now, reason),
    )  # fmt: skip
    return version


def versions(conn: Connection, memory_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT version, content, importance, metadata, changed_at, reason
           FROM memory_versions WHERE memory_id = ? ORDER BY version""",
        (memory_id,),
    ).fetchall()
    return [
        {"version": r[0], "content": r[1], "importance": r[2], "metadata": json.loads(r[3]),
         "changed_at": r[4], "reason": r[5]}
        for r in rows
    ]  # fmt: skip


def update(
    conn: Connection,
    rid: int,
    *,
    content: str,
    importance: float,
    metadata: dict[str, Any],
    embedding: bytes | None,
    embedding_model: str | None,
) -> None:
    """New text, importance and metadata; the vector is replaced when one is given, kept
    when the text stays the same, and dropped (to be embedded again) when it changes."""
    memory_id = conn.execute("SELECT id FROM memories WHERE rid = ?", (rid,)).fetchone()[0]
    if embedding is not None and embedding_model is not None:
        _put_vector(conn, memory_id, embedding, embedding_model)
    else:
        conn.execute(
            """DELETE FROM memory_vectors WHERE memory_id = ?
               AND EXISTS (SELECT 1 FROM memories WHERE rid = ? AND content IS NOT ?)""",
            (memory_id, rid, content),
        )
    conn.execute(
        "UPDATE memories SET content = ?, metadata = ? WHERE rid = ?",
        (content, json.dumps(metadata, ensure_ascii=False), rid),
    )
    conn.execute(
        f"UPDATE memory_scores SET importance = ? WHERE {_scores_of('rid = ?')}",
        (importance, rid),
    )


def superseded_by_chain(conn: Connection, user_id: str, memory_id: str) -> list[MemoryRow]:
    """The memories this one replaced (directly or through earlier corrections), oldest
    first, and those that replaced it."""
    seen: dict[str, MemoryRow] = {}
    frontier = [memory_id]
    while frontier:
        marks = ",".join("?" * len(frontier))
        rows = conn.execute(
            f"""SELECT {COLUMNS} FROM {ROWS} WHERE m.user_id = ?
                AND (m.superseded_by IN ({marks}) OR m.id IN (
                    SELECT superseded_by FROM memories WHERE id IN ({marks})))""",
            (user_id, *frontier, *frontier),
        ).fetchall()
        frontier = []
        for r in rows:
            row = _row(r)
            if row.id != memory_id and row.id not in seen:
                seen[row.id] = row
                frontier.append(row.id)
    return sorted(seen.values(), key=lambda m: (m.created_at, m.rid))


def page(
    conn: Connection,
    user_id: str,
    persona_id: str,
    memory_type: str | None,
    after_rid: int,
    limit: int,
) -> list[MemoryRow]:
    """Memories in insertion order after `after_rid` (a cursor), at most `limit`."""
    sql = f"SELECT {COLUMNS} FROM {ROWS} WHERE m.user_id = ? AND m.persona_id = ? AND m.rid > ?"
    args: list[Any] = [user_id, persona_id, after_rid]
    if memory_type:
        sql += " AND m.memory_type = ?"
        args.append(memory_type)
    rows = conn.execute(sql + " ORDER BY m.rid LIMIT ?", (*args, limit)).fetchall()
    return [_row(r) for r in rows]


@dataclass(frozen=True)
class Filters:
    user_id: str
    persona_id: str
    memory_type: str | None = None
    min_importance: float | None = None
    since: float | None = None
    until: float | None = None

    def sql(self, alias: str = "m", *, by_key: bool = False) -> tuple[str, list[Any]]:
        """The WHERE clause. `by_key`: the rows are already picked by rowid, so keep
        SQLite from scanning the persona's index instead (the unary + hides it)."""
        p = "+" if by_key else ""
        clauses = [f"{p}{alias}.user_id = ?", f"{p}{alias}.persona_id = ?"]
        args: list[Any] = [self.user_id, self.persona_id]
        if self.memory_type:
            clauses.append(f"{alias}.memory_type = ?")
            args.append(self.memory_type)
        if self.min_importance is not None:
            clauses.append(
                f"(SELECT importance FROM memory_scores WHERE user_id = {alias}.user_id "
                f"AND persona_id = {alias}.persona_id AND memory_id = {alias}.id) >= ?"
            )
            args.append(self.min_importance)
        if self.since is not None:
            clauses.append(f"{alias}.occurred_at >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append(f"{alias}.occurred_at <= ?")
            args.append(self.until)
        return " AND ".join(clauses), args

    @property
    def narrowed(self) -> bool:
        return any(
            v is not None for v in (self.memory_type, self.min_importance, self.since, self.until)
        )


def owner_token(persona_id: str) -> str:
    """The persona's token in the full-text index (the generated `owner` column)."""
    return "p" + persona_id.replace("-", "")


LEXICAL_OVERFETCH = 4
LEXICAL_FETCH_CAP = 5000  # index rows one lexical search reads at most


def matches(conn: Connection, phrase: str) -> int:
    """How many memories (of every persona) a full-text phrase matches."""
    if conn.dialect == "postgresql":
        sql = "SELECT count(*) FROM memories WHERE fts @@ to_tsquery('english', ?)"
        return int(conn.execute(sql, (tsquery(phrase),)).fetchone()[0])
    return int(
        conn.execute(
            "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?", (phrase,)
        ).fetchone()[0]
    )


def lexical(
    conn: Connection,
    match: str,
    filters: Filters,
    limit: int,
    context_weight: float,
    counts: dict[str, int] | None = None,
) -> list[tuple[int, float]]:
    """(rid, bm25) best first, for one persona; bm25 is negated so that larger is better.

    First without the persona's owner token: its posting list is the whole persona, read
    in full by every query that names it, which is most of the cost once one persona
    holds most memories. When that persona's rows are too few among the best matches of
    all, the query is asked again with the token, for more rows while the persona's
    archived memories (which keep their index entries) and the filters leave too few.
    Either way the persona's rows come out in the same order with the same scores (the
    owner column weighs 0).

    On PostgreSQL see `_pg_lexical`."""
    if conn.dialect == "postgresql":
        return _pg_lexical(conn, match, filters, limit, context_weight, counts or {})
    sql = """SELECT rowid, -bm25(memories_fts, 1.0, ?, 0.0) AS score FROM memories_fts
             WHERE memories_fts MATCH ? ORDER BY score DESC LIMIT ?"""
    fetch = limit * LEXICAL_OVERFETCH
    rows = conn.execute(sql, (context_weight, match, fetch)).fetchall()
    hits = _own(conn, filters, rows)
    token = f'owner:"{owner_token(filters.persona_id)}" AND ({match})'
    asked = fetch  # rows the last query asked for
    while len(hits) < limit and len(rows) == asked:
        rows = conn.execute(sql, (context_weight, token, fetch)).fetchall()
        hits = _own(conn, filters, rows)
        asked = fetch
        if fetch >= LEXICAL_FETCH_CAP:
            break
        fetch = min(fetch * LEXICAL_OVERFETCH, LEXICAL_FETCH_CAP)
    return hits[:limit]


_PHRASE = re.compile(r'"([^"]+)"(\*?)')


def tsquery(match: str) -> str:
    """An FTS5 expression of quoted terms OR-ed (`retrieval.match_expression`) as a
    PostgreSQL tsquery: the same terms, prefixes as `:*`."""
    terms = []
    for term, star in _PHRASE.findall(match):
        words = re.findall(r"[^\W_]+", term)
        if words:
            terms.append(" <-> ".join(words) + (":*" if star else ""))
    return " | ".join(terms) or "''"


EXACT_IDF_ROWS = 10_000


def _pg_lexical(
    conn: Connection,
    match: str,
    filters: Filters,
    limit: int,
    context_weight: float,
    known: dict[str, int],
) -> list[tuple[int, float]]:
    """BM25's shape from PostgreSQL's full text, for the persona's rows: per term, ts_rank
    over the generated `fts` column (content weighted 1, the context `context_weight`,
    divided by 1 + log(length) as BM25 favours the shorter match), weighted by the term's
    inverse document frequency over all memories (which ts_rank alone lacks), summed.
    `known`: rows each term matches, where the caller has counted them already (an
    estimate of a while ago, used once the table is big enough for that not to matter)."""
    phrases = [(term, tsquery(f'"{term}"{star}')) for term, star in _PHRASE.findall(match)]
    phrases = [(term, t) for term, t in phrases if t != "''"]
    if not phrases:
        return []
    terms = [t for _, t in phrases]
    total = int(conn.execute(
        "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'memories'::regclass"
    ).fetchone()[0])  # fmt: skip
    if total < EXACT_IDF_ROWS:  # small (or never analysed): count exactly, it is cheap
        total = int(conn.execute("SELECT count(*) FROM memory_scores").fetchone()[0])
        known = {}
    counts = [
        known[term] if term in known else int(conn.execute(
            "SELECT count(*) FROM memories WHERE fts @@ to_tsquery('english', ?)", (t,)
        ).fetchone()[0])
        for term, t in phrases
    ]  # fmt: skip
    total = max(total, max(counts), 1)
    weights = [math.log(1 + (total - n + 0.5) / (n + 0.5)) for n in counts]
    ranks = " + ".join(
        "? * ts_rank(ARRAY[0, 0, ?, 1]::real[], m.fts, to_tsquery('english', ?), 1)" for _ in terms
    )
    rank_args = [a for w, t in zip(weights, terms, strict=True) for a in (w, context_weight, t)]
    where, args = filters.sql()
    rows = conn.execute(
        f"""SELECT m.rid, {ranks} AS score FROM {ROWS}
            WHERE m.fts @@ to_tsquery('english', ?) AND {where}
            ORDER BY score DESC, m.rid LIMIT ?""",
        (*rank_args, " | ".join(f"({t})" for t in terms), *args, limit),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def _own(conn: Connection, filters: Filters, rows: Sequence[Row]) -> list[tuple[int, float]]:
    """The rows (rid, score) that belong to the filters' user and persona, in order."""
    if not rows:
        return []
    rids = [int(r[0]) for r in rows]
    where, args = filters.sql(by_key=True)
    marks = ",".join("?" * len(rids))
    # Live: not archived (a probe of the small archive, cheaper than one of the scores).
    sql = f"""SELECT m.rid FROM memories m WHERE m.rid IN ({marks}) AND {where}
              AND NOT EXISTS (SELECT 1 FROM memory_archive a WHERE a.id = m.id)"""
    mine = {int(r[0]) for r in conn.execute(sql, (*rids, *args))}
    return [(int(r[0]), float(r[1])) for r in rows if int(r[0]) in mine]


def allowed_rids(conn: Connection, filters: Filters) -> set[int]:
    where, args = filters.sql()
    return {int(r[0]) for r in conn.execute(f"SELECT m.rid FROM {ROWS} WHERE {where}", args)}


def count_embedded(conn: Connection, user_id: str, persona_id: str, model: str) -> int:
    """How many of a persona's memories carry an embedding by `model`."""
    return int(
        conn.execute(
            f"""SELECT count(*) FROM {ROWS} JOIN memory_vectors v ON v.memory_id = m.id
               WHERE m.user_id = ? AND m.persona_id = ? AND v.model = ?""",
            (user_id, persona_id, model),
        ).fetchone()[0]
    )


def embedding_chunks(
    conn: Connection, user_id: str, persona_id: str, model: str, size: int = 4096
) -> Iterator[tuple[list[int], Vectors, list[float]]]:
    """A persona's (rids, vectors, occurred_at) by rid, `size` rows at a time, so the
    vector index fills its arrays without holding every row's bytes at once."""
    cursor = conn.execute(
        f"""SELECT m.rid, v.embedding, m.occurred_at
           FROM {ROWS} JOIN memory_vectors v ON v.memory_id = m.id
           WHERE m.user_id = ? AND m.persona_id = ? AND v.model = ? ORDER BY m.rid""",
        (user_id, persona_id, model),
    )
    while rows := cursor.fetchmany(size):
        yield [int(r[0]) for r in rows], from_blobs([r[1] for r in rows]), [r[2] for r in rows]


def stored_embeddings(
    conn: Connection, rids: Sequence[int], model: str
) -> list[tuple[int, str, str, bytes, float]]:
    """(rid, user, persona, embedding, occurred_at) of those rows embedded by `model`."""
    out: list[tuple[int, str, str, bytes, float]] = []
    for start in range(0, len(rids), 500):
        chunk = list(rids[start : start + 500])
        out.extend(
            (int(r[0]), r[1], r[2], r[3], r[4])
            for r in conn.execute(
                f"""SELECT m.rid, m.user_id, m.persona_id, v.embedding, m.occurred_at
                    FROM {ROWS} JOIN memory_vectors v ON v.memory_id = m.id
                    WHERE m.rid IN ({",".join("?" * len(chunk))}) AND v.model = ?""",
                (*chunk, model),
            )
        )
    return out


@dataclass(frozen=True)
class Pending:
    rid: int
    user_id: str
    persona_id: str
    content: str
    context: str
    occurred_at: float


def pending_embeddings(
    conn: Connection, model: str, limit: int, *, stale: bool = False, after: int = 0
) -> list[Pending]:
    """Memories with no embedding (and, with `stale`, those embedded by another model),
    by rid after `after`."""
    condition = (
        "(v.model IS NULL OR v.model IS NOT ?)" if stale else "v.model IS NULL AND ? IS NOT NULL"
    )
    rows = conn.execute(
        f"""SELECT m.rid, m.user_id, m.persona_id, m.content, m.context, m.occurred_at
            FROM {ROWS} LEFT JOIN memory_vectors v ON v.memory_id = m.id
            WHERE {condition} AND m.rid > ? ORDER BY m.rid LIMIT ?""",
        (model, after, limit),
    ).fetchall()
    return [Pending(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]


def set_embeddings(conn: Connection, rids: Sequence[int], vectors: Vectors, model: str) -> None:
    """Store vectors of live memories (by rowid), replacing any they had."""
    conn.executemany(
        """INSERT INTO memory_vectors (memory_id, model, embedding)
           SELECT id, ?, ? FROM memories WHERE rid = ?
           ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model,
               embedding = excluded.embedding""",
        [(model, to_blob(v), rid) for rid, v in zip(rids, vectors, strict=True)],
    )


def count_for_user(conn: Connection, user_id: str) -> int:
    return int(
        conn.execute("SELECT count(*) FROM memory_scores WHERE user_id = ?", (user_id,)).fetchone()[
            0
        ]
    )


def count(conn: Connection, user_id: str, persona_id: str) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM memory_scores WHERE user_id = ? AND persona_id = ?",
            (user_id, persona_id),
        ).fetchone()[0]
    )


def stats(conn: Connection, user_id: str, persona_id: str, model: str) -> dict[str, Any]:
    args = (user_id, persona_id)
    where = "user_id = ? AND persona_id = ?"
    total, accessed, accesses, max_access, mean_imp, min_imp, max_imp = conn.execute(
        f"""SELECT count(*), sum(CASE WHEN access_count > 0 THEN 1 ELSE 0 END),
                   coalesce(sum(access_count), 0), coalesce(max(access_count), 0),
                   avg(importance), min(importance), max(importance)
            FROM memory_scores WHERE {where}""",
        args,
    ).fetchone()
    mine = f"{ROWS} WHERE m.user_id = ? AND m.persona_id = ?"
    oldest, newest = conn.execute(
        f"SELECT min(m.occurred_at), max(m.occurred_at) FROM {mine}", args
    ).fetchone()
    by_type = dict(
        conn.execute(
            f"SELECT m.memory_type, count(*) FROM {mine} GROUP BY m.memory_type", args
        ).fetchall()
    )
    buckets = {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": 0 for i in range(10)}
    for bucket, n in conn.execute(
        f"""SELECT min(CAST(floor(importance * 10) AS INTEGER), 9), count(*) FROM memory_scores
            WHERE {where} GROUP BY 1""",
        args,
    ):
        buckets[f"{bucket / 10:.1f}-{(bucket + 1) / 10:.1f}"] = n
    embedded = count_embedded(conn, user_id, persona_id, model)
    return {
        "total": total,
        "by_type": by_type,
        "importance": {
            "mean": round(mean_imp, 4) if mean_imp is not None else None,
            "min": min_imp,
            "max": max_imp,
            "distribution": buckets,
        },
        "access": {
            "total_accesses": accesses,
            "accessed_memories": accessed or 0,
            "never_accessed": total - (accessed or 0),
            "max_access_count": max_access,
        },
        "oldest_occurred_at": oldest,
        "newest_occurred_at": newest,
        "embedded": embedded,
    }


def count_stale_embeddings(conn: Connection, model: str) -> int:
    """Memories with no embedding from `model` (what `reindex` will embed)."""
    return int(
        conn.execute(
            f"""SELECT count(*) FROM {ROWS} LEFT JOIN memory_vectors v ON v.memory_id = m.id
               WHERE v.model IS NULL OR v.model IS NOT ?""",
            (model,),
        ).fetchone()[0]
    )


# -- the database's own vector index (PostgreSQL: pgvector, HNSW, cosine) -------------


def ensure_vector_index(conn: Connection, dims: int) -> None:
    """The HNSW index over embeddings of `dims` dimensions (one per dimension count in
    use; pg001 makes the bundled model's 384). Nothing to do on SQLite."""
    if conn.dialect == "postgresql":
        dims = int(dims)
        conn.execute(
            f"""CREATE INDEX IF NOT EXISTS memory_vectors_{dims} ON memory_vectors USING hnsw
                ((embedding::vector({dims})) vector_cosine_ops)
                WHERE vector_dims(embedding) = {dims}"""
        )


HNSW_EF_SEARCH = 200  # candidates the HNSW walk keeps (pgvector's default is 40)


def nearest(
    conn: Connection, filters: Filters, model: str, vector: Vectors, limit: int
) -> list[tuple[int, float]]:
    """(rid, cosine) of the live rows nearest in meaning among those the filters allow,
    best first, from pgvector's index (PostgreSQL only)."""
    assert conn.dialect == "postgresql"
    dims = int(np.asarray(vector).shape[-1])
    blob = to_blob(vector)
    where, args = filters.sql()
    conn.execute(f"SET LOCAL hnsw.ef_search = {max(HNSW_EF_SEARCH, int(limit))}")
    rows = conn.execute(
        f"""SELECT m.rid, 1 - (v.embedding::vector({dims}) <=> ?::vector({dims})) AS cosine
            FROM memory_vectors v JOIN {ROWS} ON m.id = v.memory_id
            WHERE {where} AND v.model = ? AND vector_dims(v.embedding) = {dims}
            ORDER BY v.embedding::vector({dims}) <=> ?::vector({dims}) LIMIT ?""",
        (blob, *args, model, blob, limit),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def window(
    conn: Connection, user_id: str, persona_id: str, model: str, core: Sequence[int], reach: int
) -> tuple[list[int], list[int], list[float], list[bytes]]:
    """The persona's rows embedded by `model` within `reach` rows (rid order) of each
    rid in `core`, in rid order: (rids, the rid of each one's predecessor or -1 when it
    is not among them, occurred_at, embeddings). Each core row's run is contiguous, so
    a row's predecessor is the row before it in any run that holds both."""
    if not core:
        return [], [], [], []
    embedded = f"""{ROWS} JOIN memory_vectors v ON v.memory_id = m.id
                  WHERE m.user_id = ? AND m.persona_id = ? AND v.model = ?"""
    owner = (user_id, persona_id, model)
    runs = conn.execute(
        f"""SELECT c.rid, w.rid FROM unnest(?::bigint[]) AS c(rid), LATERAL (
                (SELECT m.rid FROM {embedded} AND m.rid < c.rid ORDER BY m.rid DESC LIMIT ?)
                UNION ALL
                (SELECT m.rid FROM {embedded} AND m.rid >= c.rid ORDER BY m.rid LIMIT ?)) AS w
            ORDER BY 1, 2""",
        (list(core), *owner, reach, *owner, reach + 1),
    ).fetchall()
    previous: dict[int, int] = {}
    last_core, last_rid = None, -1
    for run, rid in runs:
        if run == last_core:
            previous[int(rid)] = last_rid
        else:
            previous.setdefault(int(rid), -1)
        last_core, last_rid = run, int(rid)
    rows = conn.execute(
        """SELECT m.rid, m.occurred_at, v.embedding
           FROM memories m JOIN memory_vectors v ON v.memory_id = m.id
           WHERE m.rid = ANY(?::bigint[]) AND v.model = ? ORDER BY m.rid""",
        (sorted(previous), model),
    ).fetchall()
    return (
        [int(r[0]) for r in rows],
        [previous[int(r[0])] for r in rows],
        [float(r[1]) for r in rows],
        [r[2] for r in rows],
    )


def embedded_times(
    conn: Connection, user_id: str, persona_id: str, model: str
) -> tuple[list[int], list[float]]:
    """(rids, occurred_at) of a persona's rows embedded by `model` (for date candidates)."""
    rows = conn.execute(
        f"""SELECT m.rid, m.occurred_at FROM {ROWS} JOIN memory_vectors v
               ON v.memory_id = m.id
           WHERE m.user_id = ? AND m.persona_id = ? AND v.model = ? ORDER BY m.rid""",
        (user_id, persona_id, model),
    ).fetchall()
    return [int(r[0]) for r in rows], [float(r[1]) for r in rows]
