"""In-memory vector index, derived from SQLite and kept in step with it.

One shelf per (user, persona): a dense matrix of unit vectors in insertion (rowid)
order, with each memory's `occurred_at`, for brute-force cosine search (at 10k memories
of 384 floats one query is about a millisecond) and for finding neighbouring memories.
The index holds no data of record: it is rebuilt from the `embedding` column whenever
it is missing, and every hit is re-read from SQLite before it is returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from persona_mcp.embeddings.base import Vectors

Key = tuple[str, str]  # (user_id, persona_id)
T = TypeVar("T")


class Shelf:
    """The vectors of one persona, rows sorted by memory rowid."""

    def __init__(self, dim: int, capacity: int = 64) -> None:
        self.dim = dim
        self._matrix: Vectors = np.zeros((capacity, dim), dtype=np.float32)
        self._rids: npt.NDArray[np.int64] = np.zeros(capacity, dtype=np.int64)
        self._occurred: npt.NDArray[np.float64] = np.zeros(capacity, dtype=np.float64)
        self.size = 0

    @property
    def rids(self) -> npt.NDArray[np.int64]:
        return self._rids[: self.size]

    @property
    def matrix(self) -> Vectors:
        return self._matrix[: self.size]

    @property
    def occurred(self) -> npt.NDArray[np.float64]:
        return self._occurred[: self.size]

    def _grow(self, needed: int) -> None:
        capacity = len(self._rids)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        rids = np.zeros(capacity, dtype=np.int64)
        occurred = np.zeros(capacity, dtype=np.float64)
        matrix[: self.size] = self.matrix
        rids[: self.size] = self.rids
        occurred[: self.size] = self.occurred
        self._matrix, self._rids, self._occurred = matrix, rids, occurred

    def add(self, rids: Sequence[int], vectors: Vectors, occurred: Sequence[float]) -> None:
        if len(rids) == 0:
            return
        new_rids = np.asarray(rids, dtype=np.int64)
        self.remove(new_rids[np.isin(new_rids, self.rids)].tolist())  # replace, not duplicate
        n = len(new_rids)
        self._grow(self.size + n)
        end = self.size + n
        self._rids[self.size : end] = new_rids
        self._matrix[self.size : end] = vectors
        self._occurred[self.size : end] = np.asarray(occurred, dtype=np.float64)
        appended_in_order = (self.size == 0 or new_rids.min() > self._rids[self.size - 1]) and bool(
            np.all(np.diff(new_rids) > 0)
        )
        self.size = end
        if not appended_in_order:  # restored memories and the like: re-sort
            order = np.argsort(self.rids, kind="stable")
            self._rids[:end] = self.rids[order]
            self._matrix[:end] = self.matrix[order]
            self._occurred[:end] = self.occurred[order]

    def remove(self, rids: Sequence[int]) -> None:
        if not rids or self.size == 0:
            return
        keep = ~np.isin(self.rids, np.asarray(rids, dtype=np.int64))
        kept = int(keep.sum())
        if kept == self.size:
            return
        self._rids[:kept] = self.rids[keep]
        self._matrix[:kept] = self.matrix[keep]
        self._occurred[:kept] = self.occurred[keep]
        self.size = kept

    def positions(self, rids: Sequence[int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Row positions of `rids`, and which of them are on the shelf."""
        wanted = np.asarray(rids, dtype=np.int64)
        pos = np.searchsorted(self.rids, wanted)
        pos = np.minimum(pos, max(self.size - 1, 0))
        found = (
            (self.size > 0) & (self.rids[pos] == wanted)
            if self.size
            else np.zeros(len(wanted), dtype=bool)
        )
        return pos.astype(np.int64), np.asarray(found, dtype=bool)


class VectorIndex:
    """Shelves by (user, persona); safe to use from worker threads."""

    def __init__(self) -> None:
        self._shelves: dict[Key, Shelf] = {}
        self._lock = threading.Lock()

    def has(self, key: Key) -> bool:
        with self._lock:
            return key in self._shelves

    def load(
        self, key: Key, rids: Sequence[int], vectors: Vectors, occurred: Sequence[float]
    ) -> None:
        """Install a shelf built from SQLite (replacing whatever was there)."""
        shelf = Shelf(int(vectors.shape[1]) if len(rids) else 0, max(64, len(rids)))
        shelf.add(rids, vectors, occurred)
        with self._lock:
            self._shelves[key] = shelf

    def add(
        self, key: Key, rids: Sequence[int], vectors: Vectors, occurred: Sequence[float]
    ) -> None:
        """Add rows to a loaded shelf (a shelf not loaded yet will read them from SQLite)."""
        if not len(rids):
            return
        with self._lock:
            shelf = self._shelves.get(key)
            if shelf is None:
                return
            if shelf.size == 0 or shelf.dim != vectors.shape[1]:
                shelf = self._shelves[key] = Shelf(int(vectors.shape[1]))
            shelf.add(rids, vectors, occurred)

    def remove(self, key: Key, rids: Sequence[int]) -> None:
        with self._lock:
            shelf = self._shelves.get(key)
            if shelf is not None:
                shelf.remove(rids)

    def drop(self, key: Key) -> None:
        with self._lock:
            self._shelves.pop(key, None)

    def drop_user(self, user_id: str) -> None:
        """Forget every shelf of a user (reloaded from SQLite on next use)."""
        with self._lock:
            for key in [k for k in self._shelves if k[0] == user_id]:
                del self._shelves[key]

    def drop_all(self) -> None:
        with self._lock:
            self._shelves.clear()

    def use(self, key: Key, fn: Callable[[Shelf], T]) -> T | None:
        """Run `fn` on a shelf while no one changes it; None when there is no shelf."""
        with self._lock:
            shelf = self._shelves.get(key)
            return None if shelf is None or shelf.size == 0 else fn(shelf)

    def size(self, key: Key | None = None) -> int:
        with self._lock:
            if key is not None:
                shelf = self._shelves.get(key)
                return shelf.size if shelf else 0
            return sum(s.size for s in self._shelves.values())
