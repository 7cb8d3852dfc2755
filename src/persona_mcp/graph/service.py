"""The knowledge graph: ingestion of free text, neighbours, entities, graph-aware search.

Ingestion reads a text into typed memories (episode, psyche, goal), the entities they
name and the links between them, with the configured language model's structured
output when there is one and by rules and named-entity recognition offline; `extractor`
says which. The memories, the entities and every edge are written in one transaction.

Entities are resolved against what the persona's graph already knows, by alias: a name
("Helen") or a family word ("Mom", "my mother", which stand for the relation "mother").
A text that names both at once ("my mother Helen", "Helen, my mom") joins them: the
entity gets both aliases, and two entities that turn out to be one are merged.

Search expansion spreads activation from the best hits along their edges: a memory an
edge reaches gains the hit's score times `HOP_DECAY` times the edge's weight (summed over
the hits that reach it), so a hit the graph connects to other good hits rises and a
memory no words matched can enter the results. Through an entity, the memories that
mention it nearest in time are reached, with less weight the more memories mention it
(one mentioned by more than `MAX_ENTITY_FANOUT` is too common to say anything and is not
followed).
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from persona_mcp.clock import Clock
from persona_mcp.errors import NotFound, Unavailable
from persona_mcp.graph import aliases
from persona_mcp.graph.extract import Entity, Extraction, extract
from persona_mcp.graph.llm_extract import extract_with_llm
from persona_mcp.graph.ner import Recognizer
from persona_mcp.llm.base import LLMProvider
from persona_mcp.memory.service import Hit, MemoryInput, MemoryService, Stored
from persona_mcp.store import graph as repo
from persona_mcp.store import memories as memory_repo
from persona_mcp.store.api import Connection, Database
from persona_mcp.store.graph import EdgeRow, EntityRow, NewEdge
from persona_mcp.store.memories import Filters, MemoryRow
from persona_mcp.store.personas import PersonaRow

log = logging.getLogger(__name__)

HOP_DECAY = 0.5
# Tuned on LoCoMo's development split (benchmarks/graph.py): neighbouring episodes help
# a little, so `next` counts, but less than an edge that says the two are about one thing.
EDGE_WEIGHTS = {"supersedes": 1.0, "part_of": 0.9, "mentions": 0.8, "relates_to": 0.7, "next": 0.15}
EXPAND_SEEDS = 10  # hits whose edges are followed
MAX_ENTITY_FANOUT = 25
PER_ENTITY = 4  # memories reached through one entity
MAX_NEIGHBOURS = 200
SAME_ENTRY_WEIGHT = 0.5


@dataclass(frozen=True)
class Ingested:
    stored: list[Stored]
    entities: list[EntityRow]
    edges: list[EdgeRow]
    extractor: str
    fallback_reason: str | None = None


@dataclass(frozen=True)
class Via:
    """How an expanded hit was reached."""

    edge_type: str
    from_id: str
    hops: int
    weight: float
    entity_id: str | None = None
    entity: str | None = None


@dataclass(frozen=True)
class Expanded:
    hit: Hit
    via: Via | None


@dataclass(frozen=True)
class Neighbour:
    node_id: str
    edge: EdgeRow
    direction: str  # "out": the edge leaves the node it was reached from; "in": enters it
    depth: int
    from_id: str


@dataclass
class NodeInfo:
    memories: dict[str, MemoryRow] = field(default_factory=dict)
    entities: dict[str, EntityRow] = field(default_factory=dict)


class GraphService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        memory: MemoryService,
        llm: LLMProvider,
        recognizer: Recognizer,
    ) -> None:
        self._db = db
        self._clock = clock
        self._memory = memory
        self._llm = llm
        self.recognizer = recognizer

    async def aclose(self) -> None:
        await self.recognizer.aclose()

    # -- ingestion --------------------------------------------------------------------

    async def extract(self, text: str) -> tuple[Extraction, str | None]:
        """Read a text: with the language model when one is connected, else (or when it
        fails) by rules; returns the extraction and why the model was not used, if it
        failed."""
        reason = None
        if (await self._llm.resolve()).name != "offline":
            try:
                extraction = await extract_with_llm(self._llm, text)
                if extraction.items:
                    return extraction, None
                reason = "the model found nothing to remember"
            except Unavailable as exc:
                reason = exc.message
                log.warning("ingest: LLM extraction failed (%s); using rules", exc.message)
        spans = await self.recognizer.recognize([text])
        name = "rules+spacy" if spans is not None else "rules"
        return extract(text, spans[0] if spans is not None else None, name), reason

    async def ingest(
        self,
        user_id: str,
        persona: PersonaRow,
        text: str,
        *,
        source: str | None = None,
        occurred_at: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Ingested:
        extraction, reason = await self.extract(text)
        if not extraction.items:
            return Ingested([], [], [], extraction.extractor, reason)
        now = self._clock.now()
        moment = occurred_at if occurred_at is not None else now
        ingest_id = str(uuid.uuid4())
        inputs = []
        for item in extraction.items:
            meta = {**(metadata or {}), "ingest_id": ingest_id, "kind": item.kind}
            if item.time_phrase:
                meta["time_phrase"] = item.time_phrase
            inputs.append(
                MemoryInput(
                    content=item.content,
                    memory_type=item.memory_type,
                    metadata=meta,
                    occurred_at=moment + item.offset_seconds,
                    source=source or "ingest",
                )
            )
        written: dict[str, Any] = {}

        def also(conn: Connection, stored: list[Stored]) -> None:
            written.update(self._write_graph(conn, user_id, persona.id, extraction, stored, now))

        stored = await self._memory.remember(user_id, persona, inputs, also=also)
        return Ingested(stored, written["entities"], written["edges"], extraction.extractor, reason)

    def _write_graph(
        self,
        conn: Connection,
        user_id: str,
        persona_id: str,
        extraction: Extraction,
        stored: list[Stored],
        now: float,
    ) -> dict[str, Any]:
        """Inside the memories' transaction: resolve the entities, write the edges."""
        ids = [s.memory.id for s in stored]
        merged: dict[str, str] = {}  # entity id -> the one it was merged into
        resolved = [
            self._resolve(conn, user_id, persona_id, entity, now, merged)
            for entity in extraction.entities
        ]

        def current(entity_id: str) -> str:
            while entity_id in merged:
                entity_id = merged[entity_id]
            return entity_id

        entity_ids = [current(e) for e in resolved]
        edges: list[NewEdge] = []
        mentioned: set[int] = set()
        for i, item in enumerate(extraction.items):
            for e in item.entities:
                edges.append(NewEdge("mentions", ids[i], entity_ids[e]))
                mentioned.add(e)
            if item.part_of is not None:
                edges.append(NewEdge("part_of", ids[i], ids[item.part_of]))
        for e in range(len(extraction.entities)):
            if e not in mentioned:  # named by the model but in no memory: the first one
                edges.append(NewEdge("mentions", ids[0], entity_ids[e]))
        # Names the graph knows already are mentions wherever they appear capitalised,
        # even where the recogniser missed them ("Mara took me to...").
        for i, item in enumerate(extraction.items):
            grams = _capitalised_grams(item.content)
            for entity_id in repo.entities_by_norm(conn, persona_id, grams).values():
                edges.append(NewEdge("mentions", ids[i], entity_id))
        first_episode = next(
            (i for i, it in enumerate(extraction.items) if it.memory_type == "episode"), None
        )
        if first_episode is not None:
            for i, item in enumerate(extraction.items):
                if item.memory_type != "episode":
                    edges.append(
                        NewEdge(
                            "relates_to", ids[i], ids[first_episode], "same entry",
                            SAME_ENTRY_WEIGHT,
                        )
                    )  # fmt: skip
        for rel in extraction.relations:
            edges.append(
                NewEdge(
                    "relates_to", entity_ids[rel.source], entity_ids[rel.target], rel.label,
                    via_memory=ids[rel.item],
                )
            )  # fmt: skip
        edges = [e for e in edges if e.src != e.dst]
        repo.add_edges(conn, user_id, persona_id, edges, now)
        memory_ids = list(dict.fromkeys(ids))
        # Ids may have changed by merging while later entities were resolved.
        touched = repo.mentioned_in(conn, memory_ids)
        final_entities = list(dict.fromkeys(e for i in memory_ids for e in touched.get(i, [])))
        return {
            "entities": repo.entities(conn, user_id, final_entities),
            "edges": [
                e
                for e in repo.edges_of(conn, memory_ids)
                if e.src in memory_ids or e.via_memory in memory_ids or e.edge_type == "next"
            ],
        }

    def _resolve(
        self,
        conn: Connection,
        user_id: str,
        persona_id: str,
        entity: Entity,
        now: float,
        merged: dict[str, str],
    ) -> str:
        """The stored entity an extracted one is (made, extended or merged as needed)."""
        proper = None if aliases.is_kin_word(entity.name) else entity.name
        names = [a for a in entity.aliases if not aliases.is_kin_word(a)]
        if proper and proper not in names:
            names.insert(0, proper)
        name_norms = [aliases.norm(n) for n in names if aliases.norm(n)]
        kin_norms = list(aliases.relation_norms(entity.relation)) if entity.relation else []
        known = repo.entities_by_norm(conn, persona_id, [*name_norms, *kin_norms])
        by_name = list(dict.fromkeys(known[n] for n in name_norms if n in known))
        target = by_name[0] if by_name else None
        for other in by_name[1:]:  # two names the text says are one
            repo.merge_entities(conn, by_name[0], other, now)
            merged[other] = by_name[0]
        kin_id = next((known[n] for n in kin_norms if n in known), None)
        unique = entity.relation in aliases.UNIQUE_RELATIONS
        if kin_id is not None and kin_id != target:
            kin_rows = repo.entities(conn, user_id, [kin_id])
            kin_unnamed = bool(kin_rows) and aliases.is_kin_word(kin_rows[0].name)
            if target is None:
                if proper is None or kin_unnamed or unique:
                    target = kin_id
            elif unique or kin_unnamed:
                repo.merge_entities(conn, target, kin_id, now)
                merged[kin_id] = target
        if target is None:
            target = repo.new_entity_id()
            repo.insert_entity(
                conn,
                entity_id=target,
                user_id=user_id,
                persona_id=persona_id,
                name=entity.name,
                kind=entity.kind,
                relation=entity.relation,
                now=now,
            )
        else:
            current = repo.entities(conn, user_id, [target])[0]
            repo.update_entity(
                conn,
                target,
                name=proper if proper and aliases.is_kin_word(current.name) else None,
                kind=entity.kind if _better_kind(current.kind, entity) else None,
                relation=entity.relation if current.relation is None else None,
                now=now,
            )
        for alias in [*entity.aliases, *([proper] if proper else [])]:
            if aliases.norm(alias):
                repo.add_alias(conn, user_id, persona_id, target, alias, aliases.norm(alias))
        if entity.relation:
            # "my mother" stands for the relation; a second sister does not take it over.
            written = f"my {aliases.KIN.get(entity.relation, (entity.relation,))[0]}"
            repo.add_alias(conn, user_id, persona_id, target, written, aliases.norm(written))
        return target

    # -- reading ----------------------------------------------------------------------

    async def entity(
        self, user_id: str, persona: PersonaRow, name: str, limit: int
    ) -> tuple[EntityRow, list[MemoryRow], list[tuple[EntityRow, str | None]]]:
        """An entity by any of its names, the memories that mention it (in the order they
        happened) and the entities it relates to."""
        key = aliases.norm(name)
        relation = aliases.relation_of(name)
        norms = [key, *(aliases.relation_norms(relation) if relation else ())]

        def read(
            conn: Connection,
        ) -> tuple[EntityRow, list[MemoryRow], list[tuple[EntityRow, str | None]]] | None:
            known = repo.entities_by_norm(conn, persona.id, norms)
            entity_id = next((known[n] for n in norms if n in known), None)
            if entity_id is None:
                return None
            found = repo.entities(conn, user_id, [entity_id])
            if not found:
                return None
            ids = repo.memories_mentioning(conn, entity_id, limit)
            rows = {r.id: r for r in memory_repo.by_ids(conn, user_id, ids)}
            related_edges = [
                e for e in repo.edges_of(conn, [entity_id], ["relates_to"])
                if e.src_kind == "entity" and e.dst_kind == "entity"
            ]  # fmt: skip
            others = [e.dst if e.src == entity_id else e.src for e in related_edges]
            by_id = {e.id: e for e in repo.entities(conn, user_id, list(dict.fromkeys(others)))}
            related: dict[str, tuple[EntityRow, str | None]] = {}
            for edge, other in zip(related_edges, others, strict=True):
                if other in by_id and (other not in related or edge.label):
                    related[other] = (by_id[other], edge.label)
            return found[0], [rows[i] for i in ids if i in rows], list(related.values())

        result = await self._db.read(read)
        if result is None:
            raise NotFound(
                f"No entity named {name!r} in {persona.name}'s graph",
                {"name": name, "persona_id": persona.id},
            )
        return result

    async def counts(self, user_id: str, persona_id: str) -> dict[str, Any]:
        """How big a persona's graph is: entities, and edges by type."""
        return await self._db.read(lambda conn: repo.counts(conn, user_id, persona_id))

    async def entities_of(self, user_id: str, memory_ids: list[str]) -> dict[str, list[EntityRow]]:
        """memory id -> the entities it mentions."""

        def read(conn: Connection) -> dict[str, list[EntityRow]]:
            mentions = repo.mentioned_in(conn, memory_ids)
            wanted = list(dict.fromkeys(e for ids in mentions.values() for e in ids))
            rows = {e.id: e for e in repo.entities(conn, user_id, wanted)}
            return {m: [rows[e] for e in ids if e in rows] for m, ids in mentions.items()}

        return await self._db.read(read)

    async def entities_named(self, persona_id: str, user_id: str, text: str) -> list[EntityRow]:
        """The entities of a persona's graph that a text names (a query), by alias."""
        words = [w for w in aliases.norm(text).replace("?", " ").split() if w]
        grams = {" ".join(words[i : i + n]) for n in (1, 2, 3) for i in range(len(words))}
        grams |= {g[:-2] for g in grams if g.endswith("'s")}

        def read(conn: Connection) -> list[EntityRow]:
            known = repo.entities_by_norm(conn, persona_id, grams)
            return repo.entities(conn, user_id, list(dict.fromkeys(known.values())))

        return await self._db.read(read)

    async def neighbours(
        self,
        user_id: str,
        node_id: str,
        depth: int,
        edge_types: Sequence[str] | None,
        limit: int = MAX_NEIGHBOURS,
    ) -> tuple[NodeInfo, list[Neighbour]]:
        """The nodes within `depth` edges of a node (breadth first), and how each was
        reached; NotFound for a node that is not the caller's."""

        def read(conn: Connection) -> tuple[NodeInfo, list[Neighbour]] | None:
            owner = repo.owner_of(conn, node_id)
            if owner is None or owner[0] != user_id:
                return None
            seen = {node_id}
            frontier = [node_id]
            found: list[Neighbour] = []
            for level in range(1, depth + 1):
                if not frontier or len(found) >= limit:
                    break
                edges = repo.edges_of(conn, frontier, edge_types)
                current = set(frontier)
                frontier = []
                for edge in edges:
                    for here, there, direction in (
                        (edge.src, edge.dst, "out"),
                        (edge.dst, edge.src, "in"),
                    ):
                        if here in current and there not in seen and len(found) < limit:
                            seen.add(there)
                            frontier.append(there)
                            found.append(Neighbour(there, edge, direction, level, here))
            info = NodeInfo()
            ids = [node_id, *(n.node_id for n in found)]
            memory_ids = [i for i in ids if repo.kind_of_node(i) == "memory"]
            entity_ids = [i for i in ids if repo.kind_of_node(i) == "entity"]
            info.memories = {m.id: m for m in memory_repo.by_ids(conn, user_id, memory_ids)}
            info.entities = {e.id: e for e in repo.entities(conn, user_id, entity_ids)}
            return info, found

        result = await self._db.read(read)
        if result is None:
            raise NotFound(f"No node {node_id!r}", {"node_id": node_id})
        return result

    # -- graph-aware search -----------------------------------------------------------

    async def expand(self, filters: Filters, hits: list[Hit], depth: int = 1) -> list[Expanded]:
        """The hits re-ranked by what the graph adds, plus the memories their edges lead
        to, best first (spreading activation from the best hits: see the module
        docstring). Memories reached obey the same filters as the search."""
        if not hits:
            return []

        def read(conn: Connection) -> list[Expanded]:
            direct = {h.memory.id: h for h in hits}
            gained: dict[str, float] = {}
            strongest: dict[str, tuple[float, Via]] = {}
            frontier = {h.memory.id: (h.score, h.memory.occurred_at) for h in hits[:EXPAND_SEEDS]}
            for hop in range(1, depth + 1):
                reached: dict[str, float] = {}
                for here, there, weight, via in self._hop(conn, filters.user_id, frontier, hop):
                    amount = frontier[here][0] * weight
                    if amount <= 0.0:
                        continue
                    gained[there] = gained.get(there, 0.0) + amount
                    reached[there] = max(reached.get(there, 0.0), amount)
                    if amount > strongest.get(there, (0.0, via))[0]:
                        strongest[there] = (amount, via)
                if hop == depth or not reached:
                    break
                found = memory_repo.by_ids(conn, filters.user_id, list(reached))
                frontier = {r.id: (reached[r.id], r.occurred_at) for r in found}
            new = [m for m in gained if m not in direct]
            rows = {r.id: r for r in memory_repo.by_ids(conn, filters.user_id, new)}
            out = []
            for memory_id in [*direct, *new]:
                earlier = direct.get(memory_id)
                row = earlier.memory if earlier is not None else rows.get(memory_id)
                if row is None or (earlier is None and not _passes(row, filters)):
                    continue
                added = gained.get(memory_id, 0.0)
                if added <= 0.0 and earlier is not None:
                    out.append(Expanded(earlier, None))
                    continue
                _, via = strongest[memory_id]
                graph_why = {
                    "graph": {
                        "edge_type": via.edge_type,
                        "from": via.from_id,
                        "entity": via.entity,
                        "hops": via.hops,
                        "weight": via.weight,
                        "added": round(added, 4),
                    }
                }
                if earlier is not None:
                    hit = replace(
                        earlier, score=earlier.score + added, why={**earlier.why, **graph_why}
                    )
                else:
                    hit = Hit(row, added, 0.0, None, graph_why)
                out.append(Expanded(hit, via))
            out.sort(key=lambda e: -e.hit.score)
            return out

        return await self._db.read(read)

    def _hop(
        self,
        conn: Connection,
        user_id: str,
        frontier: dict[str, tuple[float, float]],
        hop: int,
    ) -> list[tuple[str, str, float, Via]]:
        """One hop from the frontier's memories: (from, to, weight, via) for each memory an
        edge leads to, directly or through an entity."""
        out: list[tuple[str, str, float, Via]] = []
        entity_edges: list[tuple[str, str]] = []  # (memory, entity)
        for edge in repo.edges_of(conn, list(frontier)):
            if edge.edge_type == "mentions":
                if edge.src in frontier:
                    entity_edges.append((edge.src, edge.dst))
                continue
            if edge.src_kind != "memory" or edge.dst_kind != "memory":
                continue
            weight = HOP_DECAY * EDGE_WEIGHTS[edge.edge_type] * edge.weight
            for here, there in ((edge.src, edge.dst), (edge.dst, edge.src)):
                if here in frontier and there != here:
                    out.append(
                        (here, there, weight, Via(edge.edge_type, here, hop, round(weight, 4)))
                    )
        degrees = repo.mention_counts(conn, list({e for _, e in entity_edges}))
        names = {
            e.id: e.name
            for e in repo.entities(conn, user_id, list(degrees))
            if 1 < degrees[e.id] <= MAX_ENTITY_FANOUT
        }
        for memory_id, entity_id in entity_edges:
            if entity_id not in names:
                continue
            # A rarer entity says more: the weight falls with how many memories mention it.
            weight = HOP_DECAY * EDGE_WEIGHTS["mentions"] / math.log2(1 + degrees[entity_id])
            via = Via("mentions", memory_id, hop, round(weight, 4), entity_id, names[entity_id])
            when = frontier[memory_id][1]
            for other in repo.nearest_mentions(conn, entity_id, when, PER_ENTITY + 1):
                if other != memory_id:
                    out.append((memory_id, other, weight, via))
        return out


