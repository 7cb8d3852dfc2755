"""Shared fixtures: real servers on loopback, real SQLite in temporary folders."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from persona_mcp.app import App
from persona_mcp.client import PersonaClient
from persona_mcp.clock import ManualClock
from persona_mcp.config import Settings
from persona_mcp.embeddings.minilm import MiniLMEmbedder
from persona_mcp.transports.asgi import create_asgi
from persona_mcp.transports.server import uvicorn_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "llm_provider": "offline",
        "embedding_provider": "none",
        "background_processing": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


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
