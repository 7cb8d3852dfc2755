"""The server the conformance suite runs against: persona-mcp's own ASGI app, with the
fixtures of conformance/fixtures.py handed to its MCP door, under the product's uvicorn
configuration (transports/server.uvicorn_config). Started by run.py; not a product door.

    python conformance/serve.py --port PORT --data-dir DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import ConformanceFixtures

from persona_mcp.app import App
from persona_mcp.config import Settings
from persona_mcp.transports.asgi import create_asgi
from persona_mcp.transports.server import bind, uvicorn_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=args.data_dir,
        llm_provider="offline",
        embedding_provider="none",
        server_host="127.0.0.1",
        server_port=args.port,
    )
    asgi = create_asgi(settings, App(settings), mcp_extension=ConformanceFixtures())
    sock = bind("127.0.0.1", args.port)
    uvicorn.Server(uvicorn_config(settings, asgi)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
