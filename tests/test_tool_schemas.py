"""Every tool's outputSchema is true of what the tool returns: each registry operation is
called through the MCP door with real arguments and its structuredContent is validated
against the schema it declared in tools/list, with jsonschema (formats checked too).
The schemas are also held to being small: no titles, no defaults, no `anyOf` with null."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jsonschema
from mcp import Client

from persona_mcp.operations import build_registry
from tests.conftest import RunningServer

Args = Callable[[dict[str, Any]], dict[str, Any]]


def simulation(seen: dict[str, Any]) -> dict[str, Any]:
    return {"simulation_id": seen["simulation.start"]["simulation_id"]}


def fixed(args: dict[str, Any]) -> Args:
    return lambda seen: args


MEMORIES = [
    {"content": f"Tess mapped harbour number {i} on the northern coast."} for i in range(14)
]

# In order: later calls use ids that earlier results returned (`seen` holds every result).
CALLS: list[tuple[str, Args]] = [
    ("persona.list", fixed({})),
    ("persona.create", fixed({"name": "Tess", "personality_traits": ["curious"],
                              "topic_preferences": {"maps": 0.8}})),
    ("persona.update", fixed({"persona_id": "Tess", "description": "A cartographer"})),
    ("persona.switch", fixed({"persona_id": "Tess"})),
    ("persona.status", fixed({})),
    ("persona.chat", fixed({"message": "My sister Mara lives in Lisbon and loves old maps."})),
    ("persona.relationship", fixed({})),
    ("persona.compatibility", fixed({"persona_id": "Tess", "other_id": "Aria"})),
    ("conversation.start", fixed({"persona_id": "Aria", "title": "Songs"})),
    ("conversation.status", fixed({"persona_id": "Aria"})),
    ("conversation.end", fixed({"persona_id": "Aria"})),
    ("memory.store", fixed({"content": "Tess keeps a chart of every lighthouse.",
                            "importance": 0.9, "metadata": {"source": "test"}})),
    ("memory.store_batch", fixed({"memories": MEMORIES})),
    ("memory.search", fixed({"query": "lighthouse chart"})),
    ("memory.get", lambda seen: {"memory_id": seen["memory.store"]["memory"]["id"]}),
    ("memory.update", lambda seen: {"memory_id": seen["memory.store"]["memory"]["id"],
                                    "content": "Tess keeps charts of every lighthouse she saw."}),
    ("memory.history", lambda seen: {"memory_id": seen["memory.store"]["memory"]["id"]}),
    ("memory.pin", lambda seen: {"memory_id": seen["memory.store"]["memory"]["id"]}),
    ("memory.unpin", lambda seen: {"memory_id": seen["memory.store"]["memory"]["id"]}),
    ("memory.list", fixed({"limit": 5})),
    ("memory.stats", fixed({})),
    ("memory.set_importance_weights", fixed({"emotional": 0.3})),
    ("add_memory", fixed({"user_input": "I sail on Sundays.", "agent_response": "Lovely!"})),
    ("retrieve_memory", fixed({"query": "sailing"})),
    ("get_user_profile", fixed({})),
    ("memory.tiers", fixed({})),
    ("memory.set_decay_config", fixed({"rate": 0.01})),
    ("memory.decay_force", fixed({"hours": 1})),
    ("memory.decay_start", fixed({"interval_seconds": 3600})),
    ("memory.decay_stats", fixed({})),
    ("memory.decay_stop", fixed({})),
    ("memory.prune_recommendations", fixed({})),
    ("memory.prune_stats", fixed({})),
    ("memory.set_pruning_config", fixed({"batch_size": 50})),
    ("memory.prune_all", fixed({"dry_run": True})),
    ("memory.prune", fixed({"target_count": 10, "dry_run": False})),
    ("memory.restore", lambda seen: {"prune_run_id": seen["memory.prune"]["prune_run_id"]}),
    ("memory.delete", lambda seen: {"memory_id": seen["memory.store_batch"]["memories"][0]["id"]}),
    ("simulation.start", fixed({"personas": ["Aria", "Kira"], "topic": "maps", "max_turns": 2,
                                "seed": 7})),
    ("simulation.status", simulation),
    ("simulation.list", fixed({})),
    ("simulation.transcript", simulation),
    # A long run, stopped at once (the short one above has finished by now).
    ("simulation.start", fixed({"personas": ["Aria", "Kira"], "topic": "maps", "max_turns": 200})),
    ("simulation.stop", simulation),
    ("visual.update", fixed({"description": "A harbour at dusk", "tags": ["sea"],
                             "expires_in_seconds": 600})),
    ("persona.export_card", fixed({"persona_id": "Tess", "include_memories": True})),
    ("persona.import_card", lambda seen: {"card": seen["persona.export_card"]["card"],
                                          "name": "Tess Again"}),
    ("state.save", fixed({"path": "schemas-test.jsonl.gz"})),
    ("state.load", lambda seen: {"path": seen["state.save"]["path"], "mode": "merge"}),
    ("memory.ingest", fixed({"content": "Yesterday I hiked with my mother Helen at Pine "
                             "Ridge. I am a patient person. I plan to call Helen on Friday."})),
    ("graph.entity", fixed({"name": "Helen"})),
    ("graph.neighbors", lambda seen: {"node_id": seen["memory.ingest"]["memories"][0]["id"]}),
    ("rag.query", fixed({"query": "Where did I hike with Helen?"})),
    ("ask", fixed({"query": "Who is Helen?", "output_schema": {"type": "object"}})),
    ("system.status", fixed({})),
    ("system.models", fixed({})),
    ("persona.delete", fixed({"persona_id": "Tess"})),
    ("user.delete", fixed({"confirm": True})),
    ("user.create", fixed({})),
]  # fmt: skip
# Tools this server cannot answer and why; their schemas are checked where they can be.
UNANSWERABLE = {
    "ask": "needs a language model (tests/test_graph.py asks the fake OpenAI server)",
}


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 moments, as the results write them (jsonschema checks none by itself
    without an optional package)."""
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def keywords(schema: Any, key: str) -> int:
    """How often `key` is used as a keyword (not as a property name) in `schema`."""
    if isinstance(schema, list):
        return sum(keywords(s, key) for s in schema)
    if not isinstance(schema, dict):
        return 0
    found = int(key in schema)
    for name, value in schema.items():
        if name in ("properties", "$defs") and isinstance(value, dict):
            found += sum(keywords(s, key) for s in value.values())
        else:
            found += keywords(value, key)
    return found


