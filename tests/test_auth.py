"""Every caller is a user: tokens, AUTH_MODE=required at every door, isolation between
users, admin scope, the rate limit, the connection cap and /metrics, through the doors."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.config import Settings
from tests.conftest import RunningServer, make_settings, serve

EXE = Path(sys.executable).parent / "persona-mcp"
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}


@pytest.fixture
def auth_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", auth_mode="required")


@pytest.fixture
async def auth_server(auth_settings: Settings) -> AsyncIterator[RunningServer]:
    async with serve(auth_settings) as running:
        yield running


async def token(server: RunningServer, user: str, admin: bool = False) -> str:
    _, secret = await server.app.tokens.create(user, admin=admin)
    return secret


@asynccontextmanager
async def mcp_http(server: RunningServer, secret: str, mode: str = "legacy") -> AsyncIterator[Any]:
    headers = {"Authorization": f"Bearer {secret}"}
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(f"{server.http_url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


async def rpc_code(client: PersonaClient, method: str, params: dict[str, Any]) -> int:
    with pytest.raises(RpcError) as caught:
        await client.call(method, params)
    return caught.value.code


async def test_a_websocket_handshake_without_or_with_a_wrong_token_gets_401(
    auth_server: RunningServer,
) -> None:
    for headers in (None, {"Authorization": "Bearer pmcp_not-a-real-token"}):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(auth_server.ws_url, additional_headers=headers)
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_mcp_http_without_or_with_a_wrong_token_gets_401_with_a_bearer_challenge(
    auth_server: RunningServer,
) -> None:
    async with httpx.AsyncClient() as http:
        for extra in ({}, {"Authorization": "Bearer pmcp_wrong"}):
            answer = await http.post(
                f"{auth_server.http_url}/mcp", json=INIT, headers=MCP_HEADERS | extra
            )
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"].startswith("Bearer")
        health = await http.get(f"{auth_server.http_url}/health")
    assert health.status_code == 200


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_alice_and_bob_tokens_work_on_the_websocket_and_mcp_http(
    auth_server: RunningServer, mode: str
) -> None:
    for user in ("alice", "bob"):
        secret = await token(auth_server, user)
        async with auth_server.client(token=secret) as ws:
            listed = await ws.call("persona.list")
            assert [p["name"] for p in listed["personas"]] == ["Aria", "Kira"]
            await ws.call("persona.create", {"name": f"{user}-only", "description": user})
        async with mcp_http(auth_server, secret, mode) as client:
            listed_mcp = await client.call_tool("persona.list", {})
            names = [p["name"] for p in listed_mcp.structured_content["personas"]]
            assert names == ["Aria", "Kira", f"{user}-only"]


async def test_a_browser_can_offer_the_token_as_a_subprotocol_and_gets_persona_mcp_echoed(
    auth_server: RunningServer,
) -> None:
    secret = await token(auth_server, "alice")
    async with websockets.connect(
        auth_server.ws_url, subprotocols=["persona-mcp", f"bearer.{secret}"]
    ) as ws:
        assert ws.subprotocol == "persona-mcp"
        await ws.send('{"jsonrpc": "2.0", "id": 1, "method": "persona.list"}')
        assert '"Aria"' in str(await ws.recv())
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(auth_server.ws_url, subprotocols=["persona-mcp", "bearer.nope"])
    assert refused.value.response.status_code == 401


async def test_alice_s_personas_memories_and_conversations_are_invisible_to_bob(
    auth_server: RunningServer,
) -> None:
    alice_secret, bob_secret = await token(auth_server, "alice"), await token(auth_server, "bob")
    async with auth_server.client(token=alice_secret) as alice:
        persona = (await alice.call("persona.create", {"name": "Vesper", "description": "hers"}))[
            "persona"
        ]
        memory = (
            await alice.call(
                "memory.store", {"content": "Alice keeps a blue violin", "persona_id": "Vesper"}
            )
        )["memory"]
        chat = await alice.call("persona.chat", {"message": "Hello Vesper", "persona_id": "Vesper"})
        before = await alice.call(
            "conversation.status", {"conversation_id": chat["conversation_id"]}
        )

    ids = {"persona": persona["id"], "memory": memory["id"], "conv": chat["conversation_id"]}
    async with auth_server.client(token=bob_secret) as bob:
        listed = await bob.call("persona.list")
        assert "Vesper" not in [p["name"] for p in listed["personas"]]
        assert persona["id"] not in [p["id"] for p in listed["personas"]]
        found = await bob.call("memory.search", {"query": "blue violin"})
        assert found["results"] == []
        refused = {
            "memory.get": {"memory_id": ids["memory"]},
            "memory.delete": {"memory_id": ids["memory"]},
            "persona.chat": {"message": "hi", "persona_id": ids["persona"]},
            "persona.status": {"persona_id": ids["persona"]},
            "persona.update": {"persona_id": ids["persona"], "description": "mine now"},
            "persona.delete": {"persona_id": ids["persona"]},
            "persona.switch": {"persona_id": ids["persona"]},
            "memory.store": {"content": "planted", "persona_id": ids["persona"]},
            "memory.search": {"query": "violin", "persona_id": ids["persona"]},
            "memory.stats": {"persona_id": ids["persona"]},
            "memory.prune": {"persona_id": ids["persona"]},
            "memory.prune_recommendations": {"persona_id": ids["persona"]},
            "memory.decay_force": {"persona_id": ids["persona"], "hours": 100},
            "memory.restore": {"memory_ids": [ids["memory"]]},
            "conversation.status": {"conversation_id": ids["conv"]},
            "conversation.end": {"conversation_id": ids["conv"]},
            "persona.chat ": {"message": "hi", "conversation_id": ids["conv"]},
        }
        for method, params in refused.items():
            assert await rpc_code(bob, method.strip(), params) == -32001, method
        # An unknown id answers exactly like alice's id.
        unknown = await rpc_code(bob, "memory.get", {"memory_id": "no-such-memory"})
        assert unknown == -32001
        status = await bob.call("system.status")
        assert status["counts"]["memories"] == 0

    async with auth_server.client(token=alice_secret) as alice:
        kept = await alice.call("memory.get", {"memory_id": ids["memory"]})
        assert kept["memory"]["content"] == "Alice keeps a blue violin"
        assert kept["memory"]["importance"] == memory["importance"]  # bob's decay did not reach
        after = await alice.call("conversation.status", {"conversation_id": ids["conv"]})
        assert after["turns"] == before["turns"]
        mine = await alice.call("persona.status", {"persona_id": "Vesper"})
        assert mine["persona"]["description"] == "hers"


async def test_bob_presenting_alice_s_mcp_session_id_still_acts_as_bob(
    auth_server: RunningServer,
) -> None:
    alice_secret, bob_secret = await token(auth_server, "alice"), await token(auth_server, "bob")
    url = f"{auth_server.http_url}/mcp"
    init = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}},
    }  # fmt: skip

    def call(id_: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
                "params": {"name": name, "arguments": arguments}}  # fmt: skip

    async with httpx.AsyncClient() as http:
        as_alice = MCP_HEADERS | {"Authorization": f"Bearer {alice_secret}"}
        opened = await http.post(url, json=init, headers=as_alice)
        session_id = opened.headers["mcp-session-id"]
        as_alice |= {"mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"}
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await http.post(url, json=done, headers=as_alice)
        create = call(2, "persona.create", {"name": "Vesper", "description": "hers"})
        assert "Vesper" in (await http.post(url, json=create, headers=as_alice)).text
        switch = call(3, "persona.switch", {"persona_id": "Vesper"})
        assert "Vesper" in (await http.post(url, json=switch, headers=as_alice)).text
        as_bob = as_alice | {"Authorization": f"Bearer {bob_secret}"}
        status = await http.post(url, json=call(4, "persona.status", {}), headers=as_bob)
        listed = await http.post(url, json=call(5, "persona.list", {}), headers=as_bob)
    assert status.status_code == 200
    assert "Vesper" not in status.text and "Aria" in status.text
    assert "Vesper" not in listed.text


async def test_a_revoked_token_is_refused_on_the_next_connection(
    auth_server: RunningServer,
) -> None:
    row, secret = await auth_server.app.tokens.create("carol")
    async with auth_server.client(token=secret) as carol:
        await carol.call("persona.list")
    await auth_server.app.tokens.revoke(row.id)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            auth_server.ws_url, additional_headers={"Authorization": f"Bearer {secret}"}
        )
    assert refused.value.response.status_code == 401
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{auth_server.http_url}/mcp",
            json=INIT,
            headers=MCP_HEADERS | {"Authorization": f"Bearer {secret}"},
        )
    assert answer.status_code == 401


async def test_bob_s_flood_is_rate_limited_while_alice_s_calls_pass(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", auth_mode="required", rate_limit_per_minute=5)
    async with serve(settings) as server:
        alice_secret, bob_secret = await token(server, "alice"), await token(server, "bob")
        async with server.client(token=bob_secret) as bob:
            replies = [await bob.request("persona.list") for _ in range(12)]
        limited = [r["error"] for r in replies if "error" in r]
        assert limited, "the flood was never limited"
        assert {e["code"] for e in limited} == {-32004}
        assert all(e["data"]["retry_after_seconds"] > 0 for e in limited)
        async with server.client(token=alice_secret) as alice:
            for _ in range(3):
                assert (await alice.call("persona.list"))["personas"]
        # A new connection with the same token shares the bucket: the limit is per token.
        async with server.client(token=bob_secret) as bob_again:
            assert await rpc_code(bob_again, "persona.list", {}) == -32004


async def test_a_non_admin_cannot_run_server_wide_jobs_but_an_admin_can(
    auth_server: RunningServer,
) -> None:
    user_secret, admin_secret = (
        await token(auth_server, "bob"),
        await token(auth_server, "root", admin=True),
    )
    async with auth_server.client(token=user_secret) as bob:
        assert await rpc_code(bob, "memory.decay_stop", {}) == -32003
        assert await rpc_code(bob, "memory.decay_start", {}) == -32003
        assert await rpc_code(bob, "memory.set_decay_config", {"rate": 0.5}) == -32003
        assert await rpc_code(bob, "memory.prune_all", {"all_users": True}) == -32003
        own = await bob.call("memory.prune_all", {"dry_run": True})
        assert own["dry_run"] is True
        # Per-user settings stay the user's own.
        config = await bob.call("memory.set_pruning_config", {"prune_below": 0.3})
        assert config["prune_below"] == 0.3
        status = await bob.call("system.status")
        assert status["storage"] is None and status["background"] is None
    async with auth_server.client(token=admin_secret) as root:
        stopped = await root.call("memory.decay_stop")
        assert stopped["running"] is False
        everyone = await root.call("memory.prune_all", {"all_users": True, "dry_run": True})
        assert everyone["dry_run"] is True
        theirs = await root.call("memory.prune_stats")
        assert theirs["config"]["prune_below"] == 0.5  # bob's change stayed bob's
        assert (await root.call("system.status"))["storage"]["bytes"] > 0


async def test_metrics_counts_the_calls_just_made_and_needs_admin_scope(
    auth_server: RunningServer,
) -> None:
    user_secret, admin_secret = (
        await token(auth_server, "bob"),
        await token(auth_server, "root", admin=True),
    )
    async with auth_server.client(token=user_secret) as bob:
        for _ in range(3):
            await bob.call("persona.list")
        await bob.call("memory.store", {"content": "Bob grows tomatoes"})
        assert await rpc_code(bob, "memory.get", {"memory_id": "nope"}) == -32001
        await bob.call("persona.chat", {"message": "Hello"})
    async with httpx.AsyncClient() as http:
        url = f"{auth_server.http_url}/metrics"
        assert (await http.get(url)).status_code == 401
        forbidden = await http.get(url, headers={"Authorization": f"Bearer {user_secret}"})
        assert forbidden.status_code == 403
        answer = await http.get(url, headers={"Authorization": f"Bearer {admin_secret}"})
    assert answer.status_code == 200
    text = answer.text
    assert 'persona_mcp_requests_total{method="persona.list",outcome="ok"} 3.0' in text
    assert 'persona_mcp_requests_total{method="memory.get",outcome="not_found"} 1.0' in text
    assert 'persona_mcp_request_duration_seconds_count{method="persona.list"} 3.0' in text
    assert 'persona_mcp_llm_calls_total{outcome="ok",provider="offline"} 1.0' in text
    assert 'persona_mcp_open_connections{transport="websocket"} 0.0' in text
    assert 'persona_mcp_connections_refused_total{reason="unauthenticated"} 1.0' in text
    memories = next(line for line in text.splitlines() if line.startswith("persona_mcp_memories "))
    assert float(memories.split()[1]) >= 1


async def test_a_websocket_past_max_connections_is_refused_with_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", max_connections=2)
    async with serve(settings) as server, server.client() as first, server.client() as second:
        await first.call("persona.list")
        await second.call("persona.list")
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(server.ws_url)
        assert refused.value.response.status_code == 503
    # Closing connections frees their slots (checked on a fresh server's accounting).
    assert server.app.connections == 0


async def test_a_user_past_the_persona_cap_gets_a_clear_minus_32004(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", max_personas_per_user=3)
    async with serve(settings) as server, server.client() as client:
        await client.call("persona.create", {"name": "Third", "description": "ok"})
        with pytest.raises(RpcError) as over:
            await client.call("persona.create", {"name": "Fourth", "description": "no"})
    assert over.value.code == -32004
    assert over.value.data["limit"] == "MAX_PERSONAS_PER_USER"


async def test_a_user_past_the_memory_cap_gets_a_clear_minus_32004(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", max_memories_per_user=12)
    async with serve(settings) as server, server.client() as client:
        batch = [{"content": f"fact number {i}"} for i in range(10)]
        await client.call("memory.store_batch", {"memories": batch})
        with pytest.raises(RpcError) as over:
            await client.call("memory.store_batch", {"memories": batch[:3]})
        assert over.value.code == -32004
        assert over.value.data["limit"] == "MAX_MEMORIES_PER_USER"
        assert (await client.call("system.status"))["counts"]["memories"] == 10


# -- the command line and stdio ---------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SERVER_", "LLM_", "AUTH_", "PERSONA_MCP_"))
    }
    return env | {"EMBEDDING_PROVIDER": "none", **extra}


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args, "--data-dir", str(tmp_path / "data"),
         "--env-file", str(tmp_path / "none.env")],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_token_create_list_and_revoke_keep_only_a_hash(tmp_path: Path) -> None:
    created = _cli(tmp_path, "token", "create", "--user", "alice", "--label", "laptop")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("pmcp_") and len(secret) > 40
    admin = _cli(tmp_path, "token", "create", "--user", "root", "--admin")
    assert admin.returncode == 0, admin.stderr

    listed = _cli(tmp_path, "token", "list")
    assert listed.returncode == 0
    header, *rows = listed.stdout.strip().splitlines()
    assert header.split("\t")[:6] == ["ID", "USER", "LABEL", "SCOPES", "CREATED", "LAST_USED"]
    alice = next(r.split("\t") for r in rows if "\talice\t" in r)
    assert alice[0].startswith("tok_") and alice[2] == "laptop" and alice[3] == "user"
    assert alice[5] == "never"
    assert "user,admin" in next(r for r in rows if "\troot\t" in r)
    assert secret not in listed.stdout

    with sqlite3.connect(tmp_path / "data" / "persona_memory.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert secret not in dump

    revoked = _cli(tmp_path, "token", "revoke", alice[0])
    assert revoked.returncode == 0
    assert "revoked" in _cli(tmp_path, "token", "list").stdout
    again = _cli(tmp_path, "token", "revoke", alice[0])
    assert again.returncode == 1 and "No active token" in again.stderr


async def _run(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(EXE), *args, "--data-dir", str(tmp_path / "data"),
        "--env-file", str(tmp_path / "none.env"),
        env=_env(tmp_path, **env), cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_stdio_acts_as_the_user_of_persona_mcp_token(tmp_path: Path) -> None:
    _, created, _ = await _run(tmp_path, "token", "create", "--user", "alice")
    secret = created.strip().splitlines()[-1]

    def params(**extra: str) -> StdioServerParameters:
        return StdioServerParameters(
            command=str(EXE),
            args=["stdio", "--data-dir", str(tmp_path / "data"), "--llm", "offline",
                  "--auth", "required", "--env-file", str(tmp_path / "none.env")],
            env=_env(tmp_path, **extra),
        )  # fmt: skip

    async with Client(params(PERSONA_MCP_TOKEN=secret), mode="legacy") as client:
        await client.call_tool("persona.create", {"name": "Stdio", "description": "alice's"})
        listed = await client.call_tool("persona.list", {})
        assert [p["name"] for p in listed.structured_content["personas"]] == [
            "Aria", "Kira", "Stdio",
        ]  # fmt: skip
        decay = await client.call_tool("memory.decay_stop", {})
        assert decay.is_error is True and "-32003" in decay.content[0].text
    with sqlite3.connect(tmp_path / "data" / "persona_memory.db") as conn:
        owner = conn.execute("SELECT user_id FROM personas WHERE name = 'Stdio'").fetchone()
    assert owner == ("alice",)

    code, out, err = await _run(
        tmp_path, "stdio", "--auth", "required", PERSONA_MCP_TOKEN="pmcp_wrong"
    )
    assert code == 2
    assert "Invalid or revoked token" in err
    assert out == ""


def test_serve_on_all_interfaces_without_required_auth_refuses_clearly(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(EXE), "serve", "--host", "0.0.0.0", "--env-file", str(tmp_path / "none.env")],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "refusing to bind to 0.0.0.0" in done.stderr
    assert "--auth required" in done.stderr
