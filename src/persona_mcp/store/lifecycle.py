"""Decay, pruning, archive and restore in SQL. Plain functions over a connection.

Decay is one UPDATE per pass over the narrow `memory_scores` rows. Pruning archives
memories in place, a bounded batch at a time in one transaction each, so a pass cut
short leaves every memory either live or archived (and restorable): a memory's scores
move from `memory_scores` to a narrow `memory_archive` row, and a memory without a
scores row is not live (`store.memories.ROWS` joins the two). Its row, its full-text
entry and its vector stay where they are, so neither prune nor restore copies them;
so do its graph edges (hidden while it is archived), and the `next` chain is joined up
around it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from persona_mcp.store import graph, memories
from persona_mcp.store.api import Connection, json_values

STEP_HOURS = 24.0  # the `step` mode drops importance once per full day
PROTECT_IMPORTANCE = 0.8
PROTECT_ACCESS = 8
MIN_KEEP = 10

# The scores an archived memory keeps in its archive row, to be restored with.
_SCORES = "importance, access_count, last_accessed_at, decayed_at, pinned"


# -- decay ----------------------------------------------------------------------------


def _decay_expression(mode: str, h: str) -> str:
    """New importance from :rate (per hour), `h` (hours) and the row's access count."""
    return {
        "linear": f"importance - :rate * {h}",
        "exponential": f"importance * exp(-:rate * {h})",
        "logarithmic": f"importance - :rate * ln(1 + {h})",
        "step": f"importance - :rate * {STEP_HOURS} * floor({h} / {STEP_HOURS})",
        # Each access slows ageing: 8 accesses make a memory age 5 times slower.
        "access_based": f"importance * exp(-:rate * {h} / (1 + 0.5 * access_count))",
    }[mode]


def decay(
    conn: Connection,
    *,
    mode: str,
    rate: float,
    floor: float,
    now: float,
    hours: float | None = None,
    user_id: str | None = None,
    persona_id: str | None = None,
) -> int:
    """Apply decay; `hours` forces that much elapsed time, else each memory's own time since
    it was last decayed. Importance never falls below `floor`. Returns rows changed."""
    h = ":hours" if hours is not None else "((:now - coalesce(decayed_at, created_at)) / 3600.0)"
    # `step` only moves decayed_at by whole steps, so partial days keep accumulating.
    if mode == "step" and hours is None:
        stamp = (
            f"coalesce(decayed_at, created_at) + floor({h} / {STEP_HOURS}) * {STEP_HOURS * 3600}"
        )
    else:
        stamp = ":now"
    scope = ""
    if user_id is not None:
        scope += " AND user_id = :user_id"
    if persona_id is not None:
        scope += " AND persona_id = :persona_id"
    expr = _decay_expression(mode, h)
    # Every expression reads the row as it was before this UPDATE.
    sql = f"""
        UPDATE memory_scores SET importance = max(:floor, {expr}), decayed_at = {stamp}
        WHERE importance > :floor AND pinned = 0 {scope} AND {expr} < importance
    """
    cur = conn.execute(
        sql,
        {
            "rate": rate,
            "floor": floor,
            "now": now,
            "hours": hours,
            "user_id": user_id,
            "persona_id": persona_id,
        },
    )
    return cur.rowcount


def record_decay(conn: Connection, **run: Any) -> None:
    conn.execute(
        """INSERT INTO decay_runs (trigger, user_id, persona_id, mode, rate, hours, ran_at,
               decayed, seconds)
           VALUES (:trigger, :user_id, :persona_id, :mode, :rate, :hours, :ran_at, :decayed,
               :seconds)""",
        run,
    )


def decay_totals(conn: Connection) -> dict[str, Any]:
    runs, decayed, last = conn.execute(
        "SELECT count(*), coalesce(sum(decayed), 0), max(ran_at) FROM decay_runs"
    ).fetchone()
    return {"runs": runs, "decayed_total": decayed, "last_run_at": last}


# -- pruning --------------------------------------------------------------------------


def _score_expression(strategy: str) -> str:
    access = f"min(access_count / {float(PROTECT_ACCESS)}, 1.0)"
    age_days = "(:now - coalesce(last_accessed_at, created_at)) / 86400.0"
    return {
        "importance_only": "importance",
        "importance_access": f"0.7 * importance + 0.3 * {access}",
        "importance_access_age": (
            f"0.6 * importance + 0.25 * {access} + 0.15 * exp(-{age_days} / 30.0)"
        ),
    }[strategy]


