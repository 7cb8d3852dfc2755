"""Shared fixtures: real servers on loopback, real SQLite in temporary folders, and a
real PostgreSQL (with pgvector) for the modules that run on both backends.

The modules in `BOTH_BACKENDS` run every test twice, `[sqlite]` and `[postgresql]`: on
PostgreSQL each data directory a test uses (`make_settings`) gets a fresh database of
one server started for the session. A test that is about SQLite itself (its file lock,
a full disk, a killed process and its file) is marked `sqlite_only` with the reason.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn

from persona_mcp.app import App
from persona_mcp.client import PersonaClient
from persona_mcp.clock import ManualClock
from persona_mcp.config import Settings
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.store.api import Connection
from persona_mcp.transports.asgi import create_asgi
from persona_mcp.transports.server import uvicorn_config
from tests import pgsupport


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The behavioural modules that run on SQLite and on PostgreSQL alike.
BOTH_BACKENDS = frozenset(
    {
        "test_memory",
        "test_remembering",
        "test_personas_and_conversations",
        "test_chat_with_llm",
        "test_graph",
        "test_tiers",
        "test_social",
        "test_portability",
        "test_rest",
        "test_lifecycle",
        "test_cards_and_visual",
        "test_auth",
        "test_cheap_calls",
        "test_pg_store",
        "test_copies",
    }
)

# data dir -> database URL, while a [postgresql] test runs (see _store_backend).
_databases: Callable[[Path], str] | None = None


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "llm_provider": "offline",
        "embedding_provider": "none",
        "background_processing": False,
    }
    if _databases is not None:
        values["database_url"] = _databases(data_dir)
    values.update(overrides)
    return Settings(_env_file=None, **values)


def store_env(data_dir: Path) -> dict[str, str]:
    """The environment that points a `persona-mcp` subprocess at the store a test's
    `make_settings(data_dir)` uses (the data dir, and the database on PostgreSQL)."""
    env = {"PERSONA_MCP_DATA_DIR": str(data_dir)}
    if _databases is not None:
        env["DATABASE_URL"] = _databases(data_dir)
    return env


@contextmanager
def store_connection(settings: Settings) -> Iterator[Connection]:
    """A store connection (SQLite's dialect, `store.api.Connection`) to the database the
    settings name, for tests that look at rows directly; autocommit."""
    if settings.database_url:
        from persona_mcp.store.postgres import adapt
        from persona_mcp.store.postgres.db import PgConnection

        raw = psycopg.connect(
            settings.database_url,
            autocommit=True,
            cursor_factory=psycopg.RawCursor,
            row_factory=adapt.row_factory,
        )
        info = psycopg.types.TypeInfo.fetch(raw, "vector")
        adapt.configure(raw, info.oid if info else None)
        try:
            yield PgConnection(raw)
        finally:
            raw.close()
        return
    from persona_mcp.store import db
    from persona_mcp.store.migrations import apply_migrations

    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = db.connect(settings.db_path)
    try:
        apply_migrations(conn)
        yield conn
    finally:
        conn.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): a test of SQLite itself, not run on PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    both = module in BOTH_BACKENDS and not metafunc.definition.get_closest_marker("sqlite_only")
    metafunc.parametrize("backend", ["sqlite", "postgresql"] if both else ["sqlite"])


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgsupport.Server]:
    """One PostgreSQL server (pgserver's wheel: 16.2 with pgvector) for the session, on
    a Unix socket, with a template database already migrated. Its folder is not under
    pytest's temporary root, which another pytest run may prune while this one runs."""
    folder = Path(tempfile.mkdtemp(prefix="persona-mcp-pg-"))
    server = pgsupport.start(folder, timeout=90.0)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _store_backend(backend: str, request: pytest.FixtureRequest) -> Iterator[None]:
    global _databases
    if backend != "postgresql":
        yield
        return
    server: pgsupport.Server = request.getfixturevalue("pg_server")
    made: dict[Path, str] = {}

    def database(data_dir: Path) -> str:
        if data_dir not in made:
            made[data_dir] = server.create_database()
        return made[data_dir]

    _databases = database
    try:
        yield
    finally:
        _databases = None
        for url in made.values():
            server.drop_database(url)


class RunningServer:
    def __init__(self, app: App, port: int) -> None:
        self.app = app
        self.port = port
        self.ws_url = f"ws://127.0.0.1:{port}/mcp"
        self.http_url = f"http://127.0.0.1:{port}"

    def client(self, **kwargs: Any) -> PersonaClient:
        return PersonaClient(self.ws_url, **kwargs)


@asynccontextmanager
async def serve(settings: Settings, app: App | None = None) -> AsyncIterator[RunningServer]:
    """Run the real ASGI app under uvicorn on a free loopback port, in this event loop."""
    app = app or App(settings)
    port = free_port()
    config = uvicorn_config(
        settings, create_asgi(settings, app), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded wait: up to 10 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    if not server.started:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        raise RuntimeError("server did not start")
    try:
        yield RunningServer(app, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    async with serve(settings) as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[PersonaClient]:
    async with server.client() as c:
        yield c


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def app_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start an App (no doors) for service-level tests; closed at teardown."""
    apps: list[App] = []

    async def make(**kwargs: Any) -> App:
        settings_overrides = kwargs.pop("settings", {})
        app = App(make_settings(tmp_path / f"data{len(apps)}", **settings_overrides), **kwargs)
        await app.start()
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.close()


@pytest.fixture(scope="session")
async def minilm() -> AsyncIterator[MiniLMEmbedder]:
    """The real bundled embedding model, loaded once for the whole test session."""
    embedder = MiniLMEmbedder()
    await embedder.start()
    await asyncio.wait_for(embedder.wait_ready(), 120)
    yield embedder
    await embedder.aclose()


@pytest.fixture
async def memory_server(settings: Settings, minilm: MiniLMEmbedder) -> AsyncIterator[RunningServer]:
    """A server whose memory uses the real embedding model."""
    async with serve(settings, App(settings, embedder=minilm)) as running:
        yield running


@pytest.fixture
async def mclient(memory_server: RunningServer) -> AsyncIterator[PersonaClient]:
    async with memory_server.client() as c:
        yield c
