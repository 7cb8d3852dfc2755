"""In-memory vector index, derived from SQLite and kept in step with it.

One dense matrix per (user, persona) for brute-force cosine search: at 10k memories of
384 floats a query is one matrix-vector product of about a millisecond. The index holds
no data of record: it is rebuilt from the `embedding` column whenever it is missing,
and a hit is always re-read from SQLite before it is returned.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from persona_mcp.embeddings.base import Vectors

Key = tuple[str, str]  # (user_id, persona_id)


class _Shelf:
    """The vectors of one persona: a growable matrix and row -> memory rid."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.matrix: Vectors = np.zeros((64, dim), dtype=np.float32)
        self.rids: npt.NDArray[np.int64] = np.zeros(64, dtype=np.int64)
        self.size = 0
        self.position: dict[int, int] = {}

    def add(self, rids: list[int], vectors: Vectors) -> None:
        for rid, vector in zip(rids, vectors, strict=True):
            if rid in self.position:
                self.matrix[self.position[rid]] = vector
                continue
            if self.size == len(self.rids):
                self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
                self.rids = np.concatenate([self.rids, np.zeros_like(self.rids)])
            self.matrix[self.size] = vector
            self.rids[self.size] = rid
            self.position[rid] = self.size
            self.size += 1

    def remove(self, rids: list[int]) -> None:
        for rid in rids:
            pos = self.position.pop(rid, None)
            if pos is None:
                continue
            last = self.size - 1
            if pos != last:
                moved = int(self.rids[last])
                self.matrix[pos] = self.matrix[last]
                self.rids[pos] = moved
                self.position[moved] = pos
            self.size -= 1

    def search(self, query: Vectors, k: int) -> tuple[list[int], list[float]]:
        if self.size == 0:
            return [], []
        scores = self.matrix[: self.size] @ query
        k = min(k, self.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [int(r) for r in self.rids[top]], [float(s) for s in scores[top]]

    def scores_for(self, query: Vectors, rids: list[int]) -> dict[int, float]:
        positions = [(rid, self.position[rid]) for rid in rids if rid in self.position]
        if not positions:
            return {}
        rows = self.matrix[[p for _, p in positions]]
        values = rows @ query
        return {rid: float(v) for (rid, _), v in zip(positions, values, strict=True)}


class VectorIndex:
    """Shelves of vectors by (user, persona); safe to use from worker threads."""

    def __init__(self) -> None:
        self._shelves: dict[Key, _Shelf] = {}
        self._lock = threading.Lock()

    def has(self, key: Key) -> bool:
        with self._lock:
            return key in self._shelves

    def load(self, key: Key, rids: list[int], vectors: Vectors) -> None:
        """Install a shelf built from SQLite (replaces whatever was there)."""
        if len(rids) == 0:
            with self._lock:
                self._shelves.pop(key, None)
            return
        shelf = _Shelf(int(vectors.shape[1]))
        shelf.add(rids, vectors)
        with self._lock:
            self._shelves[key] = shelf

    def add(self, key: Key, rids: list[int], vectors: Vectors) -> None:
        if not rids:
            return
        with self._lock:
            shelf = self._shelves.get(key)
            if shelf is None or shelf.dim != vectors.shape[1]:
                shelf = self._shelves[key] = _Shelf(int(vectors.shape[1]))
            shelf.add(rids, vectors)

    def remove(self, key: Key, rids: list[int]) -> None:
        with self._lock:
            shelf = self._shelves.get(key)
            if shelf is not None:
                shelf.remove(rids)

    def drop(self, key: Key) -> None:
        with self._lock:
            self._shelves.pop(key, None)

    def search(self, key: Key, query: Vectors, k: int) -> tuple[list[int], list[float]]:
        with self._lock:
            shelf = self._shelves.get(key)
            if shelf is None or shelf.dim != query.shape[0]:
                return [], []
            return shelf.search(query, k)

    def scores_for(self, key: Key, query: Vectors, rids: list[int]) -> dict[int, float]:
        with self._lock:
            shelf = self._shelves.get(key)
            if shelf is None or shelf.dim != query.shape[0]:
                return {}
            return shelf.scores_for(query, rids)

    def size(self, key: Key | None = None) -> int:
        with self._lock:
            if key is not None:
                shelf = self._shelves.get(key)
                return shelf.size if shelf else 0
            return sum(s.size for s in self._shelves.values())
