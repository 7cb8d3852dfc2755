"""The web console: one page at `/`, its assets under `/console/`, shipped in the package.

The page is plain HTML, CSS and ES modules (no build step); it talks to the server only
through the WebSocket JSON-RPC door, as any client does, so it can do nothing a client
could not. The page and its assets hold no data: the edge lets them load without a
token (the page asks for one when the door needs it), while the Host/Origin guard in
front of every route still refuses foreign hosts. Each response forbids framing, inline
script and any connection to another origin.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS = Path(__file__).resolve().parent.parent / "console"

# 'self' in connect-src covers the page's own ws:// and wss:// origin (CSP level 3).
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time: an upgraded server must never run with yesterday's modules.
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """The console's assets, with the console's headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


async def page(request: Request) -> Response:
    return FileResponse(ASSETS / "index.html", headers=HEADERS, media_type="text/html")


def console_routes() -> list[BaseRoute]:
    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Mount("/console", app=ConsoleFiles(directory=ASSETS), name="console"),
    ]