@dataclass(frozen=True)
class Candidate:
    rid: int
    id: str
    content: str
    importance: float
    access_count: int
    created_at: float
    score: float


@dataclass(frozen=True)
class Selection:
    total: int
    protected: int
    candidates: list[Candidate]  # prune order: lowest score first
    wanted: int  # how many a prune takes


def reason(strategy: str, score: str, target_count: int | None, below: float) -> str:
    """Why a prune chose a memory (`score` as printed, three decimals)."""
    if target_count is not None:
        return f"among the lowest {strategy} scores ({score}) above the target count"
    return f"{strategy} score {score} is below {below}"


# A prune of many rows sorts only those likely to be taken: one prunable row in
# `_SAMPLE` (chosen at random in the pass that counts them) estimates the score of the
# cut, and the rows at or below a `cap` a little above it are sorted first; if they are
# too few, the rest are sorted after them. Exact either way, as every row above the cap
# sorts after every row at or below it. (SQLite's ORDER BY ... LIMIT keeps its rows in a
# B-tree: at 100k rows the sort is most of a prune.)
_SAMPLE = 16
_SAMPLED_FROM = 4096  # prunable rows from which a cap is worth its pass


def _cap_rank(expected: float) -> int:
    """The rank in the sample of the cap, for a cut expected at rank `expected`: with
    room for the sample's error (about four standard deviations)."""
    return math.ceil(1.1 * expected + 4 * math.sqrt(expected) + 8)


@dataclass(frozen=True)
class _Plan:
    total: int
    protected: int
    wanted: int  # how many to take, lowest scores first
    cap: float | None  # the score at or below which the taken rows very likely are
    scored: str  # SELECT of the persona's prunable rows with their `score` ({part} to fill)

    def rows(self, conn: Connection, sql: str, params: dict[str, Any]) -> list[Any]:
        """Run `sql` (a statement over the plan's rows as `{rows}`) on the lowest
        `wanted` scores, through the cap when there is one."""
        if self.cap is None:
            return conn.execute(sql.format(rows=self.scored.format(part="")), params).fetchall()
        params = params | {"cap": self.cap}
        low = self.scored.format(part="AND score <= :cap")
        out = conn.execute(sql.format(rows=low), params).fetchall()
        if len(out) < self.wanted:
            high = self.scored.format(part="AND score > :cap")
            out += conn.execute(
                sql.format(rows=high), params | {"wanted": self.wanted - len(out)}
            ).fetchall()
        return out


def _plan(
    conn: Connection,
    user_id: str,
    persona_id: str,
    strategy: str,
    now: float,
    *,
    target_count: int | None,
    limit: int | None,
) -> _Plan:
    """How many of a persona's memories a prune takes as the rows are now, and the query
    that scores the ones the protection rules let go (:user, :persona, :now, :below,
    :wanted)."""
    score = _score_expression(strategy)
    prunable = (
        f"importance < {PROTECT_IMPORTANCE} AND access_count < {PROTECT_ACCESS} AND pinned = 0"
    )
    sampled = "NULL"  # PostgreSQL sorts top-N with a heap: no cap
    if conn.dialect == "sqlite" and target_count is not None:
        sampled = (
            f"json_group_array({score}) FILTER (WHERE {prunable} AND random() % {_SAMPLE} = 0)"
        )
    total, protected, sample = conn.execute(
        f"""SELECT count(*), coalesce(sum(CASE WHEN {prunable} THEN 0 ELSE 1 END), 0), {sampled}
            FROM memory_scores WHERE user_id = :user AND persona_id = :persona""",
        {"user": user_id, "persona": persona_id, "now": now},
    ).fetchone()
    total, protected = int(total), int(protected)
    keep = max(MIN_KEEP, target_count if target_count is not None else 0)
    removable = max(0, min(total - keep, total - protected))
    if target_count is None:
        wanted = removable
        threshold = " AND score < :below"
    else:
        wanted = min(removable, max(0, total - target_count))
        threshold = ""
    if limit is not None:
        wanted = min(wanted, limit)
    cap = None
    if wanted and sample is not None and total - protected >= _SAMPLED_FROM:
        scores = sorted(json.loads(sample))
        rank = _cap_rank(wanted * len(scores) / (total - protected))
        cap = scores[rank - 1] if rank <= len(scores) else None
    # The persona's range of narrow rows (ties: the oldest first).
    scored = f"""SELECT * FROM (
            SELECT memory_id AS id, importance, access_count, last_accessed_at, decayed_at,
                   pinned, created_at, {score} AS score
            FROM memory_scores
            WHERE user_id = :user AND persona_id = :persona AND {prunable}
        ) AS scored WHERE 1 = 1 {threshold} {{part}}
        ORDER BY score, created_at, id LIMIT :wanted"""
    return _Plan(total, protected, wanted, cap, scored)


