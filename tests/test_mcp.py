"""The MCP doors through the official SDK client: Streamable HTTP and stdio, both eras."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from persona_mcp.operations import OPERATION_SETS, build_registry
from persona_mcp.operations.registry import CallContext, OperationSet, Params, Registry, Result
from persona_mcp.transports.mcp import McpDoor
from tests.conftest import RunningServer

MODES = ["legacy", "auto"]
ERAS = {"legacy": "2025-11-25", "auto": "2026-07-28"}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def connect(server: RunningServer, mode: str) -> AsyncIterator[Any]:
    # The SDK client holds a task group, so it lives inside each test, not in a fixture.
    async with Client(f"{server.http_url}/mcp", mode=mode) as client:
        assert client.protocol_version == ERAS[mode]
        yield client


async def test_every_operation_is_a_tool_with_a_description_and_output_schema(
    server: RunningServer, mode: str
) -> None:
    async with connect(server, mode) as http_client:
        tools = (await http_client.list_tools()).tools
        assert sorted(t.name for t in tools) == sorted(op.name for op in build_registry())
        for tool in tools:
            assert tool.description, tool.name
            assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
            assert tool.input_schema["type"] == "object", tool.name


async def test_annotations_are_honest(server: RunningServer, mode: str) -> None:
    async with connect(server, mode) as http_client:
        tools = {t.name: t.annotations for t in (await http_client.list_tools()).tools}
        assert tools["persona.list"].read_only_hint is True
        assert tools["persona.list"].open_world_hint is False
        assert tools["memory.delete"].destructive_hint is True
        assert tools["persona.delete"].destructive_hint is True
        assert tools["memory.store"].read_only_hint is False
        assert tools["persona.chat"].open_world_hint is True


async def test_persona_list_returns_aria_and_kira_as_structured_content(
    server: RunningServer, mode: str
) -> None:
    async with connect(server, mode) as http_client:
        result = await http_client.call_tool("persona.list", {})
        assert result.is_error is False
        names = [p["name"] for p in result.structured_content["personas"]]
        assert names == ["Aria", "Kira"]
        assert json.loads(result.content[0].text) == result.structured_content


async def test_chat_by_persona_name_answers(server: RunningServer, mode: str) -> None:
    async with connect(server, mode) as http_client:
        result = await http_client.call_tool(
            "persona.chat", {"persona_id": "Aria", "message": "Hi"}
        )
        assert result.is_error is False
        assert result.structured_content["response"]
        assert result.structured_content["model"] == "offline"


async def test_wrong_argument_types_come_back_as_a_readable_tool_error(
    server: RunningServer, mode: str
) -> None:
    async with connect(server, mode) as http_client:
        result = await http_client.call_tool("persona.chat", {"message": 42})
        assert result.is_error is True
        assert "message" in result.content[0].text
        missing = await http_client.call_tool("persona.switch", {"persona_id": "Nobody"})
        assert missing.is_error is True
        assert "Nobody" in missing.content[0].text


async def test_an_unknown_tool_is_a_json_rpc_error(server: RunningServer, mode: str) -> None:
    async with connect(server, mode) as http_client:
        with pytest.raises(MCPError) as error:
            await http_client.call_tool("no.such.tool", {})
        assert error.value.error.code == -32602


async def test_resources_and_prompt_describe_and_render_personas(
    server: RunningServer, mode: str
) -> None:
    async with connect(server, mode) as http_client:
        resources = (await http_client.list_resources()).resources
        assert resources
        assert all(r.description for r in resources)
        profile = next(r for r in resources if str(r.uri).count("/") == 2)
        body = json.loads((await http_client.read_resource(profile.uri)).contents[0].text)
        assert body["name"] in {"Aria", "Kira"}
        stats = json.loads(
            (await http_client.read_resource("persona://Kira/memory-stats")).contents[0].text
        )
        assert stats["total"] == 0
        templates = (await http_client.list_resource_templates()).resource_templates
        assert all(t.description for t in templates)
        prompts = (await http_client.list_prompts()).prompts
        assert all(p.description for p in prompts)
        rendered = await http_client.get_prompt("persona_system_prompt", {"persona_id": "kira"})
        assert rendered.messages[0].content.text.startswith("You are Kira.")
        with pytest.raises(MCPError):
            await http_client.read_resource("persona://nobody")


async def test_stateless_requests_keep_the_active_persona_per_user(server: RunningServer) -> None:
    url = f"{server.http_url}/mcp"
    async with Client(url, mode="auto") as first:
        switched = await first.call_tool("persona.switch", {"persona_id": "Kira"})
        assert switched.is_error is False
    async with Client(url, mode="auto") as second:
        status = await second.call_tool("persona.status", {})
        assert status.structured_content["persona"]["name"] == "Kira"


async def test_a_foreign_origin_or_host_is_refused(server: RunningServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient() as http:
        evil = await http.post(
            f"{server.http_url}/mcp",
            json=body,
            headers={**headers, "Origin": "http://evil.example"},
        )
        rebound = await http.post(
            f"{server.http_url}/mcp", json=body, headers={**headers, "Host": "evil.example"}
        )
    assert evil.status_code == 403
    assert rebound.status_code in (403, 421)


class EchoParams(Params):
    text: str


class EchoResult(Result):
    echoed: str


async def test_adding_an_operation_to_the_registry_adds_the_tool(server: RunningServer) -> None:
    extra = OperationSet()

    @extra("demo.echo", read_only=True)
    async def echo(ctx: CallContext, params: EchoParams) -> EchoResult:
        """Echo the text back."""
        return EchoResult(echoed=params.text)

    app = server.app
    original = app.registry
    app.registry = Registry([*OPERATION_SETS, extra])
    try:
        async with Client(McpDoor(app, "test").server, mode="legacy") as client:
            tool = next(t for t in (await client.list_tools()).tools if t.name == "demo.echo")
            assert tool.annotations.read_only_hint is True
            result = await client.call_tool("demo.echo", {"text": "hi"})
            assert result.structured_content == {"echoed": "hi"}
    finally:
        app.registry = original


@pytest.mark.parametrize("mode", MODES)
async def test_stdio_serves_every_tool_in_both_eras(tmp_path: Path, mode: str) -> None:
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "persona-mcp"),
        args=["stdio", "--data-dir", str(tmp_path / "data"), "--llm", "offline",
              "--env-file", str(tmp_path / "none.env")],
        env={"PATH": os.environ.get("PATH", ""), "EMBEDDING_PROVIDER": "none"},
    )  # fmt: skip
    async with Client(params, mode=mode) as client:
        assert client.protocol_version == ERAS[mode]
        assert len((await client.list_tools()).tools) == len(build_registry())
        listed = await client.call_tool("persona.list", {})
        assert [p["name"] for p in listed.structured_content["personas"]] == ["Aria", "Kira"]
        chat = await client.call_tool("persona.chat", {"persona_id": "Aria", "message": "Hi"})
        assert chat.structured_content["turn_number"] == 1
        bad = await client.call_tool("memory.search", {"query": "x", "limit": "many"})
        assert bad.is_error is True
