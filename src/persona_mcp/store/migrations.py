"""Named, ordered schema migrations.

Each migration is a function registered in order; `_migrations` records which ones ran,
so a database of any age is brought up to date on open. Never edit a migration that has
shipped: add a new one. Times are stored as REAL Unix seconds (UTC).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []
# Migrations that rewrite big tables in place, leaving their pages scattered through the
# file: a VACUUM after them packs the tables again (rows deleted at random then touch a
# fraction of the pages they would).
VACUUM_AFTER = {"m011_memory_split"}


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; each in its own transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(name)
    # (A new database, every migration just applied, has nothing to pack.)
    if VACUUM_AFTER.intersection(applied) and len(applied) < len(MIGRATIONS):
        conn.execute("VACUUM")
    return applied


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run statements one by one (executescript would commit the open transaction)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            conn.execute(buffer)
            buffer = ""
    if buffer.strip():
        conn.execute(buffer)


@migration
def m001_personas_sessions_conversations(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE personas (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,      -- every user owns their personas (Aria, Kira seeded)
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            personality_traits TEXT NOT NULL DEFAULT '[]',
            backstory TEXT NOT NULL DEFAULT '',
            topic_preferences TEXT NOT NULL DEFAULT '{}',
            model TEXT,
            builtin INTEGER NOT NULL DEFAULT 0,   -- 1: seeded from the defaults
            defaults TEXT NOT NULL DEFAULT '{}',  -- starting interaction state
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX personas_owner_name ON personas (user_id, lower(name));
        CREATE TABLE persona_states (
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            social_energy REAL NOT NULL,
            available_time REAL NOT NULL,
            interaction_fatigue REAL NOT NULL,
            current_priority TEXT NOT NULL,
            last_interaction REAL,
            mood TEXT NOT NULL DEFAULT 'content',
            updated_at REAL NOT NULL,
            PRIMARY KEY (persona_id, user_id)
        );
        CREATE TABLE user_state (
            user_id TEXT PRIMARY KEY,
            active_persona_id TEXT REFERENCES personas(id) ON DELETE SET NULL,
            seeded_at REAL,             -- when the default personas were created
            updated_at REAL NOT NULL
        );
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            transport TEXT NOT NULL,
            active_persona_id TEXT REFERENCES personas(id) ON DELETE SET NULL,
            created_at REAL NOT NULL,
            last_active_at REAL NOT NULL,
            closed_at REAL
        );
        CREATE INDEX sessions_open ON sessions (closed_at, last_active_at);
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            title TEXT,
            status TEXT NOT NULL DEFAULT 'active',   -- active | ended
            started_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            ended_at REAL,
            turn_count INTEGER NOT NULL DEFAULT 0,
            summary TEXT NOT NULL DEFAULT '',
            summary_upto INTEGER NOT NULL DEFAULT 0,  -- messages covered by the summary
            summary_source TEXT,                      -- 'llm' | 'extractive'
            last_continue_score REAL
        );
        CREATE INDEX conversations_current
            ON conversations (user_id, persona_id, status, updated_at);
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,             -- 1.. within the conversation
            turn_number INTEGER NOT NULL,
            role TEXT NOT NULL,               -- user | assistant
            content TEXT NOT NULL,
            created_at REAL NOT NULL,
            model TEXT,
            tokens_used INTEGER,
            processing_time REAL,
            continue_score REAL,
            response_type TEXT,
            UNIQUE (conversation_id, seq)
        )
        """,
    )


