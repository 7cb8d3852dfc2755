"""The tables of the portable state file (state.save / state.load): which rows of a user
each section holds, and how they are read, removed and written back. Plain functions
over a connection.

`SECTIONS` is the one list, in dependency order (a table after the tables it references).
A later migration that adds a table holding a user's data adds a `Section` here, and the
table is then saved, validated, loaded and counted like every other; a table that holds
no user's data goes into `EXCLUDED` with the reason. (`tests/test_portability.py` fails
while a table is in neither.)

Rows leave without their user column (the file is one user's; loading writes the loading
user's id) and without local surrogate keys (`omit`: integer rowids no one outside the
database refers to), which are assigned again, in the same order, when the rows go back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from persona_mcp.store.api import Connection


@dataclass(frozen=True)
class Section:
    table: str
    scope: str  # SQL condition selecting one user's rows (the user is :user)
    order: str  # ORDER BY: the same data always dumps in the same order
    key: tuple[str, ...] = ()  # columns that identify a row among the user's
    user_column: str | None = "user_id"  # written with the loading user's id
    persona_column: str | None = "persona_id"  # the persona a row belongs to, if any
    omit: tuple[str, ...] = ()  # local surrogate keys, assigned again on load
    # (column, section): foreign keys, so the referenced row must be in the file too
    parents: tuple[tuple[str, str], ...] = ()
    json_columns: tuple[str, ...] = ()  # TEXT columns that hold JSON
    global_key: bool = False  # `key` is unique across users (ids): another user's is a conflict
    one_per_user: bool = False  # a single row per user, replaced whole by a merge

    @property
    def name(self) -> str:
        return self.table


_USER = "user_id = :user"
_PERSONA = (("persona_id", "personas"),)

SECTIONS: tuple[Section, ...] = (
    Section(
        "personas", _USER, "created_at, id", key=("id",), persona_column="id", global_key=True,
        json_columns=("personality_traits", "topic_preferences", "defaults", "card"),
    ),
    Section("persona_states", _USER, "persona_id", key=("persona_id",), parents=_PERSONA),
    Section(
        "user_state", _USER, "user_id", persona_column=None, one_per_user=True,
        parents=(("active_persona_id", "personas"),),
    ),
    Section("config", "scope = :user", "key", key=("key",), user_column="scope",
            persona_column=None, json_columns=("value",)),
    Section("conversations", _USER, "started_at, id", key=("id",), parents=_PERSONA,
            global_key=True),
    Section(
        "messages", "conversation_id IN (SELECT id FROM conversations WHERE user_id = :user)",
        "conversation_id, seq", key=("conversation_id", "seq"), user_column=None,
        persona_column=None, omit=("id",), parents=(("conversation_id", "conversations"),),
    ),
    # Live and archived memories (an archived one has an archive row, not a scores row).
    Section("memories", _USER, "rid", key=("id",), omit=("rid",), parents=_PERSONA,
            json_columns=("metadata", "importance_breakdown"), global_key=True),
    Section("memory_scores", _USER, "persona_id, memory_id", key=("memory_id",),
            parents=(*_PERSONA, ("memory_id", "memories"))),
    Section("prune_runs", _USER, "started_at, id", key=("id",), global_key=True),
    Section(
        "memory_archive", _USER, "archived_at, id", key=("id",),
        parents=(("prune_run_id", "prune_runs"), *_PERSONA, ("id", "memories")),
        global_key=True,
    ),
    # The vectors of live and archived memories (removed with them by a trigger).
    Section(
        "memory_vectors", "memory_id IN (SELECT id FROM memories WHERE user_id = :user)",
        "memory_id", key=("memory_id",), user_column=None, persona_column=None,
    ),
    Section("memory_versions", _USER, "memory_id, version", key=("memory_id", "version"),
            persona_column=None, json_columns=("metadata",)),
    Section("decay_runs", _USER, "id", omit=("id",)),
    Section("relationships", _USER, "persona_id, other_id", key=("persona_id", "other_id"),
            parents=_PERSONA),
    Section("relationship_history", _USER, "id", omit=("id",), parents=_PERSONA),
    Section("moods", _USER, "persona_id", key=("persona_id",), parents=_PERSONA),
    Section("mood_history", _USER, "id", omit=("id",), parents=_PERSONA),
    Section("simulations", _USER, "started_at, id", key=("id",), persona_column=None,
            json_columns=("personas", "remaining"), global_key=True),
    Section(
        "simulation_turns", "simulation_id IN (SELECT id FROM simulations WHERE user_id = :user)",
        "simulation_id, turn", key=("simulation_id", "turn"), user_column=None,
        persona_column=None, parents=(("simulation_id", "simulations"),),
    ),
    Section("tier_segments", _USER, "created_at, id", key=("id",), parents=_PERSONA,
            json_columns=("keywords",), global_key=True),
    Section("tier_pages", _USER, "seq, id", key=("id",),
            parents=(*_PERSONA, ("segment_id", "tier_segments")), json_columns=("meta_data",),
            global_key=True),
    Section("tier_knowledge", _USER, "created_at, id", key=("id",), parents=_PERSONA,
            global_key=True),
    Section("tier_profiles", _USER, "persona_id", key=("persona_id",), parents=_PERSONA,
            json_columns=("profile",)),
    Section("graph_entities", _USER, "created_at, id", key=("id",), parents=_PERSONA,
            global_key=True),
    Section("graph_aliases", _USER, "persona_id, norm", key=("persona_id", "norm"),
            parents=(*_PERSONA, ("entity_id", "graph_entities"))),
    Section("graph_edges", _USER, "id", omit=("id",),
            parents=(*_PERSONA, ("src_memory", "memories"), ("dst_memory", "memories"),
                     ("via_memory", "memories"), ("src_entity", "graph_entities"),
                     ("dst_entity", "graph_entities"))),
    # Edges an earlier version moved out of graph_edges at a prune, until restored (an
    # archived memory's edges now stay in graph_edges, hidden).
    Section("graph_edge_archive", _USER, "id", omit=("id",),
            parents=(*_PERSONA, ("src_memory", "memories"), ("dst_memory", "memories"),
                     ("via_memory", "memories"), ("src_entity", "graph_entities"),
                     ("dst_entity", "graph_entities"))),
    Section("visual_context", _USER, "persona_id", key=("persona_id",), parents=_PERSONA,
            json_columns=("tags",)),
)  # fmt: skip

BY_NAME = {s.name: s for s in SECTIONS}

EXCLUDED = {
    "_migrations": "the schema's own record; the loading server has its own",
    "meta": "server-level facts, not a user's",
    "sessions": "connections, which end with the server that held them",
    "tokens": "credentials of this server: a file that carried them could grant access "
    "elsewhere, and the secrets themselves are never stored",
    "job_runs": "PostgreSQL only: when background jobs ran, across the server's instances",
    "fleet_messages": "PostgreSQL only: events between instances, kept a few minutes",
    "memories_fts": "the full-text index, rebuilt from the memories as they are written",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # TEXT | REAL | INTEGER | BLOB
    required: bool  # NOT NULL and no default


def tables(conn: Connection) -> list[str]:
    """Every table of the database except SQLite's own and the full-text shadow tables."""
    if conn.dialect == "postgresql":
        rows = conn.execute(
            """SELECT table_name FROM information_schema.tables
               WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"""
        ).fetchall()
        # The full-text index is the `fts` column of memories there, not a table.
        return sorted([*(r[0] for r in rows), "memories_fts"])
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return sorted(r[0] for r in rows if not r[0].startswith("memories_fts_"))