def select(
    conn: Connection,
    user_id: str,
    persona_id: str,
    strategy: str,
    now: float,
    *,
    target_count: int | None,
    prune_below: float,
    limit: int | None = None,
    content: bool = False,
) -> Selection:
    """What a prune would remove, lowest value first, within the protection rules (with
    each memory's text when `content`; without, no memory row is read)."""
    plan = _plan(conn, user_id, persona_id, strategy, now, target_count=target_count, limit=limit)
    if plan.wanted == 0:
        return Selection(plan.total, plan.protected, [], 0)
    # The chosen ones' rowids come from the index on ids, their text (if wanted) from
    # their rows.
    text = "m.content" if content else "''"
    rows = plan.rows(
        conn,
        f"""SELECT m.rid, c.id, {text}, c.importance, c.access_count, c.created_at, c.score
            FROM ({{rows}}) AS c JOIN memories m ON m.id = c.id""",
        {"user": user_id, "persona": persona_id, "now": now, "below": prune_below,
         "wanted": plan.wanted},
    )  # fmt: skip
    chosen = [Candidate(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]
    chosen.sort(key=lambda c: (c.score, c.created_at, c.id))  # (a sort in SQL costs more)
    return Selection(plan.total, plan.protected, chosen, len(chosen))


@dataclass(frozen=True)
class Archived:
    total: int  # the persona's memories before this batch
    protected: int
    ids: list[str]  # archived, lowest score first


def archive_lowest(
    conn: Connection,
    run: dict[str, Any],
    strategy: str,
    now: float,
    *,
    target_count: int | None,
    prune_below: float,
    limit: int,
    first: bool,
) -> Archived:
    """Archive up to `limit` of a persona's memories with the lowest scores that a prune
    takes as the rows are now (the protection rules, the target, the floor), in place,
    in the caller's transaction: their scores move into the archive with the prune's
    score and reason; their graph edges stay, hidden while they are archived, and the
    `next` chain is bridged around them (`graph.detach`). Chosen and archived
    by set-based statements. The `first` batch records the run (`start_run`), unless it
    finds nothing to take."""
    user_id, persona_id, run_id = run["user_id"], run["persona_id"], run["id"]
    plan = _plan(conn, user_id, persona_id, strategy, now, target_count=target_count, limit=limit)
    if plan.wanted == 0:
        return Archived(plan.total, plan.protected, [])
    if first:
        start_run(conn, run)
    prefix, _, suffix = reason(strategy, "\0", target_count, prune_below).partition("\0")
    if conn.dialect == "postgresql":
        printed = "to_char(c.score, 'FM990.000')"
    else:
        printed = "printf('%.3f', c.score)"
    archived = plan.rows(
        conn,
        f"""INSERT INTO memory_archive (id, prune_run_id, archived_at, prune_score, reason,
                persona_id, user_id, {_SCORES})
            SELECT c.id, :run, :at, c.score, :prefix || {printed} || :suffix, :persona, :user,
                {_prefixed("c.", _SCORES)}
            FROM ({{rows}}) AS c
            RETURNING id, prune_score""",
        {"user": user_id, "persona": persona_id, "now": now, "below": prune_below,
         "wanted": plan.wanted, "run": run_id, "at": now, "prefix": prefix, "suffix": suffix},
    )  # fmt: skip
    ids = [r[0] for r in sorted(archived, key=lambda r: (r[1], r[0]))]
    if not ids:
        if first:
            conn.execute("DELETE FROM prune_runs WHERE id = ?", (run_id,))
        return Archived(plan.total, plan.protected, [])
    chosen = json.dumps(ids)
    graph.detach(conn, ids)
    conn.execute(
        f"""DELETE FROM memory_scores WHERE user_id = ? AND persona_id = ?
            AND memory_id IN (SELECT value FROM {json_values(conn, "?")})""",
        (user_id, persona_id, chosen),
    )
    conn.execute(
        "UPDATE prune_runs SET pruned_count = pruned_count + ? WHERE id = ?", (len(ids), run_id)
    )
    return Archived(plan.total, plan.protected, ids)


def start_run(conn: Connection, run: dict[str, Any]) -> None:
    conn.execute(
        """INSERT INTO prune_runs (id, user_id, persona_id, strategy, trigger, target_count,
               status, started_at)
           VALUES (:id, :user_id, :persona_id, :strategy, :trigger, :target_count, 'running',
               :started_at)""",
        run,
    )


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(alias + column.strip() for column in columns.split(","))


def finish_run(conn: Connection, run_id: str, now: float, seconds: float) -> None:
    conn.execute(
        "UPDATE prune_runs SET status = 'complete', finished_at = ?, seconds = ? WHERE id = ?",
        (now, seconds, run_id),
    )


def mark_interrupted(conn: Connection) -> int:
    """Runs a killed process left 'running': what they archived stays archived."""
    return conn.execute(
        "UPDATE prune_runs SET status = 'interrupted' WHERE status = 'running'"
    ).rowcount


def archived_ids(
    conn: Connection, user_id: str, *, run_id: str | None, ids: Sequence[str] | None
) -> list[str]:
    if run_id is not None:
        rows = conn.execute(
            "SELECT id FROM memory_archive WHERE user_id = ? AND prune_run_id = ?",
            (user_id, run_id),
        ).fetchall()
    else:
        assert ids is not None
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT id FROM memory_archive WHERE user_id = ? AND id IN ({marks})",
            (user_id, *ids),
        ).fetchall()
    return [r[0] for r in rows]


