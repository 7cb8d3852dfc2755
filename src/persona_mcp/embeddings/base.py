"""The one interface every embedding provider implements."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    name: str
    model: str

    @property
    def ready(self) -> bool:
        """True once texts can be embedded without waiting for a model to load."""
        ...

    @property
    def dim(self) -> int | None:
        """The vector size, known once ready."""
        ...

    async def start(self) -> None:
        """Begin loading in the background; returns at once."""
        ...

    async def embed(self, texts: list[str]) -> Vectors:
        """Unit-length vectors, one row per text (waits for the model if needed)."""
        ...

    def status(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


def normalize(vectors: npt.ArrayLike) -> Vectors:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (matrix / norms).astype(np.float32)
    return out