@migration
def m002_memories(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE memories (
            rid INTEGER PRIMARY KEY,          -- the full-text index's rowid
            id TEXT NOT NULL UNIQUE,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            content TEXT NOT NULL,
            memory_type TEXT NOT NULL,
            importance REAL NOT NULL,
            base_importance REAL NOT NULL,    -- as scored or given, before any decay
            emotional_valence REAL NOT NULL,
            access_count INTEGER NOT NULL DEFAULT 0,
            last_accessed_at REAL,
            created_at REAL NOT NULL,
            occurred_at REAL NOT NULL,
            source TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            importance_breakdown TEXT,        -- JSON: per-factor scores and weights
            context TEXT NOT NULL DEFAULT '', -- neighbouring text used for indexing
            embedding BLOB,                   -- float32, unit length; NULL until embedded
            embedding_model TEXT
        );
        CREATE INDEX memories_owner ON memories (user_id, persona_id, created_at);
        CREATE INDEX memories_pending ON memories (embedding_model) WHERE embedding IS NULL;
        CREATE VIRTUAL TABLE memories_fts USING fts5(
            content, context, content='memories', content_rowid='rid',
            tokenize='porter unicode61'
        );
        -- The full-text index follows the table inside the same transaction.
        CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
            INSERT INTO memories_fts (rowid, content, context)
            VALUES (new.rid, new.content, new.context);
        END;
        CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, content, context)
            VALUES ('delete', old.rid, old.content, old.context);
        END;
        CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, context ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, content, context)
            VALUES ('delete', old.rid, old.content, old.context);
            INSERT INTO memories_fts (rowid, content, context)
            VALUES (new.rid, new.content, new.context);
        END;
        CREATE TABLE config (
            scope TEXT NOT NULL,              -- user id
            key TEXT NOT NULL,
            value TEXT NOT NULL,              -- JSON
            updated_at REAL NOT NULL,
            PRIMARY KEY (scope, key)
        )
        """,
    )


@migration
def m003_lifecycle(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        ALTER TABLE memories ADD COLUMN decayed_at REAL;  -- last time decay was applied
        CREATE TABLE prune_runs (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT,
            strategy TEXT NOT NULL,
            trigger TEXT NOT NULL,            -- manual | automatic | all
            target_count INTEGER,
            status TEXT NOT NULL,             -- running | complete | interrupted
            started_at REAL NOT NULL,
            finished_at REAL,
            pruned_count INTEGER NOT NULL DEFAULT 0,
            restored_count INTEGER NOT NULL DEFAULT 0,
            seconds REAL
        );
        CREATE INDEX prune_runs_user ON prune_runs (user_id, started_at);
        -- Pruned memories, whole, so that memory.restore brings them back exactly.
        CREATE TABLE memory_archive (
            id TEXT PRIMARY KEY,
            prune_run_id TEXT NOT NULL REFERENCES prune_runs(id),
            archived_at REAL NOT NULL,
            prune_score REAL NOT NULL,
            reason TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            content TEXT NOT NULL,
            memory_type TEXT NOT NULL,
            importance REAL NOT NULL,
            base_importance REAL NOT NULL,
            emotional_valence REAL NOT NULL,
            access_count INTEGER NOT NULL,
            last_accessed_at REAL,
            created_at REAL NOT NULL,
            occurred_at REAL NOT NULL,
            source TEXT NOT NULL,
            metadata TEXT NOT NULL,
            importance_breakdown TEXT,
            context TEXT NOT NULL,
            embedding BLOB,
            embedding_model TEXT,
            decayed_at REAL
        );
        CREATE INDEX memory_archive_run ON memory_archive (prune_run_id);
        CREATE INDEX memory_archive_owner ON memory_archive (user_id, persona_id);
        CREATE TABLE decay_runs (
            id INTEGER PRIMARY KEY,
            trigger TEXT NOT NULL,            -- background | forced
            user_id TEXT,
            persona_id TEXT,
            mode TEXT NOT NULL,
            rate REAL NOT NULL,
            hours REAL,
            ran_at REAL NOT NULL,
            decayed INTEGER NOT NULL,
            seconds REAL NOT NULL
        )
        """,
    )


@migration
def m004_fts_owner(conn: sqlite3.Connection) -> None:
    """Index each memory's persona as a token, so a search reads one persona's postings
    instead of scoring every persona's matches and filtering afterwards."""
    _script(
        conn,
        """
        ALTER TABLE memories ADD COLUMN owner TEXT
            GENERATED ALWAYS AS ('p' || replace(persona_id, '-', '')) VIRTUAL;
        DROP TRIGGER memories_fts_insert;
        DROP TRIGGER memories_fts_delete;
        DROP TRIGGER memories_fts_update;
        DROP TABLE memories_fts;
        CREATE VIRTUAL TABLE memories_fts USING fts5(
            content, context, owner, content='memories', content_rowid='rid',
            tokenize='porter unicode61'
        );
        INSERT INTO memories_fts (memories_fts) VALUES ('rebuild');
        CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
            INSERT INTO memories_fts (rowid, content, context, owner)
            VALUES (new.rid, new.content, new.context, new.owner);
        END;
        CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, content, context, owner)
            VALUES ('delete', old.rid, old.content, old.context, old.owner);
        END;
        CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, context ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, content, context, owner)
            VALUES ('delete', old.rid, old.content, old.context, old.owner);
            INSERT INTO memories_fts (rowid, content, context, owner)
            VALUES (new.rid, new.content, new.context, new.owner);
        END
        """,
    )