def restore(conn: Connection, ids: Sequence[str]) -> list[tuple[int, str, str]]:
    """Make archived memories live again: their scores go back to `memory_scores` (their
    rows, rowids, full-text entries and vectors never left). Returns (rid, id, persona
    id) by rid."""
    if not ids:
        return []
    keys = json.dumps(list(ids))
    chosen = f"SELECT value FROM {json_values(conn, ':ids')}"
    each = f"{json_values(conn, ':ids')} {memories.ids_first(conn)}"
    conn.execute(
        f"""INSERT INTO memory_scores (memory_id, user_id, persona_id, created_at, {_SCORES})
            SELECT a.id, a.user_id, a.persona_id, m.created_at, {_prefixed("a.", _SCORES)}
            FROM {each} memory_archive a ON a.id = j.value JOIN memories m ON m.id = a.id""",
        {"ids": keys},
    )
    conn.execute(
        f"""UPDATE prune_runs SET restored_count = restored_count + back.n
            FROM (SELECT prune_run_id AS run, count(*) AS n FROM memory_archive
                  WHERE id IN ({chosen}) GROUP BY prune_run_id) AS back
            WHERE prune_runs.id = back.run""",
        {"ids": keys},
    )
    conn.execute(f"DELETE FROM memory_archive WHERE id IN ({chosen})", {"ids": keys})
    rows = conn.execute(
        f"""SELECT m.rid, m.id, m.persona_id FROM {each} memories m ON m.id = j.value
            ORDER BY m.rid""",
        {"ids": keys},
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def prune_totals(conn: Connection, user_id: str) -> dict[str, Any]:
    runs, pruned, restored, seconds = conn.execute(
        """SELECT count(*), coalesce(sum(pruned_count), 0), coalesce(sum(restored_count), 0),
                  coalesce(sum(seconds), 0) FROM prune_runs WHERE user_id = ?""",
        (user_id,),
    ).fetchone()
    archived = conn.execute(
        "SELECT count(*) FROM memory_archive WHERE user_id = ?", (user_id,)
    ).fetchone()[0]
    last = conn.execute(
        "SELECT * FROM prune_runs WHERE user_id = ? ORDER BY started_at DESC LIMIT 1", (user_id,)
    ).fetchone()
    by_trigger = dict(
        conn.execute(
            """SELECT trigger, coalesce(sum(pruned_count), 0) FROM prune_runs WHERE user_id = ?
               GROUP BY trigger""",
            (user_id,),
        ).fetchall()
    )
    return {
        "runs": runs,
        "pruned_total": pruned,
        "restored_total": restored,
        "archived": archived,
        "seconds_total": round(seconds, 4),
        "pruned_by_trigger": by_trigger,
        "last_run": dict(last) if last else None,
    }
