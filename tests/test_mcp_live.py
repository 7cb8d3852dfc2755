"""The live half of MCP through the real doors, in both eras: completions, log records,
resource subscriptions, list_changed and progress."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from persona_mcp.operations import OPERATION_SETS
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Registry, Result
from persona_mcp.transports.mcp import McpDoor
from tests.conftest import RunningServer
from tests.test_mcp import ERAS, MODES, connect

PROMPT = types.PromptReference(name="persona_system_prompt")
WAIT = 10  # seconds: a bound on waiting for a notification, not a timing assertion


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_persona_names_complete_by_prefix_case_insensitively(
    server: RunningServer, mode: str
) -> None:
    async with connect(server, mode) as client:
        caps = client.server_capabilities
        assert caps is not None and caps.completions is not None
        names = await client.complete(PROMPT, {"name": "persona_id", "value": "ar"})
        assert names.completion.values == ["Aria"]
        every = await client.complete(PROMPT, {"name": "persona_id", "value": ""})
        assert {"Aria", "Kira"} <= set(every.completion.values)
        aria = server.app.personas.resolve("default", "Aria")
        by_id = await client.complete(PROMPT, {"name": "persona_id", "value": aria.id[:6]})
        assert aria.id in by_id.completion.values
        template = types.ResourceTemplateReference(uri="persona://{id}/memory-stats")
        uri = await client.complete(template, {"name": "id", "value": "KI"})
        assert uri.completion.values == ["Kira"]


async def test_topics_complete_from_the_chosen_personas_preferences(
    server: RunningServer, mode: str
) -> None:
    aria = server.app.personas.resolve("default", "Aria")
    async with connect(server, mode) as client:
        topics = await client.complete(
            PROMPT, {"name": "topic", "value": ""}, context_arguments={"persona_id": "Aria"}
        )
        assert topics.completion.values == sorted(aria.topic_preferences)


async def test_log_records_at_or_above_the_set_level_arrive_after_set_level(
    server: RunningServer,
) -> None:
    received: list[types.LoggingMessageNotificationParams] = []
    arrived = anyio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)
        arrived.set()

    async with Client(f"{server.http_url}/mcp", mode="legacy", logging_callback=on_log) as client:
        assert client.server_capabilities is not None
        assert client.server_capabilities.logging is not None
        await client.set_logging_level("warning")
        await client.call_tool("persona.list", {})  # the session's standing stream is open
        log = logging.getLogger("persona_mcp.test_live")
        log.info("below the level")
        log.warning("at the level %d", 7)
        with anyio.fail_after(WAIT):
            await arrived.wait()
    assert received[0].level == "warning"
    assert received[0].logger == "persona_mcp.test_live"
    assert received[0].data == {"message": "at the level 7"}


async def test_a_store_by_another_client_updates_a_subscribed_persona_resource(
    server: RunningServer, mode: str
) -> None:
    aria = server.app.personas.resolve("default", "Aria")
    updated: list[str] = []
    got = anyio.Event()

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        if isinstance(root, types.ResourceUpdatedNotification):
            updated.append(str(root.params.uri))
            got.set()

    url = f"{server.http_url}/mcp"
    if mode == "legacy":
        async with Client(url, mode=mode, message_handler=on_message) as watcher:
            caps = watcher.server_capabilities
            assert caps is not None and caps.resources is not None
            assert caps.resources.subscribe and caps.resources.list_changed
            await watcher.subscribe_resource("persona://Aria/memory-stats")
            async with connect(server, mode) as writer:
                await writer.call_tool("memory.store", {"persona_id": "Aria", "content": "Tea"})
            with anyio.fail_after(WAIT):
                await got.wait()
        assert updated[0] == f"persona://{aria.id}/memory-stats"
        return
    async with connect(server, mode) as watcher:
        uri = f"persona://{aria.id}/memory-stats"
        async with watcher.listen(resource_subscriptions=[uri]) as sub:
            async with connect(server, mode) as writer:
                await writer.call_tool("memory.store", {"persona_id": "Aria", "content": "Tea"})
            with anyio.fail_after(WAIT):
                async for event in sub:
                    assert getattr(event, "uri", None) == uri
                    break


async def test_creating_a_persona_sends_resources_list_changed(
    server: RunningServer, mode: str
) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        if isinstance(root, types.ResourceListChangedNotification):
            changed.set()

    persona = {"name": "Noor", "description": "A cartographer"}
    url = f"{server.http_url}/mcp"
    if mode == "legacy":
        async with Client(url, mode=mode, message_handler=on_message) as watcher:
            await watcher.list_resources()
            async with connect(server, mode) as writer:
                await writer.call_tool("persona.create", persona)
            with anyio.fail_after(WAIT):
                await changed.wait()
        return
    async with connect(server, mode) as watcher, watcher.listen(resources_list_changed=True) as sub:
        async with connect(server, mode) as writer:
            await writer.call_tool("persona.create", persona)
        with anyio.fail_after(WAIT):
            async for event in sub:
                assert type(event).__name__ == "ResourcesListChanged"
                break


def _batch(n: int) -> dict[str, Any]:
    return {"persona_id": "Aria", "memories": [{"content": f"fact {i}"} for i in range(n)]}


async def test_store_batch_reports_progress_to_a_progress_token(
    server: RunningServer, mode: str
) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total))

    async with connect(server, mode) as client:
        result = await client.call_tool(
            "memory.store_batch", _batch(5), progress_callback=on_progress
        )
    assert result.structured_content["count"] == 5
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)


@pytest.mark.parametrize("mode", MODES)
async def test_stdio_completes_names_and_reports_progress(tmp_path: Path, mode: str) -> None:
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "persona-mcp"),
        args=["stdio", "--data-dir", str(tmp_path / "data"), "--llm", "offline",
              "--env-file", str(tmp_path / "none.env")],
        env={"PATH": os.environ.get("PATH", ""), "EMBEDDING_PROVIDER": "none"},
    )  # fmt: skip
    seen: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(done)

    async with Client(params, mode=mode) as client:
        assert client.protocol_version == ERAS[mode]
        names = await client.complete(PROMPT, {"name": "persona_id", "value": "k"})
        assert names.completion.values == ["Kira"]
        await client.call_tool("memory.store_batch", _batch(3), progress_callback=on_progress)
    assert seen == [0, 3]


class CountParams(Params):
    n: int


class CountResult(Result):
    n: int


async def test_a_2026_call_that_opts_in_gets_the_records_logged_during_it(
    server: RunningServer,
) -> None:
    extra = OperationSet()

    @extra("demo.count", read_only=True)
    async def count(ctx: CallContext, params: CountParams) -> CountResult:
        """Log a count."""
        logging.getLogger("persona_mcp.demo").warning("counted %d", params.n)
        return CountResult(n=params.n)

    received: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)

    app = server.app
    original = app.registry
    app.registry = Registry([*OPERATION_SETS, extra])
    try:
        door = McpDoor(app, "test")
        async with Client(
            door.server, mode="auto", log_level="info", logging_callback=on_log
        ) as client:
            assert client.protocol_version == "2026-07-28"
            await client.call_tool("demo.count", {"n": 3})
    finally:
        app.registry = original
    assert [(r.level, r.data) for r in received] == [("warning", {"message": "counted 3"})]
