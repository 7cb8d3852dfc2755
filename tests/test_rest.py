"""The REST door (/api/v1, /docs, /openapi.json) over real HTTP on loopback: Persona's
user, ingest, rag/query and ask routes, resource routes, errors, auth and the guard."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi.routing import APIRoute

from persona_mcp.client import RpcError
from persona_mcp.store.users import user_tables
from persona_mcp.transports.rest import create_rest
from tests.conftest import RunningServer, make_settings, serve
from tests.fakes.llm_server import FakeLLMServer

DIARY = (
    "Yesterday I went hiking with my mother Helen near Lisbon. I love rainy days and I am "
    "a shy person. Next month I plan to run the Berlin marathon."
)
SCHEMA = {
    "type": "object",
    "properties": {
        "mother": {"type": "string"},
        "cities": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["mother", "cities"],
}


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


def rows_of(user: str) -> Any:
    def count(conn: sqlite3.Connection) -> dict[str, int]:
        found = {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE user_id = ?", (user,)
            ).fetchone()[0]
            for table in user_tables(conn)
        }
        found["config"] = conn.execute(
            "SELECT count(*) FROM config WHERE scope = ?", (user,)
        ).fetchone()[0]
        return {t: n for t, n in found.items() if n}

    return count


async def test_a_new_user_over_rest_ingests_asks_and_is_deleted_whole(tmp_path: Path) -> None:
    async with FakeLLMServer(models=["llama3.1:8b"]) as fake:
        fake.structured = lambda schema, messages: {"mother": "Helen", "cities": ["Lisbon"]}
        settings = make_settings(
            tmp_path / "data", llm_provider="openai", openai_base_url=fake.openai_url
        )
        async with (
            serve(settings) as server,
            httpx.AsyncClient(base_url=server.http_url, timeout=60) as http,
        ):
            created = await http.post("/api/v1/users/alice")
            assert created.status_code == 201
            assert created.json()["created"] is True
            assert [p["name"] for p in created.json()["personas"]] == ["Aria", "Kira"]
            again = await http.post("/api/v1/users/alice")
            assert again.status_code == 200 and again.json()["created"] is False

            ingested = await http.post("/api/v1/users/alice/ingest", json={"content": DIARY})
            assert ingested.status_code == 201
            body = ingested.json()
            kinds = {m["memory_type"] for m in body["memories"]}
            assert kinds == {"episode", "psyche", "goal"}
            assert {"Helen", "Lisbon", "Berlin"} <= {e["name"] for e in body["entities"]}
            assert all(m["user_id"] == "alice" for m in body["memories"])
            first_episode = next(m for m in body["memories"] if m["memory_type"] == "episode")

            later = await http.post(
                "/api/v1/users/alice/ingest",
                json={"content": "Mom says she is moving to Porto.", "source": "notes"},
            )
            second_episode = later.json()["memories"][0]
            nexts = [
                (x["source"], x["target"])
                for x in later.json()["links"]
                if x["edge_type"] == "next"
            ]
            assert (first_episode["id"], second_episode["id"]) in nexts

            rag = await http.post(
                "/api/v1/users/alice/rag/query", json={"query": "Where is my mother moving?"}
            )
            assert rag.status_code == 200
            assert "Helen (person, the user's mother" in rag.json()["context"]
            assert rag.json()["answer"] == "echo: Where is my mother moving?"
            assert (
                "moving to Porto"
                in fake.last("/v1/chat/completions").json["messages"][0]["content"]
            )

            asked = await http.post(
                "/api/v1/users/alice/ask",
                json={"query": "Who is my mother and where was she?", "output_schema": SCHEMA},
            )
            assert asked.status_code == 200
            jsonschema.validate(asked.json()["answer"], SCHEMA)
            assert asked.json()["memory_ids"]

            assert server.app.personas.visible("alice")
            assert await server.app.db.read(rows_of("alice"))
            deleted = await http.delete("/api/v1/users/alice")
            assert deleted.status_code == 200
            assert deleted.json()["removed"]["memories"] == 4
            assert await server.app.db.read(rows_of("alice")) == {}
            assert server.app.personas.visible("alice") == []
            gone = await http.delete("/api/v1/users/alice")
            assert gone.status_code == 404
            assert gone.json()["error"] == {
                "code": -32001,
                "message": "No user 'alice'",
                "data": {"user_id": "alice"},
            }


async def test_without_a_language_model_ask_answers_503_saying_what_to_configure(
    http: httpx.AsyncClient,
) -> None:
    reply = await http.post(
        "/api/v1/users/bob/ask", json={"query": "Who am I?", "output_schema": SCHEMA}
    )
    assert reply.status_code == 503
    error = reply.json()["error"]
    assert error["code"] == -32005
    assert "LLM_PROVIDER" in error["message"] and "OPENAI_BASE_URL" in error["message"]


async def test_openapi_lists_every_route_and_the_docs_page_is_served_locally(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    spec = (await http.get("/openapi.json")).json()
    routes = [r for r in create_rest(server.app).routes if isinstance(r, APIRoute)]
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    served = {(r.path, m) for r in routes for m in r.methods if r.include_in_schema and m != "HEAD"}
    assert served == documented
    assert len(served) >= 18
    for path in ("/api/v1/users/{user_id}/ingest", "/api/v1/users/{user_id}/rag/query"):
        post = spec["paths"][path]["post"]
        assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == (
            ["content"] if path.endswith("ingest") else ["query"]
        )
        assert "503" in post["responses"]
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in docs.text
    assert "cdn." not in docs.text
    assert (await http.get("/docs/static/swagger-ui-bundle.js")).status_code == 200


async def test_errors_have_http_codes_and_the_same_messages_as_the_websocket_door(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    prefix = "/api/v1/users/default"
    async with server.client() as ws:
        with pytest.raises(RpcError) as ws_missing:
            await ws.call("memory.get", {"memory_id": "nope"})
    missing = await http.get(f"{prefix}/memories/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == ws_missing.value.message

    bad = await http.post(f"{prefix}/memories/search", json={"query": "x", "limit": "10"})
    assert bad.status_code == 400
    assert bad.json()["error"]["data"]["errors"][0]["field"] == "limit"
    assert (await http.post(f"{prefix}/memories", content=b"{not json")).status_code == 400
    assert (await http.post(f"{prefix}/memories", json=[1, 2])).status_code == 400
    query = await http.get(f"{prefix}/memories", params={"limit": "many"})
    assert query.status_code == 400 and query.json()["error"]["code"] == -32602

    assert (await http.post(f"{prefix}/personas", json={"name": "Nova"})).status_code == 201
    taken = await http.post(f"{prefix}/personas", json={"name": "nova"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == -32002
    assert (await http.get("/api/v1/nothing/here")).status_code == 404


async def test_rate_limits_answer_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", rate_limit_per_minute=2)
    async with (
        serve(settings) as server,
        httpx.AsyncClient(base_url=server.http_url, timeout=60) as http,
    ):
        codes = [(await http.get("/api/v1/users/carol/personas")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = await http.get("/api/v1/users/carol/personas")
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["code"] == -32004


async def test_a_user_may_address_only_their_own_user_id_and_an_admin_any(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", auth_mode="required")
    async with (
        serve(settings) as server,
        httpx.AsyncClient(base_url=server.http_url, timeout=60) as http,
    ):
        _, alice = await server.app.tokens.create("alice")
        _, admin = await server.app.tokens.create("ops", admin=True)
        as_alice = {"Authorization": f"Bearer {alice}"}
        refused = await http.get("/api/v1/users/alice/personas")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == -32003
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert (await http.get("/api/v1/users/alice/personas", headers=as_alice)).status_code == 200
        other = await http.post(
            "/api/v1/users/bob/ingest", headers=as_alice, json={"content": "x y"}
        )
        assert other.status_code == 403 and other.json()["error"]["code"] == -32003
        by_admin = await http.post(
            "/api/v1/users/bob/ingest",
            headers={"Authorization": f"Bearer {admin}"},
            json={"content": "I met Zora in Split."},
        )
        assert by_admin.status_code == 201
        assert by_admin.json()["memories"][0]["user_id"] == "bob"
        assert (await http.get("/openapi.json")).status_code == 200  # no user data: open
        assert (await http.get("/docs")).status_code == 200


async def test_the_host_and_origin_guard_covers_the_rest_door(http: httpx.AsyncClient) -> None:
    foreign_host = await http.get(
        "/api/v1/users/default/personas", headers={"Host": "evil.example"}
    )
    assert foreign_host.status_code == 421
    foreign_origin = await http.post(
        "/api/v1/users/default/ingest",
        headers={"Origin": "http://evil.example"},
        json={"content": "I went to Rome."},
    )
    assert foreign_origin.status_code == 403
    local = await http.get(
        "/api/v1/users/default/personas", headers={"Origin": "http://localhost:3000"}
    )
    assert local.status_code == 200


async def test_resource_routes_manage_personas_and_memories(http: httpx.AsyncClient) -> None:
    prefix = "/api/v1/users/dana"
    persona = (await http.post(f"{prefix}/personas", json={"name": "Sage"})).json()["persona"]
    pid = persona["id"]
    changed = await http.patch(f"{prefix}/personas/{pid}", json={"description": "Wise."})
    assert changed.json()["persona"]["description"] == "Wise."
    assert (await http.get(f"{prefix}/personas/Sage")).json()["persona"]["id"] == pid
    names = [p["name"] for p in (await http.get(f"{prefix}/personas")).json()["personas"]]
    assert names == ["Aria", "Kira", "Sage"]
    stored = await http.post(
        f"{prefix}/memories", json={"content": "The user grows tomatoes.", "persona_id": pid}
    )
    assert stored.status_code == 201
    mid = stored.json()["memory"]["id"]
    assert (
        (await http.get(f"{prefix}/memories/{mid}"))
        .json()["memory"]["content"]
        .endswith("tomatoes.")
    )
    listed = await http.get(f"{prefix}/memories", params={"persona_id": pid, "limit": 5})
    assert [m["id"] for m in listed.json()["memories"]] == [mid]
    found = await http.post(
        f"{prefix}/memories/search", json={"query": "tomatoes", "persona_id": pid}
    )
    assert found.json()["results"][0]["memory"]["id"] == mid
    edited = await http.patch(
        f"{prefix}/memories/{mid}", json={"content": "The user grows chillies."}
    )
    assert edited.json()["memory"]["content"] == "The user grows chillies."
    chat = await http.post(f"{prefix}/personas/{pid}/chat", json={"message": "I also keep bees."})
    assert chat.json()["model"] == "offline"
    ingested = await http.post(
        f"{prefix}/ingest",
        json={"content": "I visited Kyoto with my friend Kenji.", "persona_id": pid},
    )
    memory_id = ingested.json()["memories"][0]["id"]
    kenji = await http.get(f"{prefix}/entities/Kenji", params={"persona_id": pid})
    assert kenji.json()["memories"][0]["id"] == memory_id
    around = await http.get(
        f"{prefix}/graph/{memory_id}/neighbors", params={"edge_types": ["mentions"]}
    )
    assert {n["node"]["label"] for n in around.json()["neighbors"]} == {"Kyoto", "Kenji"}
    assert (await http.delete(f"{prefix}/memories/{mid}")).json()["deleted"] is True
    assert (await http.get(f"{prefix}/memories/{mid}")).status_code == 404
    assert (await http.delete(f"{prefix}/personas/{pid}")).json()["deleted"] is True
    assert (await http.get(f"{prefix}/personas/{pid}")).status_code == 404