# PostgreSQL's column types as the file names them (SQLite's declared types).
_PG_TYPES = {"text": "TEXT", "double precision": "REAL", "bigint": "INTEGER",
             "integer": "INTEGER", "USER-DEFINED": "BLOB", "bytea": "BLOB"}  # fmt: skip


def columns(conn: Connection, section: Section) -> list[Column]:
    """The columns a section's rows carry in the file (generated columns are not listed
    by table_info, and are never written)."""
    skip = {*section.omit, section.user_column}
    if conn.dialect == "postgresql":
        # Generated columns (graph edges' src and dst, the full-text `fts`) and the
        # hidden `rowid` identities are never written, as SQLite's table_info hides them.
        return [
            Column(r[0], _PG_TYPES.get(r[1], r[1].upper()), r[2] == "NO" and r[3] is None)
            for r in conn.execute(
                """SELECT column_name, data_type, is_nullable, column_default
                   FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = ?
                     AND is_generated = 'NEVER' AND column_name <> 'rowid'
                   ORDER BY ordinal_position""",
                (section.table,),
            )
            if r[0] not in skip
        ]
    return [
        Column(r["name"], (r["type"] or "").upper(), bool(r["notnull"]) and r["dflt_value"] is None)
        for r in conn.execute(f"PRAGMA table_info({section.table})")
        if r["name"] not in skip
    ]


def schema(conn: Connection) -> dict[str, list[Column]]:
    return {s.name: columns(conn, s) for s in SECTIONS}


def dump(conn: Connection, section: Section, user_id: str) -> Iterator[dict[str, Any]]:
    """A user's rows of one section, as stored (BLOBs as bytes), in the section's order."""
    names = [c.name for c in columns(conn, section)]
    cursor = conn.execute(
        f"SELECT {', '.join(names)} FROM {section.table} WHERE {section.scope} "
        f"ORDER BY {section.order}",
        {"user": user_id},
    )
    for row in cursor:
        yield dict(zip(names, row, strict=True))


