"""PostgreSQL's schema migrations, named `pgNNN_…`, recorded in `_migrations` as SQLite's.

pg001 is the schema SQLite reaches through m001–m011, as plain tables: the same tables
and columns (REAL is `double precision`, INTEGER `bigint`, the integer primary keys
identity columns), with

- the full-text index as a generated `tsvector` column of `memories` (`fts`: content
  weighted A, the preceding memory's text B) under a GIN index, instead of FTS5 and its
  triggers;
- embeddings in pgvector `vector` columns (`memory_vectors.embedding` and the tiers'; any
  number of dimensions; an HNSW cosine index per dimension count in use, see
  `memories.ensure_vector_index`);
- a hidden `rowid` identity column on the tables whose SQLite statements order by rowid
  (personas, tier_knowledge, graph_aliases);
- the triggers of the graph, the version history and relationships as plpgsql, with the
  same behaviour;
- every foreign key DEFERRABLE, so `PRAGMA defer_foreign_keys` has a PostgreSQL form.

Migrations run under a session advisory lock, so instances starting together over one
database migrate it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

Migration = Callable[[psycopg.Connection[Any]], None]
MIGRATIONS: list[tuple[str, Migration]] = []
MIGRATION_LOCK = 0x70657273_6D637030  # pg_advisory_lock key while migrating ("persmcp0")


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def apply_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction (the
    connection is in autocommit mode)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations "
            "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
        applied = []
        for name, fn in MIGRATIONS:
            if name in done:
                continue
            with conn.transaction():
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (%s, %s)",
                    (name, time.time()),
                )
            applied.append(name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


FK = "DEFERRABLE INITIALLY IMMEDIATE"
PERSONA = f"REFERENCES personas(id) ON DELETE CASCADE {FK}"


@migration
def pg001_schema(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute(
        f"""
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE personas (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            personality_traits TEXT NOT NULL DEFAULT '[]',
            backstory TEXT NOT NULL DEFAULT '',
            topic_preferences TEXT NOT NULL DEFAULT '{{}}',
            model TEXT,
            builtin BIGINT NOT NULL DEFAULT 0,
            defaults TEXT NOT NULL DEFAULT '{{}}',
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            card TEXT,
            rowid BIGINT GENERATED ALWAYS AS IDENTITY
        );
        CREATE UNIQUE INDEX personas_owner_name ON personas (user_id, lower(name));
        CREATE TABLE persona_states (
            persona_id TEXT NOT NULL {PERSONA},
            user_id TEXT NOT NULL,
            social_energy DOUBLE PRECISION NOT NULL,
            available_time DOUBLE PRECISION NOT NULL,
            interaction_fatigue DOUBLE PRECISION NOT NULL,
            current_priority TEXT NOT NULL,
            last_interaction DOUBLE PRECISION,
            mood TEXT NOT NULL DEFAULT 'content',
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (persona_id, user_id)
        );
        CREATE TABLE user_state (
            user_id TEXT PRIMARY KEY,
            active_persona_id TEXT REFERENCES personas(id) ON DELETE SET NULL {FK},
            seeded_at DOUBLE PRECISION,
            updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            transport TEXT NOT NULL,
            active_persona_id TEXT REFERENCES personas(id) ON DELETE SET NULL {FK},
            created_at DOUBLE PRECISION NOT NULL,
            last_active_at DOUBLE PRECISION NOT NULL,
            closed_at DOUBLE PRECISION
        );
        CREATE INDEX sessions_open ON sessions (closed_at, last_active_at);
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            title TEXT,
            status TEXT NOT NULL DEFAULT 'active',
            started_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            turn_count BIGINT NOT NULL DEFAULT 0,
            summary TEXT NOT NULL DEFAULT '',
            summary_upto BIGINT NOT NULL DEFAULT 0,
            summary_source TEXT,
            last_continue_score DOUBLE PRECISION
        );
        CREATE INDEX conversations_current
            ON conversations (user_id, persona_id, status, updated_at);
        CREATE TABLE messages (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE {FK},
            seq BIGINT NOT NULL,
            turn_number BIGINT NOT NULL,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            model TEXT,
            tokens_used BIGINT,
            processing_time DOUBLE PRECISION,
            continue_score DOUBLE PRECISION,
            response_type TEXT,
            UNIQUE (conversation_id, seq)
        );
        CREATE TABLE memories (
            rid BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            persona_id TEXT NOT NULL {PERSONA},
            user_id TEXT NOT NULL,
            content TEXT NOT NULL,
            memory_type TEXT NOT NULL,
            base_importance DOUBLE PRECISION NOT NULL,
            emotional_valence DOUBLE PRECISION NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            occurred_at DOUBLE PRECISION NOT NULL,
            source TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{{}}',
            importance_breakdown TEXT,
            context TEXT NOT NULL DEFAULT '',
            superseded_by TEXT,
            fts tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english'::regconfig, content), 'A')
                || setweight(to_tsvector('english'::regconfig, context), 'B')
            ) STORED
        );
        CREATE INDEX memories_owner ON memories (user_id, persona_id, created_at);
        CREATE INDEX memories_owner_rid ON memories (user_id, persona_id, rid);
        CREATE INDEX memories_fts ON memories USING gin (fts);
        CREATE INDEX memories_episodes ON memories (persona_id, occurred_at, rid)
            WHERE memory_type = 'episode';
        -- The scores decay and pruning rewrite, one narrow row per live memory (m011).
        CREATE TABLE memory_scores (
            memory_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            importance DOUBLE PRECISION NOT NULL,
            access_count BIGINT NOT NULL DEFAULT 0,
            last_accessed_at DOUBLE PRECISION,
            decayed_at DOUBLE PRECISION,
            pinned BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, persona_id, memory_id)
        );
        -- One vector per embedded memory, live or archived, by the memory's id (m011).
        CREATE TABLE memory_vectors (
            memory_id TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            embedding vector NOT NULL
        );
        CREATE TABLE config (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (scope, key)
        );
        CREATE TABLE prune_runs (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT,
            strategy TEXT NOT NULL,
            trigger TEXT NOT NULL,
            target_count BIGINT,
            status TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            pruned_count BIGINT NOT NULL DEFAULT 0,
            restored_count BIGINT NOT NULL DEFAULT 0,
            seconds DOUBLE PRECISION
        );
        CREATE INDEX prune_runs_user ON prune_runs (user_id, started_at);
        CREATE TABLE memory_archive (
            id TEXT PRIMARY KEY,
            prune_run_id TEXT NOT NULL REFERENCES prune_runs(id) {FK},
            archived_at DOUBLE PRECISION NOT NULL,
            prune_score DOUBLE PRECISION NOT NULL,
            reason TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            user_id TEXT NOT NULL,
            content TEXT NOT NULL,
            memory_type TEXT NOT NULL,
            importance DOUBLE PRECISION NOT NULL,
            base_importance DOUBLE PRECISION NOT NULL,
            emotional_valence DOUBLE PRECISION NOT NULL,
            access_count BIGINT NOT NULL,
            last_accessed_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            occurred_at DOUBLE PRECISION NOT NULL,
            source TEXT NOT NULL,
            metadata TEXT NOT NULL,
            importance_breakdown TEXT,
            context TEXT NOT NULL,
            decayed_at DOUBLE PRECISION,
            pinned BIGINT NOT NULL DEFAULT 0,
            superseded_by TEXT
        );
        CREATE INDEX memory_archive_run ON memory_archive (prune_run_id);
        CREATE INDEX memory_archive_owner ON memory_archive (user_id, persona_id);
        CREATE TABLE decay_runs (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            trigger TEXT NOT NULL,
            user_id TEXT,
            persona_id TEXT,
            mode TEXT NOT NULL,
            rate DOUBLE PRECISION NOT NULL,
            hours DOUBLE PRECISION,
            ran_at DOUBLE PRECISION NOT NULL,
            decayed BIGINT NOT NULL,
            seconds DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE memory_versions (
            memory_id TEXT NOT NULL,
            version BIGINT NOT NULL,
            user_id TEXT NOT NULL,
            content TEXT NOT NULL,
            importance DOUBLE PRECISION NOT NULL,
            metadata TEXT NOT NULL,
            changed_at DOUBLE PRECISION NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (memory_id, version)
        );
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            scopes TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL UNIQUE,
            created_at DOUBLE PRECISION NOT NULL,
            last_used_at DOUBLE PRECISION,
            revoked_at DOUBLE PRECISION
        );
        CREATE INDEX tokens_user ON tokens (user_id);
        CREATE TABLE relationships (
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            other_id TEXT NOT NULL,
            affinity DOUBLE PRECISION NOT NULL,
            trust DOUBLE PRECISION NOT NULL,
            familiarity DOUBLE PRECISION NOT NULL,
            interaction_count BIGINT NOT NULL,
            first_interaction DOUBLE PRECISION,
            last_interaction DOUBLE PRECISION,
            PRIMARY KEY (user_id, persona_id, other_id)
        );
        CREATE TABLE relationship_history (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            other_id TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            affinity_delta DOUBLE PRECISION NOT NULL,
            trust_delta DOUBLE PRECISION NOT NULL,
            familiarity_delta DOUBLE PRECISION NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX relationship_history_pair
            ON relationship_history (user_id, persona_id, other_id, id);
        CREATE INDEX relationship_history_other ON relationship_history (other_id);
        CREATE INDEX relationships_other ON relationships (other_id);
        CREATE TABLE moods (
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            valence DOUBLE PRECISION NOT NULL,
            arousal DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (user_id, persona_id)
        );
        CREATE TABLE mood_history (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            at DOUBLE PRECISION NOT NULL,
            valence DOUBLE PRECISION NOT NULL,
            arousal DOUBLE PRECISION NOT NULL,
            intensity DOUBLE PRECISION NOT NULL,
            label TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX mood_history_persona ON mood_history (user_id, persona_id, id);
        CREATE TABLE simulations (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            personas TEXT NOT NULL,
            remaining TEXT NOT NULL,
            max_turns BIGINT NOT NULL,
            seed BIGINT NOT NULL,
            status TEXT NOT NULL,
            turns BIGINT NOT NULL DEFAULT 0,
            end_reason TEXT,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION
        );
        CREATE INDEX simulations_user ON simulations (user_id, started_at);
        CREATE TABLE simulation_turns (
            simulation_id TEXT NOT NULL REFERENCES simulations (id) ON DELETE CASCADE {FK},
            turn BIGINT NOT NULL,
            speaker_id TEXT NOT NULL,
            speaker TEXT NOT NULL,
            text TEXT NOT NULL,
            continue_score DOUBLE PRECISION NOT NULL,
            model TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (simulation_id, turn)
        );
        CREATE TABLE tier_segments (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            summary TEXT NOT NULL,
            keywords TEXT NOT NULL,
            embedding vector,
            visits BIGINT NOT NULL DEFAULT 0,
            pages BIGINT NOT NULL DEFAULT 0,
            analyzed_pages BIGINT NOT NULL DEFAULT 0,
            heat DOUBLE PRECISION NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            last_visit_at DOUBLE PRECISION NOT NULL,
            promoted_at DOUBLE PRECISION
        );
        CREATE INDEX tier_segments_owner ON tier_segments (user_id, persona_id, heat);
        CREATE TABLE tier_pages (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            seq BIGINT NOT NULL,
            user_input TEXT NOT NULL,
            agent_response TEXT NOT NULL,
            timestamp DOUBLE PRECISION NOT NULL,
            meta_data TEXT NOT NULL DEFAULT '{{}}',
            embedding vector,
            segment_id TEXT REFERENCES tier_segments(id) ON DELETE CASCADE {FK},
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX tier_pages_short ON tier_pages (user_id, persona_id, segment_id, seq);
        CREATE INDEX tier_pages_segment ON tier_pages (segment_id);
        CREATE TABLE tier_knowledge (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            kind TEXT NOT NULL CHECK (kind IN ('user', 'assistant')),
            text TEXT NOT NULL,
            embedding vector,
            source_segment_id TEXT,
            extractor TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            rowid BIGINT GENERATED ALWAYS AS IDENTITY,
            UNIQUE (user_id, persona_id, kind, text)
        );
        CREATE INDEX tier_knowledge_owner ON tier_knowledge (user_id, persona_id, kind, created_at);
        CREATE TABLE tier_profiles (
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            profile TEXT NOT NULL,
            extractor TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (user_id, persona_id)
        );
        CREATE TABLE graph_entities (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            relation TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX graph_entities_owner ON graph_entities (user_id, persona_id);
        CREATE TABLE graph_aliases (
            persona_id TEXT NOT NULL {PERSONA},
            norm TEXT NOT NULL,
            entity_id TEXT NOT NULL REFERENCES graph_entities(id) ON DELETE CASCADE {FK},
            alias TEXT NOT NULL,
            user_id TEXT NOT NULL,
            rowid BIGINT GENERATED ALWAYS AS IDENTITY,
            PRIMARY KEY (persona_id, norm)
        );
        CREATE INDEX graph_aliases_entity ON graph_aliases (entity_id);
        CREATE TABLE graph_edges (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            edge_type TEXT NOT NULL CHECK (edge_type IN
                ('next', 'mentions', 'relates_to', 'supersedes', 'part_of')),
            src_memory TEXT REFERENCES memories(id) ON DELETE CASCADE {FK},
            src_entity TEXT REFERENCES graph_entities(id) ON DELETE CASCADE {FK},
            dst_memory TEXT REFERENCES memories(id) ON DELETE CASCADE {FK},
            dst_entity TEXT REFERENCES graph_entities(id) ON DELETE CASCADE {FK},
            via_memory TEXT REFERENCES memories(id) ON DELETE CASCADE {FK},
            label TEXT,
            weight DOUBLE PRECISION NOT NULL DEFAULT 1.0,
            created_at DOUBLE PRECISION NOT NULL,
            src TEXT GENERATED ALWAYS AS (coalesce(src_memory, src_entity)) STORED,
            dst TEXT GENERATED ALWAYS AS (coalesce(dst_memory, dst_entity)) STORED,
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
        CREATE TABLE graph_edge_archive (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            edge_type TEXT NOT NULL,
            src_memory TEXT,
            src_entity TEXT REFERENCES graph_entities(id) ON DELETE CASCADE {FK},
            dst_memory TEXT,
            dst_entity TEXT REFERENCES graph_entities(id) ON DELETE CASCADE {FK},
            via_memory TEXT,
            label TEXT,
            weight DOUBLE PRECISION NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX graph_edge_archive_src ON graph_edge_archive (src_memory);
        CREATE INDEX graph_edge_archive_dst ON graph_edge_archive (dst_memory);
        CREATE INDEX graph_edge_archive_via ON graph_edge_archive (via_memory);
        CREATE INDEX graph_edge_archive_entity ON graph_edge_archive (dst_entity);
        CREATE TABLE visual_context (
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL {PERSONA},
            description TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            updated_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION,
            memory_id TEXT,
            PRIMARY KEY (user_id, persona_id)
        );
        """
    )
    conn.execute(_TRIGGERS)
    conn.execute(
        "CREATE INDEX memory_vectors_384 ON memory_vectors USING hnsw "
        "((embedding::vector(384)) vector_cosine_ops) WHERE vector_dims(embedding) = 384"
    )


# SQLite's triggers (as m011 leaves them), as plpgsql with the same conditions.
_TRIGGERS = """
-- A memory deleted for good (not archived) takes its versions and vector along.
CREATE FUNCTION memory_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM memory_archive WHERE id = OLD.id) THEN
        DELETE FROM memory_versions WHERE memory_id = OLD.id;
        DELETE FROM memory_vectors WHERE memory_id = OLD.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER memory_forget AFTER DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION memory_forget();

-- The scores go with their memory, however it goes (deleted, pruned, its persona deleted).
CREATE FUNCTION memory_scores_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM memory_scores WHERE user_id = OLD.user_id
        AND persona_id = OLD.persona_id AND memory_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER memory_scores_forget AFTER DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION memory_scores_forget();

CREATE FUNCTION relationships_other_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM relationships WHERE other_id = OLD.id;
    DELETE FROM relationship_history WHERE other_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER relationships_other_deleted AFTER DELETE ON personas
    FOR EACH ROW EXECUTE FUNCTION relationships_other_deleted();

-- Before an episode goes, its neighbours in the `next` chain are joined up (unless its
-- persona is going too). (A pruned memory's edges are archived by the prune itself,
-- store.graph.archive_edges.)
CREATE FUNCTION graph_next_bridge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.memory_type = 'episode'
            AND EXISTS (SELECT 1 FROM personas WHERE id = OLD.persona_id) THEN
        INSERT INTO graph_edges (user_id, persona_id, edge_type, src_memory,
            dst_memory, weight, created_at)
        SELECT a.user_id, a.persona_id, 'next', a.src_memory, b.dst_memory, 1.0,
            a.created_at
        FROM graph_edges a JOIN graph_edges b
            ON b.edge_type = 'next' AND b.src_memory = OLD.id
        WHERE a.edge_type = 'next' AND a.dst_memory = OLD.id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER graph_next_bridge BEFORE DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION graph_next_bridge();

CREATE FUNCTION graph_forget_entity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM graph_entities WHERE id = OLD.dst_entity
        AND NOT EXISTS (SELECT 1 FROM graph_edges
            WHERE dst_entity = OLD.dst_entity AND edge_type = 'mentions')
        AND NOT EXISTS (SELECT 1 FROM graph_edge_archive
            WHERE dst_entity = OLD.dst_entity AND edge_type = 'mentions');
    RETURN NULL;
END $$;
CREATE TRIGGER graph_forget_entity AFTER DELETE ON graph_edges
    FOR EACH ROW WHEN (OLD.edge_type = 'mentions') EXECUTE FUNCTION graph_forget_entity();

-- An archived memory forgotten for good (not restored) takes its edges and vector.
CREATE FUNCTION memory_archive_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM memories WHERE id = OLD.id) THEN
        DELETE FROM graph_edge_archive
            WHERE src_memory = OLD.id OR dst_memory = OLD.id OR via_memory = OLD.id;
        DELETE FROM memory_vectors WHERE memory_id = OLD.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER memory_archive_forget AFTER DELETE ON memory_archive
    FOR EACH ROW EXECUTE FUNCTION memory_archive_forget();
"""


@migration
def pg002_fleet(conn: psycopg.Connection[Any]) -> None:
    """What several instances over one database share besides the data: the record of
    background job runs (`store.job_runs`), events too large for a NOTIFY payload
    (`store.notify`), kept a few minutes, and the numbers every NOTIFY carries."""
    conn.execute(
        """
        CREATE TABLE job_runs (
            name TEXT NOT NULL,
            ran_at DOUBLE PRECISION NOT NULL,
            instance TEXT NOT NULL,
            seconds DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (name, ran_at)
        );
        CREATE TABLE fleet_messages (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            payload TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX fleet_messages_created ON fleet_messages (created_at);
        CREATE SEQUENCE fleet_seq;
        """
    )


@migration
def pg003_archive_in_place(conn: psycopg.Connection[Any]) -> None:
    """SQLite's m012_archive_in_place: a pruned memory keeps its `memories` row (and its
    full text and vector) and is archived by moving its scores into a narrow
    `memory_archive` row; deleting a memory, live or archived, takes its versions,
    vector, archive row and archived edges."""
    conn.execute(
        """
        INSERT INTO memories (id, persona_id, user_id, content, memory_type, base_importance,
                emotional_valence, created_at, occurred_at, source, metadata,
                importance_breakdown, context, superseded_by)
            SELECT id, persona_id, user_id, content, memory_type, base_importance,
                emotional_valence, created_at, occurred_at, source, metadata,
                importance_breakdown, context, superseded_by
            FROM memory_archive ORDER BY created_at, id;
        DROP TRIGGER memory_archive_forget ON memory_archive;
        DROP FUNCTION memory_archive_forget();
        ALTER TABLE memory_archive DROP COLUMN content, DROP COLUMN memory_type,
            DROP COLUMN base_importance, DROP COLUMN emotional_valence,
            DROP COLUMN created_at, DROP COLUMN occurred_at, DROP COLUMN source,
            DROP COLUMN metadata, DROP COLUMN importance_breakdown, DROP COLUMN context,
            DROP COLUMN superseded_by;
        DROP INDEX memory_archive_owner;
        CREATE OR REPLACE FUNCTION memory_forget() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM memory_versions WHERE memory_id = OLD.id;
            DELETE FROM memory_vectors WHERE memory_id = OLD.id;
            DELETE FROM memory_archive WHERE id = OLD.id;
            DELETE FROM graph_edge_archive
                WHERE src_memory = OLD.id OR dst_memory = OLD.id OR via_memory = OLD.id;
            RETURN NULL;
        END $$;
        """
    )
