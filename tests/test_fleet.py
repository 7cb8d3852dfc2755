"""Several instances over one PostgreSQL: real `persona-mcp serve` processes on loopback
sharing one database of the session's PostgreSQL server (see `pg_server`)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from persona_mcp.app import App
from persona_mcp.client import PersonaClient
from persona_mcp.client.ws import RpcError
from persona_mcp.clock import ManualClock
from persona_mcp.jobs.election import SLACK, Advisory
from tests import pgsupport
from tests.conftest import free_port, make_settings

DECAY_INTERVAL = 1.0  # seconds, for the test of the election


@pytest.fixture
def pg_url(pg_server: pgsupport.Server) -> Iterator[str]:
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


class Instance:
    """One `persona-mcp serve` process over the shared database."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.url = f"ws://127.0.0.1:{port}/mcp"

    def client(self) -> PersonaClient:
        return PersonaClient(self.url, timeout=60)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()


async def start_instance(tmp_path: Path, url: str, name: str, **env: str) -> Instance:
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PERSONA_MCP_DATA_DIR": str(tmp_path / name),
        "DATABASE_URL": url,
        "EMBEDDING_PROVIDER": "none",
        "BACKGROUND_PROCESSING": "false",
        "RATE_LIMIT_PER_MINUTE": "0",
        **env,
    }
    exe = str(Path(sys.executable).parent / "persona-mcp")
    proc = await asyncio.create_subprocess_exec(
        exe, "serve", "--port", str(port), "--llm", "offline",
        "--env-file", str(tmp_path / "none.env"), env=environment,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    instance = Instance(proc, port)
    for _ in range(600):  # bounded wait for the server: up to 30 s
        try:
            async with instance.client() as c:
                await c.call("system.status")
            return instance
        except OSError:
            if proc.returncode is not None:
                raise RuntimeError(f"instance {name} exited with {proc.returncode}") from None
            await asyncio.sleep(0.05)
    await instance.kill()
    raise RuntimeError(f"instance {name} did not start")


@asynccontextmanager
async def fleet(tmp_path: Path, url: str, n: int = 2, **env: str) -> AsyncIterator[list[Instance]]:
    instances: list[Instance] = []
    try:
        for i in range(n):
            instances.append(await start_instance(tmp_path, url, f"i{i}", **env))
        yield instances
    finally:
        for instance in instances:
            if instance.proc.returncode is None:
                instance.proc.terminate()
        for instance in instances:
            try:
                await asyncio.wait_for(instance.proc.wait(), 15)
            except TimeoutError:
                await instance.kill()


def rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


async def test_a_persona_created_through_one_instance_is_listed_by_the_other(
    tmp_path: Path, pg_url: str
) -> None:
    async with fleet(tmp_path, pg_url) as (a, b), a.client() as ca, b.client() as cb:
        for i in range(10):  # each time at once: no window in which B has not heard
            created = await ca.call("persona.create", {"name": f"Nova {i}"})
            listed = await cb.call("persona.list")
            assert created["persona"]["id"] in {p["id"] for p in listed["personas"]}
        await cb.call("persona.update", {"persona_id": "Nova 3", "description": "renamed on B"})
        shown = await ca.call("persona.status", {"persona_id": "Nova 3"})
        assert shown["persona"]["description"] == "renamed on B"
        await ca.call("persona.delete", {"persona_id": "Nova 4"})
        assert "Nova 4" not in {p["name"] for p in (await cb.call("persona.list"))["personas"]}


async def test_a_memory_stored_through_one_instance_is_found_on_the_other_once_acknowledged(
    tmp_path: Path, pg_url: str
) -> None:
    async with fleet(tmp_path, pg_url) as (a, b), a.client() as ca, b.client() as cb:
        for i in range(10):
            word = f"zanzibar{i}quokka"
            stored = await ca.call("memory.store", {"content": f"My cousin keeps a {word}."})
            found = await cb.call("memory.search", {"query": word})
            assert [r["memory"]["id"] for r in found["results"]] == [stored["memory"]["id"]]


async def test_two_hundred_concurrent_stores_through_each_of_two_instances_leave_400(
    tmp_path: Path, pg_url: str
) -> None:
    async with fleet(tmp_path, pg_url) as (a, b), a.client() as ca, b.client() as cb:
        await ca.call("persona.create", {"name": "Ledger"})
        await ca.call("memory.set_pruning_config", {"auto_prune": False})

        async def store(client: PersonaClient, side: str, i: int) -> str:
            params = {"persona_id": "Ledger", "content": f"entry {i} written through {side}"}
            return str((await client.call("memory.store", params))["memory"]["id"])

        ids = await asyncio.gather(
            *(store(ca, "A", i) for i in range(200)), *(store(cb, "B", i) for i in range(200))
        )
        assert len(set(ids)) == 400
        for client in (ca, cb):
            assert (await client.call("memory.stats", {"persona_id": "Ledger"}))["total"] == 400
    assert rows(pg_url, "SELECT count(*) FROM memories")[0][0] == 400


async def test_clients_continue_on_the_other_instance_when_one_is_killed_and_lose_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    async with fleet(tmp_path, pg_url) as (a, b):
        acknowledged: list[str] = []
        client = a.client()
        await client.connect()
        await client.call("persona.create", {"name": "Sentinel"})
        await client.call("persona.switch", {"persona_id": "Sentinel"})
        conversation = await client.call("conversation.start", {"title": "before the crash"})
        for i in range(40):
            if i == 20:
                kill = asyncio.create_task(a.kill())  # while the next stores are in flight
            try:
                stored = await client.call("memory.store", {"content": f"fact {i}"})
                acknowledged.append(stored["memory"]["id"])
            except (ConnectionError, RpcError, OSError, TimeoutError):
                await client.close()
                client = b.client()  # what a client behind the load balancer does
                await client.connect()
        await kill
        assert a.proc.returncode == -signal.SIGKILL
        try:
            assert len(acknowledged) >= 39  # at most the one in flight was lost
            listed = await client.call("memory.list", {"limit": 100})
            assert {m["id"] for m in listed["memories"]} >= set(acknowledged)
            # The session state a reconnect finds: the persona switched to through A.
            status = await client.call("persona.status")
            assert status["persona"]["name"] == "Sentinel"
            current = await client.call("conversation.status")
            assert current["conversation_id"] == conversation["conversation_id"]
        finally:
            await client.close()


async def test_the_decay_job_runs_once_per_interval_across_two_instances(
    tmp_path: Path, pg_url: str
) -> None:
    env = {
        "BACKGROUND_PROCESSING": "true",
        "DECAY_INTERVAL_HOURS": str(DECAY_INTERVAL / 3600),
    }
    async with fleet(tmp_path, pg_url, **env) as (a, b):
        # Started one after the other: their timers are offset by B's start-up time.
        async def runs(at_least: int) -> list[tuple[float, str]]:
            for _ in range(600):  # bounded: up to 60 s
                found = rows(
                    pg_url,
                    "SELECT ran_at, instance FROM job_runs WHERE name = 'decay' ORDER BY ran_at",
                )
                if len(found) >= at_least:
                    return [(float(r[0]), str(r[1])) for r in found]
                await asyncio.sleep(0.1)
            raise AssertionError(f"fewer than {at_least} decay runs recorded")

        async def statuses() -> list[dict[str, Any]]:
            found = []
            for instance in (a, b):
                async with instance.client() as c:
                    found.append((await c.call("system.status"))["background"])
            return found

        # Both timers tick; a tick that finds the interval taken is skipped.
        for _ in range(300):  # bounded: up to 30 s for the second timer's first ticks
            seen = await statuses()
            if sum(s["job_ticks_skipped"] for s in seen) > 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no timer ever found the interval taken")
        before = await runs(4)
        runner = before[-1][1]
        assert runner in {s["fleet"]["instance_id"] for s in seen}
        # The runner dies: the other instance's timer takes the job over.
        victim = a if seen[0]["fleet"]["instance_id"] == runner else b
        await victim.kill()
        after = await runs(len(before) + 3)
    assert after[-1][1] != runner
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(after)]
    assert min(gaps) >= DECAY_INTERVAL * (1 - SLACK)  # never twice in one interval


