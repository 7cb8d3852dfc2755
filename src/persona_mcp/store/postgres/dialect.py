"""The store's SQLite statements, as PostgreSQL statements.

The repositories write one dialect (SQLite's); this turns a statement into PostgreSQL's
once and caches the result per statement text:

- parameters: `?` and `:name` become `$1`, `$2`... (a name used twice is one number),
  so psycopg's raw cursor sends them as they are (no `%` escaping anywhere);
- `INSERT OR IGNORE` becomes `INSERT ... ON CONFLICT DO NOTHING`;
- scalar `max(a, b)` / `min(a, b)` become `GREATEST` / `LEAST` (the one-argument
  aggregates stay);
- `x IS ?` / `x IS NOT ?` become `IS NOT DISTINCT FROM` / `IS DISTINCT FROM`;
- `LIMIT -1` becomes `LIMIT ALL`; `ifnull` becomes `coalesce`;
- `PRAGMA defer_foreign_keys = ON` becomes `SET CONSTRAINTS ALL DEFERRED` (every
  foreign key of the PostgreSQL schema is DEFERRABLE); `PRAGMA foreign_keys` is a no-op.

Whatever cannot be translated this way (FTS5, `json_each`, `UPDATE OR IGNORE`, schema
introspection) is not attempted: the store module branches on `conn.dialect`, and a
statement that slips through raises `Untranslatable` rather than running half-right.
String literals, quoted identifiers and comments are left untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class Untranslatable(ValueError):
    """A SQLite statement this layer does not turn into PostgreSQL (the store module
    must branch on `conn.dialect` for it)."""


@dataclass(frozen=True)
class Statement:
    sql: str
    names: tuple[str, ...] | None  # the `:name` parameters by number, or None for `?`
    count: int  # how many `?` parameters

    def args(self, parameters: Any) -> Sequence[Any]:
        """The parameters as PostgreSQL's `$n` expects them (a sequence)."""
        if self.names is not None:
            if not isinstance(parameters, Mapping):
                raise TypeError("named parameters need a mapping")
            return [parameters[name] for name in self.names]
        if parameters is None:
            return ()
        if isinstance(parameters, Mapping):
            raise TypeError("positional parameters need a sequence")
        return parameters if isinstance(parameters, list | tuple) else list(parameters)


_MASK = "\x00"
_LITERAL = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)
_SLOT = re.compile(r"\x00(\d+)\x00")
_PARAM = re.compile(r"(?<![\w:]):([A-Za-z_]\w*)|\?")
_IS = re.compile(r"\bIS\s+(NOT\s+)?(?=\?|:[A-Za-z_])", re.I)
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_SCALAR = re.compile(r"\b(max|min)\s*\(", re.I)
_UNSUPPORTED = re.compile(
    r"\b(UPDATE\s+OR\s+\w+|INSERT\s+OR\s+(?!IGNORE)\w+|REPLACE\s+INTO|json_each|"
    r"json_extract|MATCH|bm25|sqlite_master|GLOB)\b",
    re.I,
)
_PRAGMA = re.compile(r"^\s*PRAGMA\s+(\w+)\s*(?:=\s*(\w+))?\s*;?\s*$", re.I)


def _top_level_commas(text: str, start: int) -> tuple[int, int]:
    """From just inside an opening parenthesis: (commas at its depth, index of its
    closing parenthesis)."""
    depth, commas = 0, 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return commas, i
            depth -= 1
        elif ch == "," and depth == 0:
            commas += 1
    raise Untranslatable("unbalanced parentheses")


def _scalars(code: str) -> str:
    out = []
    last = 0
    for m in _SCALAR.finditer(code):
        commas, _ = _top_level_commas(code, m.end())
        if commas:
            out.append(code[last : m.start()])
            out.append("GREATEST(" if m.group(1).lower() == "max" else "LEAST(")
            last = m.end()
    out.append(code[last:])
    return "".join(out)


@lru_cache(maxsize=8192)
def translate(sql: str) -> Statement:
    """The PostgreSQL form of one SQLite statement (cached)."""
    literals: list[str] = []

    def hide(m: re.Match[str]) -> str:
        text = m.group(0)
        if text.startswith(("--", "/*")):
            return " "
        literals.append(text)
        return f"{_MASK}{len(literals) - 1}{_MASK}"

    code = _LITERAL.sub(hide, sql)
    pragma = _PRAGMA.match(code)
    if pragma:
        name, value = pragma.group(1).lower(), (pragma.group(2) or "").lower()
        if name == "defer_foreign_keys":
            code = "SET CONSTRAINTS ALL " + ("DEFERRED" if value in ("on", "1") else "IMMEDIATE")
        elif name in ("foreign_keys", "busy_timeout", "synchronous"):
            code = "SELECT 1 WHERE false"
        else:
            raise Untranslatable(f"PRAGMA {name} has no PostgreSQL form")
    elif re.match(r"\s*PRAGMA\b", code, re.I):
        raise Untranslatable("this PRAGMA has no PostgreSQL form")
    if bad := _UNSUPPORTED.search(code):
        raise Untranslatable(f"{bad.group(0)!r} needs a PostgreSQL branch in the store")
    if _OR_IGNORE.match(code):
        code = _OR_IGNORE.sub("INSERT INTO", code, count=1)
        code = code.rstrip().rstrip(";")
        returning = _RETURNING.search(code)
        if returning:
            head, tail = code[: returning.start()].rstrip(), code[returning.start() :]
            code = f"{head} ON CONFLICT DO NOTHING {tail}"
        else:
            code += " ON CONFLICT DO NOTHING"
    code = _scalars(code)
    code = _IS.sub(lambda m: "IS DISTINCT FROM " if m.group(1) else "IS NOT DISTINCT FROM ", code)
    code = re.sub(r"\bLIMIT\s+-1\b", "LIMIT ALL", code, flags=re.I)
    code = re.sub(r"\bifnull\s*\(", "coalesce(", code, flags=re.I)

    names: list[str] = []
    count = 0
    numbered: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        nonlocal count
        name = m.group(1)
        if name is None:
            count += 1
            return f"${count}"
        if name not in numbered:
            names.append(name)
            numbered[name] = len(names)
        return f"${numbered[name]}"

    code = _PARAM.sub(number, code)
    if names and count:
        raise Untranslatable("a statement mixes ? and :name parameters")
    code = _SLOT.sub(lambda m: literals[int(m.group(1))], code)
    return Statement(code, tuple(names) if names else None, count)
