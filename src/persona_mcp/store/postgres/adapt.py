"""How values cross between Python and PostgreSQL so the repositories see what SQLite
gives them.

- rows read by position and by name (`Row`, like sqlite3.Row);
- `bytes` parameters are embeddings (float32, little-endian, the only BLOBs the schema
  has) and go to pgvector's `vector` columns; `vector` values come back as those bytes;
- `numeric` results (sum() of bigint) come back as int when whole, else float, never
  as Decimal;
- `str` parameters are typed text, so `? IS NULL` and the like need no casts;
- `bool` parameters are integers (the schema keeps SQLite's 0/1 columns).
"""

from __future__ import annotations

import struct
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
import psycopg
from psycopg.adapt import Buffer, Dumper, Loader
from psycopg.pq import Format
from psycopg.types.numeric import Int8BinaryDumper, NumericBinaryLoader, NumericLoader
from psycopg.types.string import StrBinaryDumper, StrDumper


class Row(tuple[Any, ...]):
    """A result row: `row[0]`, `row["name"]`, `keys()`, iterates its values."""

    __slots__ = ()
    _index: dict[str, int] = {}  # noqa: RUF012 (set per result shape by _row_class)
    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_names": names, "_index": {
        n: i for i, n in reversed(list(enumerate(names)))}})  # fmt: skip


def row_factory(cursor: Any) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    cls = _row_class(tuple(d.name for d in description))
    return cls


def _blob_to_vector(obj: Any) -> bytes:
    data = np.frombuffer(bytes(obj), dtype="<f4")
    return struct.pack(">HH", len(data), 0) + data.astype(">f4").tobytes()


class _VectorBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> Buffer:
        return _blob_to_vector(obj)


class _VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> bytes:
        return np.frombuffer(bytes(data), dtype=">f4", offset=4).astype("<f4").tobytes()


class _VectorTextLoader(Loader):
    def load(self, data: Buffer) -> bytes:
        text = bytes(data).decode()
        return np.array(text.strip("[]").split(","), dtype="<f4").tobytes()


def _number(value: Decimal) -> int | float:
    if value == value.to_integral_value():
        return int(value)
    return float(value)


class _NumberLoader(NumericLoader):
    def load(self, data: Buffer) -> Any:
        return _number(super().load(data))


class _NumberBinaryLoader(NumericBinaryLoader):
    def load(self, data: Buffer) -> Any:
        return _number(super().load(data))


class _BoolAsIntDumper(Int8BinaryDumper):
    def dump(self, obj: Any) -> Buffer | None:
        return super().dump(int(obj))


def configure(conn: psycopg.Connection[Any], vector_oid: int | None) -> None:
    """Install the adapters on one connection (the vector ones once the extension is)."""
    adapters = conn.adapters
    adapters.register_dumper(str, StrDumper)
    adapters.register_dumper(str, StrBinaryDumper)
    adapters.register_dumper(bool, _BoolAsIntDumper)
    adapters.register_loader("numeric", _NumberLoader)
    adapters.register_loader("numeric", _NumberBinaryLoader)
    if vector_oid is not None:
        dumper = type("VectorDumper", (_VectorBinaryDumper,), {"oid": vector_oid})
        for kind in (bytes, bytearray, memoryview):
            adapters.register_dumper(kind, dumper)
        adapters.register_loader(vector_oid, _VectorBinaryLoader)
        adapters.register_loader(vector_oid, _VectorTextLoader)