async def test_an_event_published_on_one_instance_reaches_a_subscriber_on_the_other(
    tmp_path: Path, pg_url: str
) -> None:
    async with fleet(tmp_path, pg_url) as (a, b), a.client() as ca, b.client() as cb:
        await cb.call("events.subscribe", {"topics": ["memory.changed"]})
        stored = await ca.call("memory.store", {"content": "The ferry leaves at nine."})
        event = await asyncio.wait_for(cb.notifications.get(), 10)
        assert event["method"] == "memory.changed"
        assert event["params"]["memory_ids"] == [stored["memory"]["id"]]
        big = "long " * 2000  # over NOTIFY's limit: parked, then fetched by its id
        stored = await ca.call("memory.store", {"content": big})
        event = await asyncio.wait_for(cb.notifications.get(), 10)
        assert event["params"]["memory_ids"] == [stored["memory"]["id"]]
        # Delivered once on B, not echoed back to A.
        assert cb.notifications.empty()


# -- in one process: two apps over one database ----------------------------------------


@asynccontextmanager
async def two_apps(
    tmp_path: Path, url: str, background: bool = False
) -> AsyncIterator[tuple[App, App]]:
    apps = [
        App(make_settings(tmp_path / f"app{i}", database_url=url, background_processing=background))
        for i in range(2)
    ]
    for app in apps:
        await app.start(background=background)
    try:
        yield apps[0], apps[1]
    finally:
        for app in apps:
            await app.close()