def test_every_operation_has_an_entry_in_the_call_list() -> None:
    missing = {op.name for op in build_registry()} - {name for name, _ in CALLS}
    assert not missing, f"add arguments for {sorted(missing)} to CALLS in this file"


async def test_every_tool_returns_what_its_output_schema_says(server: RunningServer) -> None:
    seen: dict[str, Any] = {}
    async with Client(f"{server.http_url}/mcp", mode="legacy") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name, args in CALLS:
            result = await client.call_tool(name, args(seen))
            if name in UNANSWERABLE:
                assert result.is_error is True, name
                continue
            assert result.is_error is False, (name, result.content)
            data = result.structured_content
            assert data is not None, name
            schema = tools[name].output_schema
            assert schema is not None, name
            jsonschema.Draft202012Validator.check_schema(schema)
            errors = list(jsonschema.Draft202012Validator(schema, format_checker=FORMATS)
                          .iter_errors(data))  # fmt: skip
            assert not errors, (name, [e.message for e in errors[:3]])
            seen[name] = data


async def test_output_schemas_carry_no_titles_defaults_or_null_branches(
    server: RunningServer,
) -> None:
    async with Client(f"{server.http_url}/mcp", mode="legacy") as client:
        listed = await client.list_tools()
    for tool in listed.tools:
        schema = tool.output_schema
        assert keywords(schema, "title") == 0, tool.name
        assert keywords(schema, "default") == 0, tool.name
        assert '{"type": "null"}' not in json.dumps(schema), tool.name
        assert keywords(tool.input_schema, "title") == 0, tool.name