@migration
def m005_memory_trust(conn: sqlite3.Connection) -> None:
    """Pinned memories, corrections (a memory superseded by a newer one, kept as history)
    and the versions of edited memories."""
    _script(
        conn,
        """
        ALTER TABLE memories ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE memories ADD COLUMN superseded_by TEXT;
        ALTER TABLE memory_archive ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE memory_archive ADD COLUMN superseded_by TEXT;
        CREATE TABLE memory_versions (
            memory_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            content TEXT NOT NULL,
            importance REAL NOT NULL,
            metadata TEXT NOT NULL,
            changed_at REAL NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (memory_id, version)
        );
        CREATE TRIGGER memory_versions_forget AFTER DELETE ON memories
        WHEN NOT EXISTS (SELECT 1 FROM memory_archive WHERE id = old.id) BEGIN
            DELETE FROM memory_versions WHERE memory_id = old.id;
        END
        """,
    )


@migration
def m006_tokens(conn: sqlite3.Connection) -> None:
    """Bearer tokens (only their SHA-256 is kept), and the pruning policy made per user:
    the server-wide row of earlier versions becomes the local user's."""
    _script(
        conn,
        """
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            scopes TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            last_used_at REAL,
            revoked_at REAL
        );
        CREATE INDEX tokens_user ON tokens (user_id);
        INSERT INTO config (scope, key, value, updated_at)
            SELECT 'default', key, value, updated_at FROM config
            WHERE scope = 'server' AND key = 'pruning'
            ON CONFLICT (scope, key) DO NOTHING;
        DELETE FROM config WHERE scope = 'server' AND key = 'pruning'
        """,
    )


@migration
def m007_social(conn: sqlite3.Connection) -> None:
    """Relationships (a persona's view of the user or another persona) with their history,
    moods with their history, and chatroom simulations with their transcripts (the group
    conversation: one row per turn)."""
    _script(
        conn,
        """
        CREATE TABLE relationships (
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
            other_id TEXT NOT NULL,            -- 'user' or another persona's id
            affinity REAL NOT NULL,            -- [-1, 1]
            trust REAL NOT NULL,               -- [0, 1]
            familiarity REAL NOT NULL,         -- [0, 1], as of last_interaction
            interaction_count INTEGER NOT NULL,
            first_interaction REAL,
            last_interaction REAL,
            PRIMARY KEY (user_id, persona_id, other_id)
        );
        CREATE TABLE relationship_history (
            id INTEGER PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
            other_id TEXT NOT NULL,
            at REAL NOT NULL,
            affinity_delta REAL NOT NULL,
            trust_delta REAL NOT NULL,
            familiarity_delta REAL NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX relationship_history_pair
            ON relationship_history (user_id, persona_id, other_id, id);
        CREATE TRIGGER relationships_other_deleted AFTER DELETE ON personas BEGIN
            DELETE FROM relationships WHERE other_id = old.id;
            DELETE FROM relationship_history WHERE other_id = old.id;
        END;
        CREATE TABLE moods (
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
            valence REAL NOT NULL,             -- [-1, 1]
            arousal REAL NOT NULL,             -- [0, 1]
            updated_at REAL NOT NULL,
            PRIMARY KEY (user_id, persona_id)
        );
        CREATE TABLE mood_history (
            id INTEGER PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            valence REAL NOT NULL,
            arousal REAL NOT NULL,
            intensity REAL NOT NULL,
            label TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX mood_history_persona ON mood_history (user_id, persona_id, id);
        CREATE TABLE simulations (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            personas TEXT NOT NULL,            -- JSON [persona id, ...] in the order given
            remaining TEXT NOT NULL,           -- JSON [persona id, ...] still in the room
            max_turns INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            status TEXT NOT NULL,              -- running | completed | stopped
            turns INTEGER NOT NULL DEFAULT 0,
            end_reason TEXT,
            started_at REAL NOT NULL,
            ended_at REAL
        );
        CREATE INDEX simulations_user ON simulations (user_id, started_at);
        CREATE TABLE simulation_turns (
            simulation_id TEXT NOT NULL REFERENCES simulations (id) ON DELETE CASCADE,
            turn INTEGER NOT NULL,
            speaker_id TEXT NOT NULL,
            speaker TEXT NOT NULL,             -- the name at the time, kept if it is deleted
            text TEXT NOT NULL,
            continue_score REAL NOT NULL,
            model TEXT NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (simulation_id, turn)
        )
        """,
    )