async def test_a_policy_changed_on_one_instance_is_the_policy_on_the_other(
    tmp_path: Path, pg_url: str
) -> None:
    async with two_apps(tmp_path, pg_url) as (a, b):
        assert (await b.pruning.config("alice")).auto_prune
        await a.pruning.set_config("alice", auto_prune=False)
        await a.fleet.flush()
        await b.fleet.sync()
        assert not (await b.pruning.config("alice")).auto_prune


async def test_an_instance_whose_listener_was_cut_off_reloads_what_it_missed(
    tmp_path: Path, pg_url: str
) -> None:
    async with two_apps(tmp_path, pg_url) as (a, b):
        await a.personas.ensure_user("alice")
        await a.fleet.flush()
        await b.fleet.sync()
        reconnects = b.fleet.status()["reconnects"]
        # Cut B's listening connection off, and change something while it is away.
        rows(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()",
        )
        await a.personas.create(
            "alice", name="Echo", description="", personality_traits=[], backstory="",
            topic_preferences={}, model=None,
        )  # fmt: skip
        await a.fleet.flush()  # what the registry does before answering
        for _ in range(200):  # bounded: up to 20 s for the reconnect and reload
            if b.fleet.status()["reconnects"] > reconnects:
                break
            await asyncio.sleep(0.1)
        await b.fleet.sync()
        assert "Echo" in {p.name for p in b.personas.visible("alice")}


async def test_decay_stopped_and_started_on_one_instance_stops_and_starts_on_the_other(
    tmp_path: Path, pg_url: str
) -> None:
    async def until(check: Any) -> None:
        for _ in range(200):  # bounded: up to 10 s
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the other instance did not follow")

    async with two_apps(tmp_path, pg_url, background=True) as (a, b):
        assert a.decay.running and b.decay.running
        await a.decay.stop_job()
        await a.decay.set_config(enabled=False)
        await a.fleet.flush()
        await until(lambda: not b.decay.running)
        await a.decay.set_config(enabled=True, interval_seconds=7200.0)
        await a.decay.start_job()
        await a.fleet.flush()
        await until(lambda: b.decay.running)
        assert (await b.decay.config()).interval_seconds == 7200.0


async def test_the_election_runs_a_job_once_per_interval_and_never_twice_at_once(
    pg_url: str,
) -> None:
    clock = ManualClock()
    a, b = Advisory(pg_url, clock, "a"), Advisory(pg_url, clock, "b")
    ran: list[str] = []

    async def job(who: str) -> str:
        ran.append(who)
        return who

    assert await a.run("sweep", 60.0, lambda: job("a")) == (True, "a")
    assert await b.run("sweep", 60.0, lambda: job("b")) == (False, None)  # same interval
    clock.advance(60.0 * (1 - SLACK))  # a timer offset a little early still counts
    assert await b.run("sweep", 60.0, lambda: job("b")) == (True, "b")
    assert ran == ["a", "b"]

    clock.advance(60.0)
    holding, release = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        holding.set()
        await release.wait()
        return "a"

    first = asyncio.create_task(a.run("sweep", 60.0, slow))
    await asyncio.wait_for(holding.wait(), 10)
    assert await b.run("sweep", 60.0, lambda: job("b")) == (False, None)  # a holds the lock
    release.set()
    assert await first == (True, "a")
    assert [
        r[1] for r in rows(pg_url, "SELECT ran_at, instance FROM job_runs ORDER BY ran_at")
    ] == ["a", "b", "a"]
