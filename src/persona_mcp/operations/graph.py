"""The Persona knowledge graph: ingestion, neighbours, entities, `rag.query` and `ask`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from persona_mcp.clock import to_datetime, to_timestamp
from persona_mcp.errors import InvalidParams
from persona_mcp.graph.answers import Context
from persona_mcp.llm.base import schema_validator
from persona_mcp.operations.common import Metadata, Name, PersonaRef, When, target_persona
from persona_mcp.operations.memory import Memory, SearchHit, hit_out, memory_out
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Result
from persona_mcp.store.graph import EdgeRow, EdgeType, EntityRow

ops = OperationSet()

Query = Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class Entity(Result):
    id: str
    persona_id: str
    name: str
    kind: str = Field(description="person, place, organization, thing, event or animal")
    relation: str | None = Field(description="What it is to the user (mother, boss), if known")
    aliases: list[str] = Field(description='Its other names ("Mom", "my mother")')
    mentions: int = Field(description="How many memories mention it")
    created_at: datetime | None


def entity_out(row: EntityRow) -> Entity:
    return Entity(
        id=row.id,
        persona_id=row.persona_id,
        name=row.name,
        kind=row.kind,
        relation=row.relation,
        aliases=list(row.aliases),
        mentions=row.mentions,
        created_at=to_datetime(row.created_at),
    )


class Link(Result):
    edge_type: str = Field(description="next, mentions, relates_to, supersedes or part_of")
    source: str
    source_kind: Literal["memory", "entity"]
    target: str
    target_kind: Literal["memory", "entity"]
    label: str | None
    weight: float


def link_out(edge: EdgeRow) -> Link:
    return Link(
        edge_type=edge.edge_type,
        source=edge.src,
        source_kind=edge.src_kind,
        target=edge.dst,
        target_kind=edge.dst_kind,
        label=edge.label,
        weight=edge.weight,
    )


# -- memory.ingest ------------------------------------------------------------------------


class MemoryIngestParams(Params):
    content: str = Field(description="Free text: a diary entry, notes, a transcript")
    persona_id: PersonaRef | None = None
    source: Name | None = Field(
        None, description='Where the text came from ("diary", "notes"); default "ingest"'
    )
    occurred_at: When | None = Field(
        None, description='When it was written (default: now); "yesterday" counts from it'
    )
    metadata: Metadata = Field(
        default_factory=dict, description="Copied onto every memory the text becomes"
    )


class MemoryIngestResult(Result):
    memories: list[Memory] = Field(description="The typed memories: episode, psyche, goal")
    entities: list[Entity] = Field(description="The entities they mention, as now stored")
    links: list[Link] = Field(description="The edges of these memories in the graph")
    extractor: str = Field(
        description='How the text was read: "llm:<provider>", "rules+spacy" or "rules"'
    )
    fallback_reason: str | None = Field(
        description="Why the configured language model was not used, when it failed"
    )
    persona_id: str


@ops("memory.ingest", title="Ingest free text")
async def memory_ingest(ctx: CallContext, params: MemoryIngestParams) -> MemoryIngestResult:
    """Turn free text into typed memories: episodes (what happened), psyche (traits,
    preferences, values, beliefs) and goals (goals, and tasks that are part of them),
    with the people, places and things they name as entities, all linked in the
    knowledge graph and stored in one transaction. Uses the language model's structured
    output when one is connected, else rules and named-entity recognition; `extractor`
    says which."""
    ctx.app.memory.check_content(params.content, "content")
    persona = await target_persona(ctx, params.persona_id)
    user = ctx.session.user_id
    ingested = await ctx.app.graph.ingest(
        user,
        persona,
        params.content,
        source=params.source,
        occurred_at=to_timestamp(params.occurred_at) if params.occurred_at else None,
        metadata=params.metadata,
    )
    ids = list(dict.fromkeys(s.memory.id for s in ingested.stored))
    if ids:
        ctx.app.events.memory_changed(user, persona.id, ids, "stored")
    rows = {s.memory.id: s.memory for s in ingested.stored}
    return MemoryIngestResult(
        memories=[memory_out(rows[i]) for i in ids],
        entities=[entity_out(e) for e in ingested.entities],
        links=[link_out(e) for e in ingested.edges],
        extractor=ingested.extractor,
        fallback_reason=ingested.fallback_reason,
        persona_id=persona.id,
    )


# -- graph.neighbors and graph.entity -----------------------------------------------------


class Node(Result):
    id: str
    kind: Literal["memory", "entity"]
    label: str = Field(description="A memory's text or an entity's name")
    memory_type: str | None = None
    entity_kind: str | None = None
    occurred_at: datetime | None = None


class Neighbor(Result):
    node: Node
    edge_type: str
    direction: Literal["out", "in"] = Field(
        description="out: the edge leaves the node it was reached from; in: it enters it"
    )
    depth: int
    from_id: str = Field(description="The node it was reached from")
    label: str | None
    weight: float


class GraphNeighborsParams(Params):
    node_id: str = Field(min_length=1, max_length=100, description="A memory or entity id")
    depth: int = Field(1, ge=1, le=3)
    edge_types: list[EdgeType] | None = Field(None, max_length=5, description="Default: all")
    limit: int = Field(50, ge=1, le=200)


class GraphNeighborsResult(Result):
    node: Node
    neighbors: list[Neighbor]


@ops("graph.neighbors", read_only=True, title="Neighbours in the graph")
async def graph_neighbors(ctx: CallContext, params: GraphNeighborsParams) -> GraphNeighborsResult:
    """The memories and entities within `depth` edges of a node (a memory or an entity),
    breadth first, each with the edge it was reached by."""
    info, found = await ctx.app.graph.neighbours(
        ctx.session.user_id, params.node_id, params.depth, params.edge_types, params.limit
    )

    def node(node_id: str) -> Node:
        memory = info.memories.get(node_id)
        if memory is not None:
            return Node(
                id=node_id,
                kind="memory",
                label=memory.content,
                memory_type=memory.memory_type,
                occurred_at=to_datetime(memory.occurred_at),
            )
        entity = info.entities.get(node_id)
        return Node(
            id=node_id,
            kind="entity",
            label=entity.name if entity else node_id,
            entity_kind=entity.kind if entity else None,
        )

    return GraphNeighborsResult(
        node=node(params.node_id),
        neighbors=[
            Neighbor(
                node=node(n.node_id),
                edge_type=n.edge.edge_type,
                direction="out" if n.direction == "out" else "in",
                depth=n.depth,
                from_id=n.from_id,
                label=n.edge.label,
                weight=n.edge.weight,
            )
            for n in found
        ],
    )


class GraphEntityParams(Params):
    name: str = Field(
        min_length=1, max_length=200, description='Any of its names: "Helen", "Mom", "my mother"'
    )
    persona_id: PersonaRef | None = None
    limit: int = Field(100, ge=1, le=1000, description="At most this many memories")


class RelatedEntity(Result):
    entity: Entity
    label: str | None = Field(description="How they relate, when known")


class GraphEntityResult(Result):
    entity: Entity
    memories: list[Memory] = Field(description="The memories that mention it, in time order")
    related: list[RelatedEntity]


@ops("graph.entity", read_only=True, title="An entity of the graph")
async def graph_entity(ctx: CallContext, params: GraphEntityParams) -> GraphEntityResult:
    """An entity by any of its names (a family word like "Mom" finds the person it
    stands for), its aliases, the memories that mention it in the order they happened,
    and the entities it relates to."""
    persona = await target_persona(ctx, params.persona_id)
    entity, memories, related = await ctx.app.graph.entity(
        ctx.session.user_id, persona, params.name, params.limit
    )
    return GraphEntityResult(
        entity=entity_out(entity),
        memories=[memory_out(m) for m in memories],
        related=[RelatedEntity(entity=entity_out(e), label=label) for e, label in related],
    )


# -- rag.query and ask --------------------------------------------------------------------


class RagQueryParams(Params):
    query: Query
    persona_id: PersonaRef | None = None
    limit: int = Field(8, ge=1, le=50, description="Memories to draw on")


class RagQueryResult(Result):
    answer: str
    context: str = Field(
        description="The memories and entities the answer drew on, as the prompt's data blocks"
    )
    memories: list[SearchHit]
    entities: list[Entity]
    model: str = Field(description='The model that answered ("offline": quoted from memory)')
    persona_id: str


def _hits(context: Context) -> list[SearchHit]:
    return [hit_out(e.hit, e.via) for e in context.hits]


@ops("rag.query", title="Answer from memory")
async def rag_query(ctx: CallContext, params: RagQueryParams) -> RagQueryResult:
    """Answer a question from memory: hybrid search expanded along the graph, the
    entities involved, and an answer from the language model (offline: the most relevant
    memories, quoted), with the context it drew on."""
    if not params.query.strip():
        raise InvalidParams.field("query", "must not be empty")
    persona = await target_persona(ctx, params.persona_id)
    result = await ctx.app.answers.rag(ctx.session.user_id, persona, params.query, params.limit)
    return RagQueryResult(
        answer=result.answer,
        context=result.context.text,
        memories=_hits(result.context),
        entities=[entity_out(e) for e in result.context.entities],
        model=result.model,
        persona_id=persona.id,
    )


class AskParams(Params):
    query: Query
    output_schema: Metadata = Field(
        description="A JSON Schema (an object); the answer is valid against it"
    )
    persona_id: PersonaRef | None = None
    limit: int = Field(10, ge=1, le=50, description="Memories to draw on")


class AskResult(Result):
    answer: Any = Field(description="A JSON value valid against output_schema")
    memory_ids: list[str] = Field(description="The memories the answer was drawn from")
    model: str
    persona_id: str


@ops("ask", title="Ask into a JSON schema")
async def ask(ctx: CallContext, params: AskParams) -> AskResult:
    """Answer a question from memory as JSON valid against the caller's JSON Schema,
    through the language model's structured output (checked with jsonschema before it
    is returned). Needs a language model: without one, -32005 says what to configure."""
    if not params.query.strip():
        raise InvalidParams.field("query", "must not be empty")
    schema_validator(params.output_schema, "output_schema")  # -32602 before anything else
    persona = await target_persona(ctx, params.persona_id)
    result = await ctx.app.answers.ask(
        ctx.session.user_id, persona, params.query, params.output_schema, params.limit
    )
    return AskResult(
        answer=result.answer,
        memory_ids=[e.hit.memory.id for e in result.context.hits],
        model=result.model,
        persona_id=persona.id,
    )