@migration
def m008_tiers(conn: sqlite3.Connection) -> None:
    """MemoryOS's three tiers per (user, persona): pages (short- and mid-term),
    mid-term segments with heat, and long-term knowledge and profile."""
    _script(
        conn,
        """
        CREATE TABLE tier_segments (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            summary TEXT NOT NULL,
            keywords TEXT NOT NULL,
            embedding BLOB,
            visits INTEGER NOT NULL DEFAULT 0,
            pages INTEGER NOT NULL DEFAULT 0,
            analyzed_pages INTEGER NOT NULL DEFAULT 0,
            heat REAL NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            last_visit_at REAL NOT NULL,
            promoted_at REAL
        );
        CREATE INDEX tier_segments_owner ON tier_segments (user_id, persona_id, heat);
        CREATE TABLE tier_pages (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            user_input TEXT NOT NULL,
            agent_response TEXT NOT NULL,
            timestamp REAL NOT NULL,
            meta_data TEXT NOT NULL DEFAULT '{}',
            embedding BLOB,
            segment_id TEXT REFERENCES tier_segments(id) ON DELETE CASCADE,
            created_at REAL NOT NULL
        );
        CREATE INDEX tier_pages_short ON tier_pages (user_id, persona_id, segment_id, seq);
        CREATE INDEX tier_pages_segment ON tier_pages (segment_id);
        CREATE TABLE tier_knowledge (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('user', 'assistant')),
            text TEXT NOT NULL,
            embedding BLOB,
            source_segment_id TEXT,
            extractor TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (user_id, persona_id, kind, text)
        );
        CREATE INDEX tier_knowledge_owner ON tier_knowledge (user_id, persona_id, kind, created_at);
        CREATE TABLE tier_profiles (
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            profile TEXT NOT NULL,
            extractor TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (user_id, persona_id)
        )
        """,
    )


