"""What every provider that talks HTTP (LLMs, embedders) shares."""

from __future__ import annotations

import httpx


def http_client(
    base_url: str,
    timeout: float,
    api_key: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The client every provider (LLM or embedding) talks through: a short connect timeout,
    a bearer key when given, and no proxy settings picked up from the environment."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
        timeout=httpx.Timeout(timeout, connect=3.0),
        transport=transport,
        trust_env=False,
    )
