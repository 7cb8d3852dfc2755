"""`persona-mcp client`: the interactive shell and --auto-test, run as a user runs them
against a live server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from mcp import Client

from persona_mcp.client.interactive import Shell, parse_line
from persona_mcp.client.tools import Method, http_url, ws_url
from tests.conftest import RunningServer, make_settings, serve

EXE = Path(sys.executable).parent / "persona-mcp"


async def run_client(*args: str, stdin: str | None = None, env: dict[str, str] | None = None
                     ) -> tuple[int, str, str]:  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        str(EXE), "client", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "HOME": "/tmp", **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else b""), 240)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def tool_names(server: RunningServer) -> list[str]:
    async with Client(f"{server.http_url}/mcp", mode="legacy") as mcp:
        return [t.name for t in (await mcp.list_tools()).tools]


async def test_auto_test_passes_names_every_tools_list_method_and_cleans_up(
    server: RunningServer,
) -> None:
    async with server.client() as client:
        before = await client.call("persona.list")
    code, out, err = await run_client(server.ws_url, "--auto-test")
    assert code == 0, out + err
    lines = out.splitlines()
    passed = {line.split()[1] for line in lines if line.startswith("PASS")}
    names = await tool_names(server)
    assert set(names) <= passed
    assert not [line for line in lines if line.startswith("FAIL")]
    assert lines[-1].startswith("summary: ") and " 0 failed" in lines[-1]
    assert f"{len(names)}/{len(names)} tools/list methods exercised" in lines[-1]
    async with server.client() as client:
        after = await client.call("persona.list")
    assert [p["id"] for p in after["personas"]] == [p["id"] for p in before["personas"]]
    assert after["active_persona_id"] == before["active_persona_id"]


async def test_auto_test_with_a_user_token_passes_and_admin_methods_are_refused_as_expected(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data", auth_mode="required")
    async with serve(settings) as server:
        _, secret = await server.app.tokens.create("bob")
        code, out, _ = await run_client(server.ws_url, "--auto-test", "--token", secret)
        assert code == 0, out
        assert "memory.decay_start" in out and "answered -32003 as expected" in out
        code, out, _ = await run_client(server.ws_url, "--auto-test", "--token", "pmcp_wrong")
        assert code == 1
        assert "FAIL  tools/list" in out


async def test_the_shell_calls_methods_in_every_form_and_streams_the_chat(
    server: RunningServer,
) -> None:
    script = "\n".join(
        [
            "persona.list",
            "use Kira",
            "chat My sister Mara lives in Lisbon.",
            'memory.search {"query": "sister", "limit": 2}',
            "memory.list limit=1 persona_id=Kira",
            "help memory.search",
            "no.such.method",
            "memory.search {not json",
            "quit",
        ]
    )
    code, out, err = await run_client(server.http_url, stdin=script + "\n")
    assert code == 0, err
    assert "connected to ws://127.0.0.1:" in out
    assert '"active_persona_id"' in out  # pretty-printed JSON
    assert "Kira> " in out  # the prompt follows the active persona
    assert "[offline · turn 1" in out  # the streamed reply's closing line
    assert '"content": "My sister Mara lives in Lisbon."' in out
    assert "query: string (required)" in out
    assert "error -32601" in out
    assert "cannot read that" in out


def test_lines_read_as_json_or_key_values_and_complete_methods_and_personas() -> None:
    assert parse_line('memory.search {"query": "a b"}') == ("memory.search", {"query": "a b"})
    assert parse_line('memory.search query="my sister" limit=3') == (
        "memory.search",
        {"query": "my sister", "limit": 3},
    )
    assert parse_line("persona.list") == ("persona.list", {})
    shell = Shell("ws://x/mcp", None, 5.0)
    shell.methods = {n: Method(n) for n in ("memory.search", "memory.store", "persona.list")}
    shell.personas = ["Aria", "Kira"]
    assert shell.candidates("memory.s", "memory.s") == ["memory.search", "memory.store"]
    assert shell.candidates("use k", "k") == ["Kira"]
    assert shell.candidates("persona.status persona_id=A", "persona_id=A") == ["persona_id=Aria"]
    assert ws_url("127.0.0.1:8000") == "ws://127.0.0.1:8000/mcp"
    assert ws_url("http://localhost:9/") == "ws://localhost:9/mcp"
    assert http_url("wss://h:1/mcp") == "https://h:1/mcp"
