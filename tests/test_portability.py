"""state.save / state.load and persona-mcp export / import, through the real doors, on
real SQLite, across restarts."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from mcp import Client

from persona_mcp.app import App
from persona_mcp.client import PersonaClient, RpcError
from persona_mcp.clock import ManualClock
from persona_mcp.config import Settings
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.store import portable
from tests.conftest import RunningServer, make_settings, serve, store_connection

EXE = Path(sys.executable).parent / "persona-mcp"


def exports(settings: Settings, user: str = "default") -> Path:
    return Path(settings.data_dir) / "exports" / user


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def write_lines(path: Path, items: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(i) + b"\n" for i in items)))


def without_time(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    head = {k: v for k, v in items[0].items() if k != "saved_at"}
    return [head, *items[1:]]


async def populate(client: PersonaClient) -> dict[str, Any]:
    """A user with personas, chats, memories, a relationship, a prune run, settings,
    MemoryOS pages and a visual context."""
    nia = (
        await client.call(
            "persona.create",
            {"name": "Nia", "description": "A sailor.", "personality_traits": ["bold"],
             "topic_preferences": {"sailing": 0.9}},
        )
    )["persona"]  # fmt: skip
    await client.call("persona.chat", {"message": "My sister Mara lives in Lisbon."})
    await client.call("persona.chat", {"message": "I love sailing, it makes me happy!"})
    await client.call("persona.chat", {"persona_id": "Nia", "message": "My boat is called Heron."})
    await client.call(
        "memory.store_batch",
        {
            "persona_id": "Nia",
            "memories": [
                {"content": f"A note about tide table {i}.", "importance": 0.2} for i in range(14)
            ],
        },
    )
    pruned = await client.call(
        "memory.prune", {"persona_id": "Nia", "strategy": "importance_only", "target_count": 12}
    )
    assert pruned["pruned_count"] > 0
    await client.call("memory.set_importance_weights", {"emotional": 0.3})
    await client.call(
        "add_memory", {"user_input": "I work as a nurse.", "agent_response": "Noted."}
    )
    await client.call("visual.update", {"persona_id": "Nia", "description": "A foggy pier"})
    return {"nia": nia["id"], "prune_run_id": pruned["prune_run_id"]}


async def answers(client: PersonaClient) -> dict[str, Any]:
    """What a user sees: every list, status, search and relationship."""
    listed = await client.call("persona.list")
    out: dict[str, Any] = {"list": listed}
    for p in listed["personas"]:
        pid = p["id"]
        out[f"status {pid}"] = await client.call("persona.status", {"persona_id": pid})
        out[f"rel {pid}"] = await client.call("persona.relationship", {"persona_id": pid})
        out[f"memories {pid}"] = await client.call("memory.list", {"persona_id": pid})
        out[f"stats {pid}"] = await client.call("memory.stats", {"persona_id": pid})
        out[f"tiers {pid}"] = await client.call("memory.tiers", {"persona_id": pid})
        for query in ("sister Lisbon", "boat", "tide table", "sailing"):
            found = await client.call(
                "memory.search", {"persona_id": pid, "query": query, "limit": 5}
            )
            # A hit counts as an access: compare what was found and how it ranked.
            out[f"search {pid} {query}"] = [
                (h["memory"]["id"], round(h["score"], 6)) for h in found["results"]
            ]
    out["prune"] = await client.call("memory.prune_stats")
    out["conversation"] = await client.call("conversation.status")
    return out


def comparable(seen: dict[str, Any]) -> dict[str, Any]:
    """Answers without the figures a look itself moves (access counts of searched
    memories, the session's own counters)."""
    text = orjson.dumps(seen, option=orjson.OPT_SORT_KEYS).decode()
    data = orjson.loads(text)
    for key, value in data.items():
        if key.startswith("memories "):
            for m in value["memories"]:
                m.pop("access_count")
                m.pop("last_accessed_at")
        if key.startswith("stats "):
            value.pop("access")
            for loaded in ("vector_index_loaded", "vector_index_size"):  # a cache, filled lazily
                value["index"].pop(loaded, None)
        if key == "prune":
            value.pop("config", None)
    return data


async def test_a_saved_state_loads_into_an_empty_data_directory_and_answers_as_before(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    clock = ManualClock()
    first = make_settings(tmp_path / "first", embedding_provider="minilm")
    app = App(first, clock=clock, embedder=minilm)
    async with serve(first, app) as server, server.client() as client:
        await populate(client)
        before = await answers(client)
        saved = await client.call("state.save", {})
    assert saved["path"].startswith("state-") and saved["path"].endswith(".jsonl.gz")
    original = exports(first) / saved["path"]
    assert saved["bytes"] == original.stat().st_size
    counts = saved["counts"]
    for section in ("personas", "conversations", "messages", "memories", "memory_archive",
                    "prune_runs", "relationships", "relationship_history", "moods", "config",
                    "tier_pages", "visual_context", "persona_states"):  # fmt: skip
        assert counts[section] > 0, section

    second = make_settings(tmp_path / "second", embedding_provider="minilm")
    exports(second).mkdir(parents=True)
    (exports(second) / "copy.jsonl.gz").write_bytes(original.read_bytes())
    app = App(second, clock=clock, embedder=minilm)
    async with serve(second, app) as server, server.client() as client:
        loaded = await client.call("state.load", {"path": "copy.jsonl.gz", "mode": "replace"})
        assert loaded["counts"] == counts
        assert loaded["reembedded"] == 0  # the same model made every vector
        after = await answers(client)
        resaved = await client.call("state.save", {"path": "again.jsonl.gz"})
    assert comparable(after) == comparable(before)
    # A save of the load is the original, ids included (only the moment of saving moved;
    # the searches just made counted as accesses, so those two columns move too).
    assert resaved["counts"] == counts

    def settled(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        moved = ("access_count", "last_accessed_at")
        out = []
        for item in without_time(items):
            if item.get("section") == "memory_scores":
                item = {**item, "row": {k: v for k, v in item["row"].items() if k not in moved}}
            out.append(item)
        return out

    assert settled(lines(exports(second) / "again.jsonl.gz")) == settled(lines(original))

    # Across a restart the loaded state is still what it was.
    app = App(second, clock=clock, embedder=minilm)
    async with serve(second, app) as server, server.client() as client:
        listed = await client.call("persona.list")
        assert [p["id"] for p in listed["personas"]] == [
            p["id"] for p in before["list"]["personas"]
        ]
        await client.call("state.save", {"path": "third.jsonl.gz"})
    assert settled(lines(exports(second) / "third.jsonl.gz")) == settled(
        lines(exports(second) / "again.jsonl.gz")
    )


async def test_a_save_of_an_untouched_load_is_byte_for_byte_the_original(tmp_path: Path) -> None:
    clock = ManualClock()
    first = make_settings(tmp_path / "first")
    async with serve(first, App(first, clock=clock)) as server, server.client() as client:
        await populate(client)
        await client.call("state.save", {"path": "a.jsonl.gz"})
    second = make_settings(tmp_path / "second")
    exports(second).mkdir(parents=True)
    (exports(second) / "a.jsonl.gz").write_bytes((exports(first) / "a.jsonl.gz").read_bytes())
    async with serve(second, App(second, clock=clock)) as server, server.client() as client:
        await client.call("state.load", {"path": "a.jsonl.gz", "mode": "replace"})
        await client.call("state.save", {"path": "b.jsonl.gz"})
    a = (exports(first) / "a.jsonl.gz").read_bytes()
    b = (exports(second) / "b.jsonl.gz").read_bytes()
    assert a == b  # same clock, same rows, same order: the same file


async def test_vectors_of_another_model_are_embedded_again_with_progress(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    settings = make_settings(tmp_path / "data", embedding_provider="minilm")
    async with serve(settings, App(settings, embedder=minilm)) as server:
        async with server.client() as client:
            await client.call("memory.store", {"content": "The user's dog is called Biscuit."})
            await client.call("memory.store", {"content": "The user plays the cello."})
            saved = await client.call("state.save", {"path": "mine.jsonl.gz"})
        items = lines(exports(settings) / saved["path"])
        for item in items:
            if item.get("section") == "memory_vectors":
                item["row"]["model"] = "some-other-model"
                item["row"]["embedding"] = "AACAPwAAAAA="  # a 2-d vector of that model
        items[0]["embedding_model"] = "some-other-model"
        write_lines(exports(settings) / "other.jsonl.gz", items)
        async with (
            Client(f"{server.http_url}/mcp", mode="legacy") as mcp,
        ):
            seen: list[tuple[float, float | None, str | None]] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                seen.append((done, total, message))

            result = await mcp.call_tool(
                "state.load",
                {"path": "other.jsonl.gz", "mode": "replace"},
                progress_callback=on_progress,
            )
        assert not result.is_error, result
        assert result.structured_content["reembedded"] == 2
        assert any(message == "re-embedding" for _, _, message in seen)
        async with server.client() as client:
            found = await client.call("memory.search", {"query": "pet dog name"})
            assert found["semantic"] is True
            assert found["results"][0]["memory"]["content"] == "The user's dog is called Biscuit."
    with store_connection(settings) as conn:
        models = {r[0] for r in conn.execute("SELECT model FROM memory_vectors")}
    assert models == {minilm.model}


async def test_a_bad_file_is_refused_whole_naming_the_line_and_nothing_is_written(
    server: RunningServer, settings: Settings
) -> None:
    async with server.client() as client:
        await client.call("memory.store", {"content": "A memory worth keeping."})
        saved = await client.call("state.save", {"path": "good.jsonl.gz"})
        good = lines(exports(settings) / saved["path"])
        await client.call("persona.create", {"name": "Later"})
        before = await client.call("persona.list")

        bad = [dict(i) for i in good]
        index = next(i for i, item in enumerate(bad) if item.get("section") == "memory_scores")
        scores = {**bad[index]["row"], "importance": "high"}
        bad[index] = {"section": "memory_scores", "row": scores}
        write_lines(exports(settings) / "bad.jsonl.gz", bad)
        with pytest.raises(RpcError) as caught:
            await client.call("state.load", {"path": "bad.jsonl.gz", "mode": "replace"})
        assert caught.value.code == -32602
        fields = [e["field"] for e in caught.value.data["errors"]]
        assert fields == [f"line {index + 1} (memory_scores).importance"]

        write_lines(exports(settings) / "cut.jsonl.gz", good[:-2])  # no end line
        with pytest.raises(RpcError) as cut:
            await client.call("state.load", {"path": "cut.jsonl.gz", "mode": "replace"})
        assert cut.value.code == -32602
        assert "cut short" in cut.value.message

        newer = [{**good[0], "version": 99}, *good[1:]]
        write_lines(exports(settings) / "newer.jsonl.gz", newer)
        with pytest.raises(RpcError) as version:
            await client.call("state.load", {"path": "newer.jsonl.gz"})
        assert version.value.data["errors"][0]["field"] == "version"

        memory_row = next(i["row"] for i in good if i.get("section") == "memories")
        end = {"end": {"counts": {**good[-1]["end"]["counts"], "memories": 2}}}
        orphan = [*good[:-1], {"section": "memories", "row": {
            **memory_row, "id": "m-1", "persona_id": "no-such-persona"}}, end]  # fmt: skip
        write_lines(exports(settings) / "orphan.jsonl.gz", orphan)
        with pytest.raises(RpcError) as ref:
            await client.call("state.load", {"path": "orphan.jsonl.gz"})
        assert any("is not a row of personas" in e["message"] for e in ref.value.data["errors"])

        (exports(settings) / "junk.jsonl.gz").write_bytes(b"not a state file")
        with pytest.raises(RpcError) as junk:
            await client.call("state.load", {"path": "junk.jsonl.gz"})
        assert junk.value.code == -32602

        assert await client.call("persona.list") == before


async def test_merge_replaces_the_file_s_personas_and_keeps_the_others_replace_keeps_none(
    server: RunningServer,
) -> None:
    async with server.client() as client:
        await client.call("persona.chat", {"persona_id": "Aria", "message": "I grow tomatoes."})
        saved = await client.call("state.save", {"path": "then.jsonl.gz"})
        await client.call("persona.chat", {"persona_id": "Aria", "message": "And basil too."})
        await client.call("persona.create", {"name": "Zed"})
        assert (await client.call("conversation.status", {"persona_id": "Aria"}))["turns"] == 2

        merged = await client.call("state.load", {"path": saved["path"]})
        assert merged["mode"] == "merge"
        names = [p["name"] for p in (await client.call("persona.list"))["personas"]]
        assert names == ["Aria", "Kira", "Zed"]
        assert (await client.call("conversation.status", {"persona_id": "Aria"}))["turns"] == 1

        again = await client.call("state.load", {"path": saved["path"]})  # idempotent
        assert again["counts"] == merged["counts"]
        found = await client.call("memory.search", {"persona_id": "Aria", "query": "tomatoes"})
        assert len(found["results"]) == 1  # loaded twice, held once

        replaced = await client.call("state.load", {"path": saved["path"], "mode": "replace"})
        names = [p["name"] for p in (await client.call("persona.list"))["personas"]]
        assert names == ["Aria", "Kira"]
        assert len(replaced["replaced_personas"]) == 3


async def test_paths_are_confined_to_the_user_s_exports_folder_unless_admin(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data", auth_mode="required")
    async with serve(settings) as server:
        _, bob_secret = await server.app.tokens.create("bob")
        _, root_secret = await server.app.tokens.create("root", admin=True)
        async with server.client(token=bob_secret) as bob:
            outside = tmp_path / "outside.jsonl.gz"
            for path in ("../x.jsonl.gz", "a/../../x.jsonl.gz", str(outside), "/etc/passwd"):
                for method in ("state.save", "state.load"):
                    with pytest.raises(RpcError) as refused:
                        await bob.call(method, {"path": path})
                    assert refused.value.code == -32602, (method, path)
                    assert refused.value.data["errors"][0]["field"] == "path"
            saved = await bob.call("state.save", {"path": "mine.jsonl.gz"})
            assert saved["path"] == "mine.jsonl.gz"
            assert (exports(settings, "bob") / "mine.jsonl.gz").is_file()
            assert not outside.exists()
        async with server.client(token=root_secret) as root:
            saved = await root.call("state.save", {"path": str(outside)})
            assert saved["path"] == str(outside)
            assert outside.is_file()
            # Bob's file is his: loading it as another user touches none of his rows.
            bob_file = str(exports(settings, "bob") / "mine.jsonl.gz")
            with pytest.raises(RpcError) as taken:
                await root.call("state.load", {"path": bob_file})
            assert taken.value.code == -32002


async def test_loaded_personas_are_served_at_once_from_every_cache(
    server: RunningServer, settings: Settings
) -> None:
    async with server.client() as client:
        created = await client.call("persona.create", {"name": "Ola", "description": "first"})
        pid = created["persona"]["id"]
        await client.call("memory.store", {"persona_id": pid, "content": "Ola keeps bees."})
        await client.call(
            "persona.chat", {"persona_id": pid, "message": "My garden has three hives, how lovely!"}
        )
        saved = await client.call("state.save", {"path": "ola.jsonl.gz"})
        await client.call("persona.delete", {"persona_id": pid})
        with pytest.raises(RpcError):
            await client.call("persona.status", {"persona_id": "Ola"})
        await client.call("state.load", {"path": saved["path"]})
        status = await client.call("persona.status", {"persona_id": "Ola"})
        assert status["persona"]["id"] == pid
        assert status["memory_count"] == 2
        assert status["user_relationship"] is not None
        found = await client.call("memory.search", {"persona_id": pid, "query": "bees"})
        assert found["results"][0]["memory"]["content"] == "Ola keeps bees."


def test_every_table_of_the_schema_is_in_the_state_file_or_excluded_with_a_reason(
    tmp_path: Path,
) -> None:
    with store_connection(make_settings(tmp_path / "data")) as conn:
        tables = set(portable.tables(conn))
        covered = {s.table for s in portable.SECTIONS} | set(portable.EXCLUDED)
        assert tables - covered == set(), "add these tables to store/portable.py SECTIONS"
        assert tables >= {s.table for s in portable.SECTIONS}
        for section in portable.SECTIONS:  # the file's column types are SQLite's names
            assert {c.type for c in portable.columns(conn, section)} <= {
                "TEXT", "REAL", "INTEGER", "BLOB"}, section.table  # fmt: skip


# -- the command line ------------------------------------------------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVER_", "LLM_"))}
    env["EMBEDDING_PROVIDER"] = "none"
    env["LLM_PROVIDER"] = "offline"
    return env


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args, "--env-file", str(tmp_path / "none.env")],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.sqlite_only("the command refuses a data directory whose SQLite file is locked")
async def test_export_and_import_on_the_command_line_round_trip_with_progress(
    tmp_path: Path,
) -> None:
    first = make_settings(tmp_path / "first")
    async with serve(first) as server, server.client() as client:
        await populate(client)
        before = await client.call("persona.list")
        # While a server holds the data directory, the command refuses plainly.
        busy = _cli(
            tmp_path, "export", str(tmp_path / "x.jsonl.gz"), "--data-dir", str(first.data_dir)
        )
        assert busy.returncode == 1
        assert "in use" in busy.stderr
    file = tmp_path / "backup.jsonl.gz"
    done = _cli(tmp_path, "export", str(file), "--data-dir", str(first.data_dir))
    assert done.returncode == 0, done.stderr
    assert "saving:" in done.stderr and "saved" in done.stdout
    assert file.is_file()

    second = make_settings(tmp_path / "second")
    done = _cli(tmp_path, "import", str(file), "--data-dir", str(second.data_dir), "--replace")
    assert done.returncode == 0, done.stderr
    assert "loaded" in done.stderr and "loaded" in done.stdout and "replace" in done.stdout
    async with serve(second) as server, server.client() as client:
        after = await client.call("persona.list")
        assert [p["id"] for p in after["personas"]] == [p["id"] for p in before["personas"]]
        found = await client.call("memory.search", {"persona_id": "Aria", "query": "sister"})
        assert found["results"][0]["memory"]["content"] == "My sister Mara lives in Lisbon."

    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"format": "persona-mcp-state", "version": 1}\n'))
    failed = _cli(tmp_path, "import", str(broken), "--data-dir", str(second.data_dir))
    assert failed.returncode == 2
    assert "sections" in failed.stderr


def as_version(items: list[dict[str, Any]], version: int) -> list[dict[str, Any]]:
    """A state file as an older version wrote it. Version 2 (before m012): an archived
    memory whole in its archive row, not in `memories`. Version 1 (before m011) also:
    each memory's scores and vector in its row, an archived memory's vector in its
    archive row."""
    split = ("memory_scores", "memory_vectors") if version == 1 else ()
    rows = {i["row"]["id"]: i["row"] for i in items if i.get("section") == "memories"}
    archived = {i["row"]["id"] for i in items if i.get("section") == "memory_archive"}
    scores = {i["row"]["memory_id"]: i["row"] for i in items if i.get("section") == "memory_scores"}
    vectors = {i["row"]["memory_id"]: i["row"] for i in items
               if i.get("section") == "memory_vectors"}  # fmt: skip
    head = {**items[0], "version": version, "sections": [s for s in items[0]["sections"]
                                                          if s not in split]}  # fmt: skip
    out = [head]
    for item in items[1:]:
        section = item.get("section")
        if section in split or (section == "memories" and item["row"]["id"] in archived):
            continue
        if section == "memory_archive":
            item = {"section": section, "row": {**rows[item["row"]["id"]], **item["row"]}}
        if section in ("memories", "memory_archive") and version == 1:
            row = dict(item["row"])
            if section == "memories":
                kept = scores[row["id"]]
                for column in ("importance", "access_count", "last_accessed_at", "decayed_at",
                               "pinned"):  # fmt: skip
                    row[column] = kept[column]
            vector = vectors.get(row["id"])
            row["embedding"] = vector["embedding"] if vector else None
            row["embedding_model"] = vector["model"] if vector else None
            item = {"section": section, "row": row}
        if "end" in item:
            counts = {k: v for k, v in item["end"]["counts"].items() if k not in split}
            counts["memories"] -= len(archived)
            item = {"end": {**item["end"], "counts": counts}}
        out.append(item)
    return out


@pytest.mark.parametrize("version", [1, 2])
async def test_a_file_of_an_earlier_version_loads_as_it_was(
    tmp_path: Path, minilm: MiniLMEmbedder, version: int
) -> None:
    clock = ManualClock()
    first = make_settings(tmp_path / "first", embedding_provider="minilm")
    app = App(first, clock=clock, embedder=minilm)
    async with serve(first, app) as server, server.client() as client:
        await populate(client)
        before = await answers(client)
        saved = await client.call("state.save", {"path": "now.jsonl.gz"})
    original = lines(exports(first) / saved["path"])
    old = as_version(original, version)
    assert any(i.get("section") == "memory_archive" and "content" in i["row"] for i in old)
    if version == 1:
        assert not any(i.get("section") == "memory_vectors" for i in old)
        assert any(i.get("section") == "memories" and i["row"]["embedding"] for i in old)

    second = make_settings(tmp_path / "second", embedding_provider="minilm")
    write_lines(exports(second) / "old.jsonl.gz", old)
    app = App(second, clock=clock, embedder=minilm)
    async with serve(second, app) as server, server.client() as client:
        loaded = await client.call("state.load", {"path": "old.jsonl.gz", "mode": "replace"})
        assert loaded["reembedded"] == 0  # the vectors came over as they were
        assert loaded["counts"] == saved["counts"]
        assert comparable(await answers(client)) == comparable(before)
        await client.call("state.save", {"path": "again.jsonl.gz"})

    def scores_without_accesses(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in without_time(items):
            if item.get("section") == "memory_scores":
                row = {k: v for k, v in item["row"].items()
                       if k not in ("access_count", "last_accessed_at")}  # fmt: skip
                item = {**item, "row": row}
            out.append(item)
        return out

    def by_id(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # An archived memory of the old file joins `memories` after the live ones.
        memories = sorted((i for i in items if i.get("section") == "memories"),
                          key=lambda i: i["row"]["id"])  # fmt: skip
        rest = iter(memories)
        return [next(rest) if i.get("section") == "memories" else i for i in items]

    again = lines(exports(second) / "again.jsonl.gz")
    assert by_id(scores_without_accesses(again)) == by_id(scores_without_accesses(original))
