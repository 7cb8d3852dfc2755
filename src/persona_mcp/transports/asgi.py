"""The ASGI application: /health, /metrics, and /mcp for both WebSocket JSON-RPC (an
upgrade) and MCP over Streamable HTTP (POST, GET, DELETE), behind the edge (callers and
limits, see transports/edge.py); the web console at / (see transports/console.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from persona_mcp import __version__
from persona_mcp.app import App
from persona_mcp.config import Settings
from persona_mcp.metrics import CONTENT_TYPE
from persona_mcp.transports.console import console_routes
from persona_mcp.transports.edge import Edge, principal_of
from persona_mcp.transports.mcp import McpDoor, McpExtension, http_manager
from persona_mcp.transports.security import DoorGuard
from persona_mcp.transports.websocket import WebSocketDoor


async def health(request: Request) -> JSONResponse:
    app: App = request.app.state.persona_app
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "uptime_seconds": round(app.clock.now() - app.started_at, 3),
            "connections": app.connections,
            "embedder": app.embedder_status(),
        }
    )


async def metrics(request: Request) -> Response:
    """Prometheus text; admin scope only (always so for the local caller of AUTH_MODE=off)."""
    app: App = request.app.state.persona_app
    if not principal_of(request.scope, app).is_admin:
        return JSONResponse({"error": "/metrics needs admin scope"}, status_code=403)
    return Response(await app.metrics_text(), media_type=CONTENT_TYPE)


def create_asgi(
    settings: Settings, app: App | None = None, mcp_extension: McpExtension | None = None
) -> Starlette:
    """The server's ASGI app; the services start in its lifespan. `mcp_extension` adds
    tools beside the registry's on the MCP door (the conformance runner's fixtures)."""
    persona_app = app or App(settings)
    door = McpDoor(persona_app, "mcp-http", mcp_extension)
    manager = http_manager(door)

    @contextlib.asynccontextmanager
    async def lifespan(asgi: Starlette) -> AsyncIterator[None]:
        await persona_app.start()
        asgi.state.persona_app = persona_app
        try:
            async with manager.run():
                yield
        finally:
            await door.close()
            await persona_app.close()

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            WebSocketRoute("/mcp", WebSocketDoor(settings)),
            Route("/mcp", StreamableHTTPASGIApp(manager)),
            *console_routes(),
        ],
        # Outermost first: a foreign Host or Origin is refused before anything else.
        middleware=[Middleware(DoorGuard, settings=settings), Middleware(Edge, app=persona_app)],
        lifespan=lifespan,
    )