def _better_kind(stored: str, entity: Entity) -> bool:
    """Whether a mention says more about what an entity is than what is stored: any
    kind beats "thing", and a family word makes it a person (or an animal)."""
    if entity.kind == stored:
        return False
    if entity.relation and entity.kind in ("person", "animal"):
        return True
    return stored == "thing"


_CAPITALISED = re.compile(r"[A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+){0,2}")


def _capitalised_grams(text: str) -> set[str]:
    """The norms of every run of one to three capitalised words in a text."""
    grams: set[str] = set()
    for match in _CAPITALISED.finditer(text):
        words = match.group(0).split()
        for n in range(1, len(words) + 1):
            for start in range(len(words) - n + 1):
                gram = aliases.norm(" ".join(words[start : start + n]))
                if gram and not aliases.is_kin_word(gram):
                    grams.add(gram)
    return grams


def _passes(row: MemoryRow, filters: Filters) -> bool:
    """Whether a memory reached through the graph obeys the search's filters."""
    if row.persona_id != filters.persona_id or row.user_id != filters.user_id:
        return False
    if filters.memory_type and row.memory_type != filters.memory_type:
        return False
    if filters.min_importance is not None and row.importance < filters.min_importance:
        return False
    if filters.since is not None and row.occurred_at < filters.since:
        return False
    return filters.until is None or row.occurred_at <= filters.until
