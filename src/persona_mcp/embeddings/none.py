"""No embeddings: memory search is lexical only (EMBEDDING_PROVIDER=none)."""

from __future__ import annotations

from typing import Any

import numpy as np

from persona_mcp.embeddings.base import Vectors


class NoEmbedder:
    name = "none"
    model = "none"

    @property
    def ready(self) -> bool:
        return False

    @property
    def dim(self) -> int | None:
        return None

    async def start(self) -> None:
        return None

    async def embed(self, texts: list[str]) -> Vectors:
        return np.zeros((len(texts), 0), dtype=np.float32)

    def status(self) -> dict[str, Any]:
        return {"provider": self.name, "model": None, "ready": False, "dim": None}

    async def aclose(self) -> None:
        return None