@migration
def m009_graph(conn: sqlite3.Connection) -> None:
    """The knowledge graph beside the memories: entities with aliases, and typed edges
    between memories and entities. Edges follow their memories through foreign keys (a
    memory deleted takes its edges along); a pruned memory's edges wait in an archive
    for `memory.restore`; an entity goes when the last memory mentioning it goes; a
    deleted episode's neighbours in the `next` chain are joined up."""
    _script(
        conn,
        """
        CREATE TABLE graph_entities (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,               -- person | place | organization | thing | event
            relation TEXT,                    -- what it is to the user ("mother"), if known
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX graph_entities_owner ON graph_entities (user_id, persona_id);
        CREATE TABLE graph_aliases (
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            norm TEXT NOT NULL,               -- NFC, lower case, no leading "my"/"the"
            entity_id TEXT NOT NULL REFERENCES graph_entities(id) ON DELETE CASCADE,
            alias TEXT NOT NULL,              -- as first written
            user_id TEXT NOT NULL,
            PRIMARY KEY (persona_id, norm)
        );
        CREATE INDEX graph_aliases_entity ON graph_aliases (entity_id);
        CREATE TABLE graph_edges (
            id INTEGER PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            edge_type TEXT NOT NULL CHECK (edge_type IN
                ('next', 'mentions', 'relates_to', 'supersedes', 'part_of')),
            src_memory TEXT REFERENCES memories(id) ON DELETE CASCADE,
            src_entity TEXT REFERENCES graph_entities(id) ON DELETE CASCADE,
            dst_memory TEXT REFERENCES memories(id) ON DELETE CASCADE,
            dst_entity TEXT REFERENCES graph_entities(id) ON DELETE CASCADE,
            via_memory TEXT REFERENCES memories(id) ON DELETE CASCADE,  -- read from
            label TEXT,
            weight REAL NOT NULL DEFAULT 1.0,
            created_at REAL NOT NULL,
            src TEXT GENERATED ALWAYS AS (coalesce(src_memory, src_entity)) VIRTUAL,
            dst TEXT GENERATED ALWAYS AS (coalesce(dst_memory, dst_entity)) VIRTUAL,
            CHECK ((src_memory IS NULL) <> (src_entity IS NULL)),
            CHECK ((dst_memory IS NULL) <> (dst_entity IS NULL))
        );
        CREATE UNIQUE INDEX graph_edges_unique
            ON graph_edges (src, edge_type, dst, coalesce(via_memory, ''));
        CREATE INDEX graph_edges_dst ON graph_edges (dst, edge_type);
        CREATE INDEX graph_edges_src_memory ON graph_edges (src_memory)
            WHERE src_memory IS NOT NULL;
        CREATE INDEX graph_edges_dst_memory ON graph_edges (dst_memory)
            WHERE dst_memory IS NOT NULL;
        CREATE INDEX graph_edges_src_entity ON graph_edges (src_entity)
            WHERE src_entity IS NOT NULL;
        CREATE INDEX graph_edges_dst_entity ON graph_edges (dst_entity, edge_type)
            WHERE dst_entity IS NOT NULL;
        CREATE INDEX graph_edges_via_memory ON graph_edges (via_memory)
            WHERE via_memory IS NOT NULL;
        -- The edges of pruned memories, until memory.restore brings them back.
        CREATE TABLE graph_edge_archive (
            id INTEGER PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            edge_type TEXT NOT NULL,
            src_memory TEXT,
            src_entity TEXT REFERENCES graph_entities(id) ON DELETE CASCADE,
            dst_memory TEXT,
            dst_entity TEXT REFERENCES graph_entities(id) ON DELETE CASCADE,
            via_memory TEXT,
            label TEXT,
            weight REAL NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX graph_edge_archive_src ON graph_edge_archive (src_memory);
        CREATE INDEX graph_edge_archive_dst ON graph_edge_archive (dst_memory);
        CREATE INDEX graph_edge_archive_via ON graph_edge_archive (via_memory);
        CREATE INDEX graph_edge_archive_entity ON graph_edge_archive (dst_entity);
        -- Episodes in time order, for the `next` chain.
        CREATE INDEX memories_episodes ON memories (persona_id, occurred_at, rid)
            WHERE memory_type = 'episode';
        CREATE TRIGGER graph_archive_edges BEFORE DELETE ON memories
        WHEN EXISTS (SELECT 1 FROM memory_archive WHERE id = old.id) BEGIN
            INSERT INTO graph_edge_archive (user_id, persona_id, edge_type, src_memory,
                src_entity, dst_memory, dst_entity, via_memory, label, weight, created_at)
            SELECT user_id, persona_id, edge_type, src_memory, src_entity, dst_memory,
                dst_entity, via_memory, label, weight, created_at
            FROM graph_edges
            WHERE edge_type <> 'next'
                AND (src_memory = old.id OR dst_memory = old.id OR via_memory = old.id);
        END;
        CREATE TRIGGER graph_next_bridge BEFORE DELETE ON memories
        WHEN old.memory_type = 'episode'
            AND EXISTS (SELECT 1 FROM personas WHERE id = old.persona_id) BEGIN
            INSERT OR IGNORE INTO graph_edges (user_id, persona_id, edge_type, src_memory,
                dst_memory, weight, created_at)
            SELECT a.user_id, a.persona_id, 'next', a.src_memory, b.dst_memory, 1.0,
                a.created_at
            FROM graph_edges a JOIN graph_edges b
                ON b.edge_type = 'next' AND b.src_memory = old.id
            WHERE a.edge_type = 'next' AND a.dst_memory = old.id;
        END;
        CREATE TRIGGER graph_forget_entity AFTER DELETE ON graph_edges
        WHEN old.edge_type = 'mentions' BEGIN
            DELETE FROM graph_entities WHERE id = old.dst_entity
                AND NOT EXISTS (SELECT 1 FROM graph_edges
                    WHERE dst_entity = old.dst_entity AND edge_type = 'mentions')
                AND NOT EXISTS (SELECT 1 FROM graph_edge_archive
                    WHERE dst_entity = old.dst_entity AND edge_type = 'mentions');
        END;
        CREATE TRIGGER graph_archive_forget AFTER DELETE ON memory_archive
        WHEN NOT EXISTS (SELECT 1 FROM memories WHERE id = old.id) BEGIN
            DELETE FROM graph_edge_archive
                WHERE src_memory = old.id OR dst_memory = old.id OR via_memory = old.id;
        END
        """,
    )


