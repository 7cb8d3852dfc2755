"""The knowledge graph's rows: entities, their aliases, typed edges. Plain functions over
a connection, called inside the transaction that writes the memories they come from.

A node is a memory (its id) or an entity (`ent_…`). An edge joins two nodes with one of
the types below; edges hold their memories through foreign keys, so a deleted memory
takes its edges along (see the m009_graph migration for the triggers that join up the
`next` chain and forget unmentioned entities). A pruned memory stays in `memories` with
its text and vector, and its edges stay in `graph_edges`: every reader here leaves out
an edge with an archived end (`_LIVE`), so they are hidden until a restore, and `detach`
only joins the `next` chain up around the pruned episodes. `graph_edge_archive` holds
the edges that earlier versions moved out at a prune; `restore_edges` still brings them
back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from persona_mcp.store import memories
from persona_mcp.store.api import Connection, Row, json_values

EdgeType = Literal["next", "mentions", "relates_to", "supersedes", "part_of"]
EDGE_TYPES: tuple[EdgeType, ...] = ("next", "mentions", "relates_to", "supersedes", "part_of")
NodeKind = Literal["memory", "entity"]
ENTITY_PREFIX = "ent_"

_EDGE_COLUMNS = (
    "id, edge_type, src_memory, src_entity, dst_memory, dst_entity, via_memory, label, "
    "weight, created_at"
)


# An edge none of whose memories is archived (for a table aliased `g`): a probe of the
# archive by key per end (an anti-join on PostgreSQL).
_LIVE = " AND ".join(
    f"NOT EXISTS (SELECT 1 FROM memory_archive a WHERE a.id = g.{end})"
    for end in ("src_memory", "dst_memory", "via_memory")
)


def new_entity_id() -> str:
    return ENTITY_PREFIX + uuid.uuid4().hex[:16]


def kind_of_node(node_id: str) -> NodeKind:
    return "entity" if node_id.startswith(ENTITY_PREFIX) else "memory"


@dataclass(frozen=True)
class EntityRow:
    id: str
    user_id: str
    persona_id: str
    name: str
    kind: str
    relation: str | None
    created_at: float
    updated_at: float
    aliases: tuple[str, ...] = ()
    mentions: int = 0


@dataclass(frozen=True)
class EdgeRow:
    id: int
    edge_type: str
    src: str
    src_kind: NodeKind
    dst: str
    dst_kind: NodeKind
    via_memory: str | None
    label: str | None
    weight: float
    created_at: float


@dataclass(frozen=True)
class NewEdge:
    edge_type: EdgeType
    src: str
    dst: str
    label: str | None = None
    weight: float = 1.0
    via_memory: str | None = None


def _edge(r: Row) -> EdgeRow:
    src_memory, dst_memory = r["src_memory"], r["dst_memory"]
    return EdgeRow(
        id=int(r["id"]),
        edge_type=r["edge_type"],
        src=src_memory or r["src_entity"],
        src_kind="memory" if src_memory else "entity",
        dst=dst_memory or r["dst_entity"],
        dst_kind="memory" if dst_memory else "entity",
        via_memory=r["via_memory"],
        label=r["label"],
        weight=float(r["weight"]),
        created_at=float(r["created_at"]),
    )


# -- entities and aliases ---------------------------------------------------------------


def entities_by_norm(conn: Connection, persona_id: str, norms: Iterable[str]) -> dict[str, str]:
    """norm -> entity id, for the aliases of one persona's graph that are known."""
    wanted = sorted(set(norms))
    if not wanted:
        return {}
    out: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for norm, entity_id in conn.execute(
            f"SELECT norm, entity_id FROM graph_aliases WHERE persona_id = ? AND norm IN ({marks})",
            (persona_id, *chunk),
        ):
            out[norm] = entity_id
    return out