def count(conn: Connection, section: Section, user_id: str) -> int:
    return int(
        conn.execute(
            f"SELECT count(*) FROM {section.table} WHERE {section.scope}", {"user": user_id}
        ).fetchone()[0]
    )


def delete_user(conn: Connection, user_id: str) -> None:
    """Remove every row of a user that a state file can hold (children first)."""
    for section in reversed(SECTIONS):
        conn.execute(f"DELETE FROM {section.table} WHERE {section.scope}", {"user": user_id})


def personas_named(conn: Connection, user_id: str, names: Sequence[str]) -> list[str]:
    """Ids of the user's personas with one of these names (case-insensitive)."""
    wanted = {n.lower() for n in names}
    rows = conn.execute("SELECT id, name FROM personas WHERE user_id = ?", (user_id,))
    return [r[0] for r in rows if r[1].lower() in wanted]


def delete_personas(conn: Connection, user_id: str, persona_ids: Sequence[str]) -> None:
    """Remove these personas of the user and every row that belongs to them."""
    if not persona_ids:
        return
    marks = ",".join("?" * len(persona_ids))
    for section in reversed(SECTIONS):
        if section.persona_column is None:
            continue
        conn.execute(
            f"DELETE FROM {section.table} WHERE {section.scope.replace(':user', '?')} "
            f"AND {section.persona_column} IN ({marks})",
            (user_id, *persona_ids),
        )
    # The versions of memories that left with them (the trigger on memories takes them
    # too; this catches a version whose memory was never there).
    conn.execute(
        """DELETE FROM memory_versions WHERE user_id = ?
           AND memory_id NOT IN (SELECT id FROM memories WHERE user_id = ?)""",
        (user_id, user_id),
    )


def held_by_others(
    conn: Connection, section: Section, user_id: str, keys: Sequence[Any]
) -> list[Any]:
    """Those of `keys` (a one-column global key) that rows of other users hold."""
    assert section.global_key and len(section.key) == 1
    found: list[Any] = []
    column = section.key[0]
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        found.extend(
            r[0]
            for r in conn.execute(
                f"""SELECT {column} FROM {section.table}
                    WHERE {column} IN ({",".join("?" * len(chunk))})
                    AND NOT ({section.scope.replace(":user", "?")})""",
                (*chunk, user_id),
            )
        )
    return found


def insert(
    conn: Connection,
    section: Section,
    user_id: str,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    merge: bool,
) -> None:
    """Write rows (values in the order of `names`) for a user. With `merge`, a row that
    is already there (the same key, or for keyless rows the same values) is updated in
    place rather than added again (an update, so nothing that refers to it is touched)."""
    if not rows:
        return
    cols = list(names)
    if section.user_column is not None:
        cols.append(section.user_column)
        rows = [(*r, user_id) for r in rows]
    sql = f"INSERT INTO {section.table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    if merge and not section.key and not section.one_per_user:
        scope = section.scope.replace(":user", "?")
        where = " AND ".join(f"{c} IS ?" for c in names)
        conn.executemany(
            f"DELETE FROM {section.table} WHERE {scope} AND {where}",
            [(user_id, *r[: len(names)]) for r in rows],
        )
    elif merge:
        fixed = {*section.key, section.user_column}
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in fixed)
        # PostgreSQL's DO UPDATE names the key it resolves (SQLite takes any).
        target = f" ({', '.join(_unique_key(conn, section))})" if conn.dialect != "sqlite" else ""
        sql += f" ON CONFLICT{target} DO UPDATE SET {sets}" if sets else " ON CONFLICT DO NOTHING"
    conn.executemany(sql, rows)


def _unique_key(conn: Connection, section: Section) -> list[str]:
    """The columns of the section table's unique key that its `key` (with the user and
    persona columns) makes up (PostgreSQL)."""
    wanted = {
        *section.key,
        *([section.user_column] if section.user_column else []),
        *([section.persona_column] if section.persona_column else []),
    }
    rows = conn.execute(
        """SELECT i.indexrelid, a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           WHERE i.indrelid = ?::regclass AND i.indisunique AND i.indexprs IS NULL""",
        (section.table,),
    ).fetchall()
    keys: dict[int, list[str]] = {}
    for index, column in rows:
        keys.setdefault(int(index), []).append(str(column))
    fitting = [cols for cols in keys.values() if set(section.key) <= set(cols) <= wanted]
    if not fitting:
        raise ValueError(f"no unique key of {section.table} fits {sorted(wanted)}")
    longest: list[str] = max(fitting, key=len)
    return sorted(longest)