@migration
def m010_visual(conn: sqlite3.Connection) -> None:
    """The current visual context of each (user, persona): what the user shows or the
    scene, until the next update or its expiry; and the Character Card fields a persona
    imported from a card keeps (scenario, first message, examples, tags, the lorebook...)."""
    _script(
        conn,
        """
        ALTER TABLE personas ADD COLUMN card TEXT;  -- JSON: the card's `data`, or NULL
        CREATE TABLE visual_context (
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
            description TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',   -- JSON [tag, ...]
            updated_at REAL NOT NULL,
            expires_at REAL,                   -- NULL: until the next update
            memory_id TEXT,                    -- the episodic memory it was kept as
            PRIMARY KEY (user_id, persona_id)
        )
        """,
    )


@migration
def m011_memory_split(conn: sqlite3.Connection) -> None:
    """Decay and pruning touch narrow rows. A memory's embedding moves to
    `memory_vectors` (one row per embedded memory, live or archived, keyed by the
    memory's id, so a pruned memory's vector stays where it is until it is restored or
    forgotten), and the scores that decay and pruning read and rewrite (importance,
    accesses, the decay stamp, the pin) move to `memory_scores`, one narrow row per live
    memory beside the wide one. `memory_archive` keeps its copy of the scores but no
    longer of the vector. A pruned batch's graph edges are archived by one statement of
    the prune instead of a trigger per row."""
    _script(
        conn,
        """
        CREATE TABLE memory_vectors (
            memory_id TEXT PRIMARY KEY,       -- memories.id or memory_archive.id
            model TEXT NOT NULL,              -- the embedding model that made it
            embedding BLOB NOT NULL           -- float32, unit length
        );
        INSERT INTO memory_vectors (memory_id, model, embedding)
            SELECT id, coalesce(embedding_model, ''), embedding FROM memories
            WHERE embedding IS NOT NULL;
        INSERT INTO memory_vectors (memory_id, model, embedding)
            SELECT id, coalesce(embedding_model, ''), embedding FROM memory_archive
            WHERE embedding IS NOT NULL
            ON CONFLICT (memory_id) DO NOTHING;
        -- Clustered by owner: a persona's scores are one range of the table, which its
        -- decay and prune selection read without a second index.
        CREATE TABLE memory_scores (
            memory_id TEXT NOT NULL,          -- memories.id
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL,
            created_at REAL NOT NULL,         -- the memory's, which the age of a score needs
            importance REAL NOT NULL,
            access_count INTEGER NOT NULL DEFAULT 0,
            last_accessed_at REAL,
            decayed_at REAL,                  -- last time decay was applied
            pinned INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, persona_id, memory_id)
        ) WITHOUT ROWID;
        INSERT INTO memory_scores (memory_id, user_id, persona_id, created_at, importance,
                access_count, last_accessed_at, decayed_at, pinned)
            SELECT id, user_id, persona_id, created_at, importance, access_count,
                last_accessed_at, decayed_at, pinned
            FROM memories ORDER BY user_id, persona_id, id;
        -- The scores go with their memory, however it goes (deleted, pruned, its persona
        -- deleted).
        CREATE TRIGGER memory_scores_forget AFTER DELETE ON memories BEGIN
            DELETE FROM memory_scores WHERE user_id = old.user_id
                AND persona_id = old.persona_id AND memory_id = old.id;
        END;
        DROP INDEX memories_pending;
        ALTER TABLE memories DROP COLUMN embedding;
        ALTER TABLE memories DROP COLUMN embedding_model;
        ALTER TABLE memories DROP COLUMN importance;
        ALTER TABLE memories DROP COLUMN access_count;
        ALTER TABLE memories DROP COLUMN last_accessed_at;
        ALTER TABLE memories DROP COLUMN decayed_at;
        ALTER TABLE memories DROP COLUMN pinned;
        ALTER TABLE memory_archive DROP COLUMN embedding;
        ALTER TABLE memory_archive DROP COLUMN embedding_model;
        -- A memory deleted for good (not archived) takes its versions and vector along;
        -- an archived one forgotten for good (not restored) takes its edges and vector.
        DROP TRIGGER memory_versions_forget;
        CREATE TRIGGER memory_forget AFTER DELETE ON memories
        WHEN NOT EXISTS (SELECT 1 FROM memory_archive WHERE id = old.id) BEGIN
            DELETE FROM memory_versions WHERE memory_id = old.id;
            DELETE FROM memory_vectors WHERE memory_id = old.id;
        END;
        -- A pruned memory's edges are archived by the prune itself, for a whole batch in
        -- one statement (store.graph.archive_edges), no longer row by row.
        DROP TRIGGER graph_archive_edges;
        DROP TRIGGER graph_archive_forget;
        CREATE TRIGGER memory_archive_forget AFTER DELETE ON memory_archive
        WHEN NOT EXISTS (SELECT 1 FROM memories WHERE id = old.id) BEGIN
            DELETE FROM graph_edge_archive
                WHERE src_memory = old.id OR dst_memory = old.id OR via_memory = old.id;
            DELETE FROM memory_vectors WHERE memory_id = old.id;
        END
        """,
    )