def insert_entity(
    conn: Connection,
    *,
    entity_id: str,
    user_id: str,
    persona_id: str,
    name: str,
    kind: str,
    relation: str | None,
    now: float,
) -> None:
    conn.execute(
        """INSERT INTO graph_entities (id, user_id, persona_id, name, kind, relation,
               created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (entity_id, user_id, persona_id, name, kind, relation, now, now),
    )


def update_entity(
    conn: Connection,
    entity_id: str,
    *,
    name: str | None = None,
    kind: str | None = None,
    relation: str | None = None,
    now: float,
) -> None:
    """Change what is given; a field left None keeps its value."""
    conn.execute(
        """UPDATE graph_entities SET name = coalesce(?, name), kind = coalesce(?, kind),
               relation = coalesce(?, relation), updated_at = ? WHERE id = ?""",
        (name, kind, relation, now, entity_id),
    )


def add_alias(
    conn: Connection, user_id: str, persona_id: str, entity_id: str, alias: str, norm: str
) -> bool:
    """Give an entity one more name; False when that name already belongs to some entity."""
    cur = conn.execute(
        """INSERT OR IGNORE INTO graph_aliases (persona_id, norm, entity_id, alias, user_id)
           VALUES (?, ?, ?, ?, ?)""",
        (persona_id, norm, entity_id, alias, user_id),
    )
    return cur.rowcount > 0


def merge_entities(conn: Connection, keep: str, drop: str, now: float) -> None:
    """Make `drop` one with `keep`: its aliases, edges and archived edges move over
    (an edge `keep` already has is not doubled), then `drop` goes."""
    for column in ("src_entity", "dst_entity"):
        if conn.dialect == "postgresql":
            # UPDATE OR IGNORE: the edges that would double one `keep` has stay with
            # `drop`, and go with it below.
            end, other = ("src", "dst") if column == "src_entity" else ("dst", "src")
            conn.execute(
                f"""UPDATE graph_edges g SET {column} = ? WHERE g.{column} = ?
                    AND NOT EXISTS (SELECT 1 FROM graph_edges k
                        WHERE k.{end} = ? AND k.edge_type = g.edge_type
                        AND k.{other} = g.{other}
                        AND coalesce(k.via_memory, '') = coalesce(g.via_memory, ''))""",
                (keep, drop, keep),
            )
        else:
            conn.execute(
                f"UPDATE OR IGNORE graph_edges SET {column} = ? WHERE {column} = ?", (keep, drop)
            )
        conn.execute(f"UPDATE graph_edge_archive SET {column} = ? WHERE {column} = ?", (keep, drop))
    conn.execute("DELETE FROM graph_edges WHERE src_entity = ? AND dst_entity = ?", (keep, keep))
    conn.execute("UPDATE graph_aliases SET entity_id = ? WHERE entity_id = ?", (keep, drop))
    conn.execute(
        """UPDATE graph_entities SET relation = coalesce(relation,
               (SELECT relation FROM graph_entities WHERE id = ?)), updated_at = ?
           WHERE id = ?""",
        (drop, now, keep),
    )
    conn.execute("DELETE FROM graph_entities WHERE id = ?", (drop,))


def entities(conn: Connection, user_id: str, ids: Sequence[str]) -> list[EntityRow]:
    """These entities of this user, with their aliases and how many memories mention them."""
    if not ids:
        return []
    out: list[EntityRow] = []
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"""SELECT e.*, (SELECT count(*) FROM graph_edges g
                    WHERE g.dst_entity = e.id AND g.edge_type = 'mentions' AND {_LIVE})
                    AS mentions
                FROM graph_entities e WHERE e.user_id = ? AND e.id IN ({marks})""",
            (user_id, *chunk),
        ).fetchall()
        aliases: dict[str, list[str]] = {}
        for entity_id, alias in conn.execute(
            f"""SELECT entity_id, alias FROM graph_aliases WHERE entity_id IN ({marks})
                ORDER BY rowid""",
            chunk,
        ):
            aliases.setdefault(entity_id, []).append(alias)
        out.extend(
            EntityRow(
                id=r["id"],
                user_id=r["user_id"],
                persona_id=r["persona_id"],
                name=r["name"],
                kind=r["kind"],
                relation=r["relation"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                aliases=tuple(a for a in aliases.get(r["id"], []) if a != r["name"]),
                mentions=int(r["mentions"]),
            )
            for r in rows
        )
    order = {entity_id: i for i, entity_id in enumerate(ids)}
    return sorted(out, key=lambda e: order.get(e.id, 0))


def entity_ids_of_user(conn: Connection, user_id: str, norm: str) -> list[str]:
    """The entities, over all of a user's personas, that go by this name."""
    return [
        r[0]
        for r in conn.execute(
            """SELECT a.entity_id FROM graph_aliases a JOIN graph_entities e ON e.id = a.entity_id
               WHERE a.user_id = ? AND a.norm = ? ORDER BY e.created_at""",
            (user_id, norm),
        )
    ]


def entity_aliases(conn: Connection, persona_id: str) -> dict[str, str]:
    """Every alias norm of one persona's graph -> its entity id."""
    return dict(
        conn.execute(
            "SELECT norm, entity_id FROM graph_aliases WHERE persona_id = ?", (persona_id,)
        )
    )


def mentioned_in(conn: Connection, memory_ids: Sequence[str]) -> dict[str, list[str]]:
    """memory id -> the entities it mentions."""
    out: dict[str, list[str]] = {}
    for start in range(0, len(memory_ids), 500):
        chunk = list(memory_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for memory_id, entity_id in conn.execute(
            f"""SELECT g.src_memory, g.dst_entity FROM graph_edges g
                WHERE g.edge_type = 'mentions' AND g.src_memory IN ({marks}) AND {_LIVE}
                ORDER BY g.id""",
            chunk,
        ):
            out.setdefault(memory_id, []).append(entity_id)
    return out


def memories_mentioning(conn: Connection, entity_id: str, limit: int) -> list[str]:
    """The memories that mention an entity, in the order they happened."""
    return [
        r[0]
        for r in conn.execute(
            f"""SELECT m.id FROM graph_edges g JOIN memories m ON m.id = g.src_memory
               WHERE g.dst_entity = ? AND g.edge_type = 'mentions' AND {_LIVE}
               ORDER BY m.occurred_at, m.rid LIMIT ?""",
            (entity_id, limit),
        )
    ]


# -- edges ------------------------------------------------------------------------------


def add_edges(
    conn: Connection, user_id: str, persona_id: str, edges: Iterable[NewEdge], now: float
) -> None:
    """Insert edges; one already there (same ends, type and source memory) is kept."""
    rows = []
    for e in edges:
        src_entity = e.src.startswith(ENTITY_PREFIX)
        dst_entity = e.dst.startswith(ENTITY_PREFIX)
        rows.append(
            (
                user_id, persona_id, e.edge_type,
                None if src_entity else e.src, e.src if src_entity else None,
                None if dst_entity else e.dst, e.dst if dst_entity else None,
                e.via_memory, e.label, e.weight, now,
            )
        )  # fmt: skip
    conn.executemany(
        """INSERT OR IGNORE INTO graph_edges (user_id, persona_id, edge_type, src_memory,
               src_entity, dst_memory, dst_entity, via_memory, label, weight, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )


def link_episode(
    conn: Connection,
    user_id: str,
    persona_id: str,
    memory_id: str,
    occurred_at: float,
    rid: int,
    now: float,
) -> None:
    """Put an episode into its persona's `next` chain at its place in time: between the
    episode just before it and the one just after (whose direct link it replaces), found
    by two lookups of the episodes index."""
    before = conn.execute(
        f"""SELECT m.id FROM {memories.ROWS} WHERE m.persona_id = ?
               AND m.memory_type = 'episode' AND (m.occurred_at, m.rid) < (?, ?)
           ORDER BY m.occurred_at DESC, m.rid DESC LIMIT 1""",
        (persona_id, occurred_at, rid),
    ).fetchone()
    after = conn.execute(
        f"""SELECT m.id FROM {memories.ROWS} WHERE m.persona_id = ?
               AND m.memory_type = 'episode' AND (m.occurred_at, m.rid) > (?, ?)
           ORDER BY m.occurred_at, m.rid LIMIT 1""",
        (persona_id, occurred_at, rid),
    ).fetchone()
    place_episodes(
        conn, user_id, persona_id,
        [(memory_id, before[0] if before else None, after[0] if after else None)], now,
    )  # fmt: skip


def place_episodes(
    conn: Connection,
    user_id: str,
    persona_id: str,
    placed: Sequence[tuple[str, str | None, str | None]],
    now: float,
) -> None:
    """Write episodes into the `next` chain, each (id, the live episode just before it,
    the one just after): the links the neighbours had in their place (the direct link
    over, a bridge over archived ones) go, and so does whatever an episode itself led to
    or came from before (a restored one's links from when it was archived)."""
    if not placed:
        return
    episodes = {p[0] for p in placed}
    sources = sorted(episodes | {p[1] for p in placed if p[1]})
    targets = sorted(episodes | {p[2] for p in placed if p[2]})
    for column, nodes in (("src_memory", sources), ("dst_memory", targets)):
        conn.execute(
            f"""DELETE FROM graph_edges WHERE edge_type = 'next' AND {column} IN (
                    SELECT value FROM {json_values(conn, "?")})""",
            (json.dumps(nodes),),
        )
    links = {(p[1], p[0]) for p in placed if p[1]} | {(p[0], p[2]) for p in placed if p[2]}
    add_edges(conn, user_id, persona_id, [NewEdge("next", a, b) for a, b in sorted(links)], now)


def edges_of(
    conn: Connection, node_ids: Sequence[str], edge_types: Sequence[str] | None = None
) -> list[EdgeRow]:
    """Every edge that starts or ends at one of these nodes."""
    if not node_ids:
        return []
    types = tuple(edge_types or EDGE_TYPES)
    type_marks = ",".join("?" * len(types))
    out: dict[int, EdgeRow] = {}
    for start in range(0, len(node_ids), 400):
        chunk = list(node_ids[start : start + 400])
        marks = ",".join("?" * len(chunk))
        for column in ("src", "dst"):
            for r in conn.execute(
                f"""SELECT {_EDGE_COLUMNS} FROM graph_edges g
                    WHERE {column} IN ({marks}) AND edge_type IN ({type_marks}) AND {_LIVE}""",
                (*chunk, *types),
            ):
                out[int(r["id"])] = _edge(r)
    return sorted(out.values(), key=lambda e: e.id)


def mention_counts(conn: Connection, entity_ids: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(entity_ids), 500):
        chunk = list(entity_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for entity_id, n in conn.execute(
            f"""SELECT g.dst_entity, count(*) FROM graph_edges g
                WHERE g.edge_type = 'mentions' AND g.dst_entity IN ({marks}) AND {_LIVE}
                GROUP BY g.dst_entity""",
            chunk,
        ):
            out[entity_id] = int(n)
    return out


def nearest_mentions(conn: Connection, entity_id: str, occurred_at: float, limit: int) -> list[str]:
    """The memories mentioning an entity that happened closest in time to `occurred_at`."""
    return [
        r[0]
        for r in conn.execute(
            f"""SELECT m.id FROM graph_edges g JOIN memories m ON m.id = g.src_memory
               WHERE g.dst_entity = ? AND g.edge_type = 'mentions' AND {_LIVE}
               ORDER BY abs(m.occurred_at - ?), m.rid DESC LIMIT ?""",
            (entity_id, occurred_at, limit),
        )
    ]


def owner_of(conn: Connection, node_id: str) -> tuple[str, str] | None:
    """(user id, persona id) of a memory or entity node, or None when there is none."""
    if node_id.startswith(ENTITY_PREFIX):
        sql = "SELECT user_id, persona_id FROM graph_entities WHERE id = ?"
    else:  # a live memory (an archived one is not in the graph)
        sql = f"SELECT m.user_id, m.persona_id FROM {memories.ROWS} WHERE m.id = ?"
    row = conn.execute(sql, (node_id,)).fetchone()
    return (row[0], row[1]) if row else None


def detach(conn: Connection, memory_ids: Sequence[str]) -> None:
    """Join the `next` chain up around memories being archived (their archive rows are
    written already): a run of archived episodes is bridged by one edge, from the live
    episode before it to the live one after. Their own edges stay where they are, hidden
    while they are archived (`_LIVE`), and shown again by a restore."""
    chosen = json_values(conn, "?")
    chain = conn.execute(
        f"""SELECT e.src_memory, e.dst_memory, e.user_id, e.persona_id, e.created_at
            FROM graph_edges e WHERE e.edge_type = 'next' AND e.id IN (
                SELECT e.id FROM {chosen} JOIN graph_edges e ON e.src_memory = j.value
                UNION SELECT e.id FROM {chosen} JOIN graph_edges e ON e.dst_memory = j.value)
            ORDER BY e.id""",
        (json.dumps(list(memory_ids)),) * 2,
    ).fetchall()
    if not chain:
        return
    gone = set(memory_ids)
    # An edge from or to an episode archived before (by an earlier prune, or an earlier
    # batch of this one) is hidden already: not part of the chain.
    ends = {m for e in chain for m in (e[0], e[1]) if m not in gone}
    kept = memories.live_ids(conn, ends)
    live = [e for e in chain if all(m in gone or m in kept for m in (e[0], e[1]))]
    following = {e[0]: e[1] for e in live}
    bridges = []
    for src, dst, user_id, persona_id, created_at in live:
        if src in gone or dst not in gone:
            continue  # only from a kept episode into a run of archived ones
        seen = {dst}
        while dst in gone and dst in following and following[dst] not in seen:
            dst = following[dst]
            seen.add(dst)
        if dst not in gone:
            bridges.append((user_id, persona_id, src, dst, created_at))
    conn.executemany(
        """INSERT OR IGNORE INTO graph_edges (user_id, persona_id, edge_type, src_memory,
               dst_memory, weight, created_at) VALUES (?, ?, 'next', ?, ?, 1.0, ?)""",
        bridges,
    )


def _ids(conn: Connection) -> str:
    """A subquery of the integer ids bound (by `_id_list`) to one parameter."""
    if conn.dialect == "postgresql":
        return "SELECT unnest(CAST(? AS bigint[]))"
    return "SELECT value FROM json_each(?)"


def _id_list(conn: Connection, ids: list[int]) -> Any:
    return ids if conn.dialect == "postgresql" else json.dumps(ids)


def entities_present(conn: Connection, entity_ids: Iterable[str | None]) -> set[str]:
    """Those of these entity ids that exist."""
    wanted = sorted(e for e in set(entity_ids) if e)
    if not wanted:
        return set()
    return {
        r[0]
        for r in conn.execute(
            f"""SELECT id FROM graph_entities
                WHERE id IN (SELECT value FROM {json_values(conn, "?")})""",
            (json.dumps(wanted),),
        )
    }


def restore_edges(
    conn: Connection, user_id: str, restored: dict[str, list[str]], now: float
) -> None:
    """After a restore (persona id -> the ids of its memories restored): their edges show
    again by themselves; those an earlier version archived come back where their other
    ends are present; restored episodes rejoin the `next` chain."""
    memory_ids = [m for ids_of in restored.values() for m in ids_of]
    ids = json.dumps(memory_ids)
    chosen = json_values(conn, ":ids")
    archived = conn.execute(
        f"""SELECT a.* FROM graph_edge_archive a
           WHERE a.id IN (
                 SELECT e.id FROM {chosen}
                     JOIN graph_edge_archive e ON e.src_memory = j.value
                 UNION SELECT e.id FROM {chosen}
                     JOIN graph_edge_archive e ON e.dst_memory = j.value
                 UNION SELECT e.id FROM {chosen}
                     JOIN graph_edge_archive e ON e.via_memory = j.value)
           ORDER BY a.id""",
        {"ids": ids},
    ).fetchall()
    live = memories.live_ids(
        conn, {m for r in archived for m in (r["src_memory"], r["dst_memory"], r["via_memory"])}
    )
    entities = entities_present(
        conn, {e for r in archived for e in (r["src_entity"], r["dst_entity"])}
    )
    rows = [
        r for r in archived
        if all(m is None or m in live for m in (r["src_memory"], r["dst_memory"], r["via_memory"]))
        and all(e is None or e in entities for e in (r["src_entity"], r["dst_entity"]))
    ]  # fmt: skip
    if rows:
        back = _id_list(conn, [int(r["id"]) for r in rows])
        columns = """user_id, persona_id, edge_type, src_memory, src_entity, dst_memory,
                   dst_entity, via_memory, label, weight, created_at"""
        conn.execute(
            f"""INSERT OR IGNORE INTO graph_edges ({columns})
                SELECT {columns} FROM graph_edge_archive WHERE id IN ({_ids(conn)}) ORDER BY id""",
            (back,),
        )
        conn.execute(f"DELETE FROM graph_edge_archive WHERE id IN ({_ids(conn)})", (back,))
    for persona_id, ids_of in sorted(restored.items()):
        _rejoin_chain(conn, user_id, persona_id, json.dumps(ids_of), now)


def _rejoin_chain(conn: Connection, user_id: str, persona_id: str, ids: str, now: float) -> None:
    """Put restored episodes (among the JSON list `ids`) back into their persona's `next`
    chain at once (`place_episodes`), their neighbours found by one window over the
    persona's live episodes (live: not archived, a probe of the small archive, as in
    `memories._own`)."""
    chosen = f"SELECT value FROM {json_values(conn, ':ids')}"
    placed = conn.execute(
        f"""SELECT c.id, c.before, c.after FROM (
                SELECT m.id, lag(m.id) OVER w AS before, lead(m.id) OVER w AS after
                FROM memories m WHERE m.user_id = :user AND m.persona_id = :persona
                    AND m.memory_type = 'episode'
                    AND NOT EXISTS (SELECT 1 FROM memory_archive a WHERE a.id = m.id)
                WINDOW w AS (ORDER BY m.occurred_at, m.rid)) c
            WHERE c.id IN ({chosen})""",
        {"user": user_id, "persona": persona_id, "ids": ids},
    ).fetchall()
    place_episodes(conn, user_id, persona_id, [(r[0], r[1], r[2]) for r in placed], now)


def counts(conn: Connection, user_id: str, persona_id: str) -> dict[str, Any]:
    """How big one persona's graph is: entities, and edges by type."""
    entities_n = conn.execute(
        "SELECT count(*) FROM graph_entities WHERE user_id = ? AND persona_id = ?",
        (user_id, persona_id),
    ).fetchone()[0]
    by_type = dict(
        conn.execute(
            f"""SELECT g.edge_type, count(*) FROM graph_edges g
               WHERE g.user_id = ? AND g.persona_id = ? AND {_LIVE} GROUP BY g.edge_type""",
            (user_id, persona_id),
        ).fetchall()
    )
    return {"entities": int(entities_n), "edges": {t: int(by_type.get(t, 0)) for t in EDGE_TYPES}}