@migration
def m012_archive_in_place(conn: sqlite3.Connection) -> None:
    """A pruned memory stays where it is: its row, its full-text entry and its vector are
    kept, and it is archived by taking its scores out of `memory_scores` (a live memory
    is one with a scores row) into a narrow `memory_archive` row, so a prune writes one
    narrow row per memory instead of copying and deleting the wide row, its full-text
    entry and its edges' references. Memories archived before go back into `memories`
    (new rowids, in the order they were created) without a scores row. Deleting a
    memory, live or archived, takes its versions, vector, archive row and archived edges."""
    _script(
        conn,
        """
        INSERT INTO memories (id, persona_id, user_id, content, memory_type, base_importance,
                emotional_valence, created_at, occurred_at, source, metadata,
                importance_breakdown, context, superseded_by)
            SELECT id, persona_id, user_id, content, memory_type, base_importance,
                emotional_valence, created_at, occurred_at, source, metadata,
                importance_breakdown, context, superseded_by
            FROM memory_archive ORDER BY created_at, id;
        DROP TRIGGER memory_forget;
        DROP TRIGGER memory_archive_forget;
        -- Narrow; its persona's rows go with the memory rows (memory_forget below), so
        -- no foreign key of its own. (A rowid table: a prune appends its rows in order.)
        CREATE TABLE memory_archive_v3 (
            id TEXT PRIMARY KEY,              -- memories.id
            prune_run_id TEXT NOT NULL REFERENCES prune_runs(id),
            archived_at REAL NOT NULL,
            prune_score REAL NOT NULL,
            reason TEXT NOT NULL,
            persona_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            importance REAL NOT NULL,         -- the scores it had, to be restored with
            access_count INTEGER NOT NULL,
            last_accessed_at REAL,
            decayed_at REAL,
            pinned INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO memory_archive_v3 SELECT id, prune_run_id, archived_at, prune_score,
                reason, persona_id, user_id, importance, access_count, last_accessed_at,
                decayed_at, pinned
            FROM memory_archive;
        DROP TABLE memory_archive;
        ALTER TABLE memory_archive_v3 RENAME TO memory_archive;
        CREATE INDEX memory_archive_run ON memory_archive (prune_run_id);
        CREATE TRIGGER memory_forget AFTER DELETE ON memories BEGIN
            DELETE FROM memory_versions WHERE memory_id = old.id;
            DELETE FROM memory_vectors WHERE memory_id = old.id;
            DELETE FROM memory_archive WHERE id = old.id;
            DELETE FROM graph_edge_archive
                WHERE src_memory = old.id OR dst_memory = old.id OR via_memory = old.id;
        END
        """,
    )
