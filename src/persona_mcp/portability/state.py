"""A user's whole state as one portable, versioned file (state.save / state.load and
`persona-mcp export` / `import`).

The file is gzip-compressed JSON Lines (a plain, uncompressed file loads too):

    {"format": "persona-mcp-state", "version": 3, "saved_at": ..., "user_id": ...,
     "server_version": ..., "embedding_model": ..., "sections": ["personas", ...]}
    {"section": "personas", "row": {"id": ..., "name": ..., ...}}
    ...
    {"end": {"counts": {"personas": 2, ...}}}

Each row is a database row of the section's table as stored (BLOBs base64, JSON columns
as their stored text), without the user column and without local rowids; `store.portable`
lists the sections. A load checks the whole file first (format, version, sections,
columns, types, references inside the file, the counts in the last line), computes any
new embeddings, and only then writes, in one transaction.

Version 1 (before the m011_memory_split migration) kept a memory's scores and vector in
its `memories` row and an archived memory's vector in its `memory_archive` row; such a
file is read as the `memory_scores` and `memory_vectors` rows they are today. Versions 1
and 2 (before m012_archive_in_place) kept an archived memory whole in its
`memory_archive` row; such a row is read as the `memories` row and the narrow archive
row it is today.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import orjson

from persona_mcp import __version__
from persona_mcp.clock import Clock
from persona_mcp.config import Settings
from persona_mcp.errors import Conflict, InvalidParams, RateLimited
from persona_mcp.events import EventBus
from persona_mcp.memory import retrieval
from persona_mcp.memory.pruning import PruningService
from persona_mcp.memory.service import MemoryService
from persona_mcp.personas.service import PersonaService
from persona_mcp.personas.social import SocialService
from persona_mcp.simulation.chatroom import ChatroomService
from persona_mcp.store import memories as memory_repo
from persona_mcp.store import portable as store
from persona_mcp.store import tiers as tier_repo
from persona_mcp.store.api import Database
from persona_mcp.store.portable import Column

log = logging.getLogger(__name__)

FORMAT = "persona-mcp-state"
FORMAT_VERSION = 3
# What version 1 kept in a memory's row: its scores, and (archived ones too) its vector.
_V1_SCORES = ("importance", "access_count", "last_accessed_at", "decayed_at", "pinned")
_V1_DERIVED = ("memory_scores", "memory_vectors")
# What an archive row keeps since version 3 (the rest of a version 1-2 row is the memory's).
_ARCHIVE_OWN = ("prune_run_id", "archived_at", "prune_score", "reason", *_V1_SCORES)
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_PROBLEMS = 20
EMBED_BATCH = 256
PROGRESS_EVERY = 1000

LoadMode = Literal["merge", "replace"]
Progress = Callable[[str, int, int | None], None]
"""`progress(stage, done, total)`; may be called from a worker thread."""


def no_progress(stage: str, done: int, total: int | None) -> None:
    """The progress callback when nobody listens."""


@dataclass(frozen=True)
class Saved:
    path: Path
    bytes: int
    counts: dict[str, int]


@dataclass(frozen=True)
class Loaded:
    path: Path
    mode: LoadMode
    counts: dict[str, int]
    reembedded: int
    replaced_personas: list[str]


@dataclass
class StateFile:
    """A checked state file: its header and each section's rows (values decoded)."""

    header: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {s.name: len(self.rows.get(s.name, [])) for s in store.SECTIONS}


# -- paths ------------------------------------------------------------------------------


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def exports_dir(settings: Settings, user_id: str) -> Path:
    """A user's own folder under DATA_DIR/exports/ (users never see each other's files):
    the user's id when it makes a plain folder name, else a digest of it."""
    name = (
        user_id
        if _SAFE_NAME.fullmatch(user_id)
        else "user-" + hashlib.sha256(user_id.encode()).hexdigest()[:16]
    )
    return Path(settings.data_dir) / "exports" / name


def confined_path(
    settings: Settings, user_id: str, raw: str | None, *, admin: bool, default: str
) -> Path:
    """Where a state file named by a caller lives: a relative name is inside the user's
    folder of DATA_DIR/exports/; only an admin may name a path outside it (absolute, or
    with `..`)."""
    base = exports_dir(settings, user_id).resolve()
    name = raw if raw is not None else default
    if "\x00" in name or not name.strip():
        raise InvalidParams.field("path", "must be a file name")
    given = Path(name).expanduser() if admin else Path(name)
    if not admin and ".." in given.parts:
        raise InvalidParams.field("path", "must not contain '..' (files live in DATA_DIR/exports/)")
    path = (given if given.is_absolute() else base / given).resolve()
    if not admin and base not in path.parents:
        raise InvalidParams.field(
            "path", "must name a file inside DATA_DIR/exports/ (an admin may name any path)"
        )
    return path


def shown_path(settings: Settings, user_id: str, path: Path) -> str:
    """A state file's path as the caller names it again: relative to the user's exports
    folder when it is there, else absolute (admins only)."""
    base = exports_dir(settings, user_id).resolve()
    return str(path.relative_to(base)) if base in path.parents else str(path)


def default_name(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("state-%Y%m%dT%H%M%SZ.jsonl.gz")


# -- the service ------------------------------------------------------------------------


class StateService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        personas: PersonaService,
        social: SocialService,
        memory: MemoryService,
        pruning: PruningService,
        simulations: ChatroomService,
        events: EventBus,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._personas = personas
        self._social = social
        self._memory = memory
        self._pruning = pruning
        self._simulations = simulations
        self._events = events

    @property
    def _model(self) -> str | None:
        """The embedding model of this server, None when memories are not embedded."""
        return self._memory.embedder.model if self._memory.semantic else None

    # -- save ---------------------------------------------------------------------------

    async def save(self, user_id: str, path: Path, progress: Progress = no_progress) -> Saved:
        """Write everything of a user to `path` (atomically: a `.part` file renamed)."""
        await asyncio.to_thread(self._check_target, user_id, path)
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "saved_at": self._clock.now(),
            "server_version": __version__,
            "user_id": user_id,
            "embedding_model": self._model,
            "sections": [s.name for s in store.SECTIONS],
        }
        part = path.with_name(path.name + ".part")

        def write(conn: Any) -> tuple[dict[str, int], int]:
            totals = {s.name: store.count(conn, s, user_id) for s in store.SECTIONS}
            grand, done = sum(totals.values()), 0
            progress("saving", 0, grand)
            with (
                part.open("wb") as raw,
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as out,
            ):
                out.write(orjson.dumps(header) + b"\n")
                counts: dict[str, int] = {}
                for section in store.SECTIONS:
                    blobs = _blob_columns(store.columns(conn, section))
                    n = 0
                    for row in store.dump(conn, section, user_id):
                        for name in blobs:
                            if row[name] is not None:
                                row[name] = base64.b64encode(row[name]).decode()
                        out.write(orjson.dumps({"section": section.name, "row": row}) + b"\n")
                        n += 1
                        done += 1
                        if done % PROGRESS_EVERY == 0:
                            progress("saving", done, grand)
                    counts[section.name] = n
                out.write(orjson.dumps({"end": {"counts": counts}}) + b"\n")
                out.flush()
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(part, path)
            progress("saved", done, grand)
            return counts, path.stat().st_size

        try:
            counts, size = await self._db.read(write)
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)
        return Saved(path, size, counts)

    def _check_target(self, user_id: str, path: Path) -> None:
        """A file may be written at `path` (its folder exists; the user's exports folder
        is made on first use)."""
        if path.is_dir():
            raise InvalidParams.field("path", "names a directory")
        if not path.parent.is_dir():
            if path.parent == exports_dir(self._settings, user_id).resolve():
                path.parent.mkdir(parents=True, exist_ok=True)
            else:
                raise InvalidParams.field("path", f"the folder {path.parent} does not exist")

    # -- load ---------------------------------------------------------------------------

    async def read(self, path: Path) -> StateFile:
        """Read and check a state file whole; -32602 naming what is wrong."""
        schema = await self._db.read(store.schema)
        return await asyncio.to_thread(read_state_file, path, schema)

    async def load(
        self,
        user_id: str,
        path: Path,
        mode: LoadMode = "merge",
        progress: Progress = no_progress,
    ) -> Loaded:
        """Bring a state file into a user's data. `replace` first removes everything of the
        user; `merge` replaces only the personas the file holds (by id, or by name) and
        keeps the others. Nothing is written unless all of it is."""
        state = await self.read(path)
        progress("checked", 0, sum(state.counts().values()))
        reembedded = await self._reembed(state, progress)
        if mode == "replace":
            await self._simulations.stop_user(user_id)
        personas = state.rows.get("personas", [])
        names = [p["name"] for p in personas]
        file_ids = [p["id"] for p in personas]
        max_personas = self._settings.max_personas_per_user
        max_memories = self._settings.max_memories_per_user

        def write(conn: Any) -> list[str]:
            if mode == "replace":
                replaced = [p.id for p in self._personas.visible(user_id)]
                store.delete_user(conn, user_id)
            else:
                replaced = sorted({*store.personas_named(conn, user_id, names), *file_ids})
                store.delete_personas(conn, user_id, replaced)
            _check_foreign(conn, user_id, state)
            for section in store.SECTIONS:
                rows = state.rows.get(section.name, [])
                for names_, values in _grouped(rows):
                    store.insert(conn, section, user_id, names_, values, merge=mode == "merge")
            held = store.count(conn, store.BY_NAME["personas"], user_id)
            if held > max_personas:
                raise RateLimited(
                    f"The file would leave this user with {held} personas, over the limit "
                    f"of {max_personas} (MAX_PERSONAS_PER_USER)",
                    {"limit": "MAX_PERSONAS_PER_USER", "max": max_personas},
                )
            memories = store.count(conn, store.BY_NAME["memory_scores"], user_id)  # live
            if memories > max_memories:
                raise RateLimited(
                    f"The file would leave this user with {memories} memories, over the "
                    f"limit of {max_memories} (MAX_MEMORIES_PER_USER)",
                    {"limit": "MAX_MEMORIES_PER_USER", "max": max_memories},
                )
            return replaced

        before = {p.id for p in self._personas.visible(user_id)}
        replaced = await self._db.write(write)
        await self._refresh(user_id, before)
        counts = state.counts()
        progress("loaded", sum(counts.values()), sum(counts.values()))
        return Loaded(path, mode, counts, reembedded, [p for p in replaced if p in before])

    async def _refresh(self, user_id: str, before: set[str]) -> None:
        """Bring every in-memory copy in line with the record just written."""
        await self._personas.load()
        await self._social.load()
        self._memory.forget_user(user_id)
        self._pruning.forget_user(user_id)
        after = {p.id for p in self._personas.visible(user_id)}
        for pid in sorted(before - after):
            self._social.forget(pid)
            self._events.publish(user_id, "persona.state", {"persona_id": pid, "change": "deleted"})
        for pid in sorted(after):
            change = "created" if pid not in before else "loaded"
            self._events.publish(user_id, "persona.state", {"persona_id": pid, "change": change})

    async def _reembed(self, state: StateFile, progress: Progress) -> int:
        """Replace vectors another embedding model made with this server's own (memories
        and archived memories by their `embedding_model`; the tiers, which do not record
        one, by the file's). Segment vectors are dropped: they are rebuilt from their
        pages when next used."""
        model = self._model
        if model is None:
            return 0
        jobs: list[tuple[dict[str, Any], str, str | None]] = []  # row, text, model column
        texts = {
            row["id"]: (row["content"], row.get("context") or "")
            for row in state.rows.get("memories", [])
        }
        for row in state.rows.get("memory_vectors", []):
            if row.get("model") != model and row.get("memory_id") in texts:
                text = retrieval.embedding_text(*texts[row["memory_id"]])
                jobs.append((row, text, "model"))
        if state.header.get("embedding_model") != model:
            for row in state.rows.get("tier_pages", []):
                if row.get("embedding") is not None:
                    jobs.append((row, f"{row['user_input']}\n{row['agent_response']}", None))
            for row in state.rows.get("tier_knowledge", []):
                if row.get("embedding") is not None:
                    jobs.append((row, row["text"], None))
            for row in state.rows.get("tier_segments", []):
                row["embedding"] = None
        total = len(jobs)
        if not total:
            return 0
        progress("re-embedding", 0, total)
        for start in range(0, total, EMBED_BATCH):
            batch = jobs[start : start + EMBED_BATCH]
            vectors = await self._memory.embedder.embed([text for _, text, _ in batch])
            for (row, _, model_column), vector in zip(batch, vectors, strict=True):
                if model_column is None:
                    row["embedding"] = tier_repo.blob(np.asarray(vector, dtype=np.float32))
                else:
                    row["embedding"] = memory_repo.to_blob(vector)
                    row[model_column] = model
            progress("re-embedding", min(start + EMBED_BATCH, total), total)
        return total


def _check_foreign(conn: Any, user_id: str, state: StateFile) -> None:
    """Ids in the file that another user's rows hold on this server are a conflict:
    loading them would touch that user's data."""
    for section in store.SECTIONS:
        rows = state.rows.get(section.name, [])
        if not section.global_key or not rows:
            continue
        column = section.key[0]
        taken = store.held_by_others(conn, section, user_id, [r[column] for r in rows])
        if taken:
            raise Conflict(
                f"{len(taken)} {section.name} ids in the file belong to another user of this "
                "server; they cannot be loaded here",
                {"section": section.name, "ids": taken[:10]},
            )


def _grouped(rows: list[dict[str, Any]]) -> Iterable[tuple[list[str], list[list[Any]]]]:
    """Rows grouped by their set of columns (in order), for one insert statement each."""
    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    for row in rows:
        names = tuple(row)
        groups.setdefault(names, []).append(list(row.values()))
    return [(list(k), v) for k, v in groups.items()]


def _blob_columns(cols: list[Column]) -> list[str]:
    return [c.name for c in cols if c.type == "BLOB"]


# -- reading and checking a file ----------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, where: str, message: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append({"field": where, "message": message, "type": "state_file"})

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise InvalidParams(
                f"Invalid state file: {first['field']}: {first['message']}"
                + (f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""),
                {"errors": self.items},
            )


def _open(path: Path) -> BinaryIO:
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_state_file(path: Path, schema: dict[str, list[Column]]) -> StateFile:
    """Parse and check a state file against this server's tables (a worker thread's job)."""
    if not path.is_file():
        raise InvalidParams.field("path", f"no such file: {path.name}")
    problems = _Problems()
    state: StateFile | None = None
    trailer: dict[str, Any] | None = None
    try:
        with _open(path) as f:
            lineno = 0
            while True:
                line = f.readline(MAX_LINE_BYTES + 1)
                if not line:
                    break
                lineno += 1
                if len(line) > MAX_LINE_BYTES:
                    problems.add(f"line {lineno}", f"is longer than {MAX_LINE_BYTES} bytes")
                    break
                if not line.strip():
                    continue
                try:
                    item = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    problems.add(f"line {lineno}", f"is not JSON ({exc})")
                    break
                if state is None:
                    state = _header(item, schema, problems)
                    if state is None:
                        break
                    continue
                if trailer is not None:
                    problems.add(f"line {lineno}", "follows the end line")
                    break
                if isinstance(item, dict) and set(item) == {"end"}:
                    trailer = item["end"] if isinstance(item["end"], dict) else {}
                    continue
                items = _from_version_1(item) if state.header["version"] < 2 else [item]
                if state.header["version"] < 3:
                    items = [two for one in items for two in _from_version_2(one)]
                for one in items:
                    _row(one, lineno, state, schema, problems)
                if len(problems.items) >= MAX_PROBLEMS:
                    break
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        problems.add("path", f"cannot be read: {exc}")
    if state is None and not problems:
        problems.add("path", "is empty")
    problems.raise_if_any()
    assert state is not None
    if trailer is None:
        problems.add("end", "the file has no end line: it was cut short")
    else:
        counts = trailer.get("counts")
        actual = state.counts()
        if isinstance(counts, dict) and state.header["version"] < 2:
            counts = {**counts, **{name: actual.get(name, 0) for name in _V1_DERIVED}}
        if isinstance(counts, dict) and state.header["version"] < 3:
            archived = counts.get("memory_archive", 0)
            counts = {**counts, "memories": counts.get("memories", 0) + archived}
        if not isinstance(counts, dict):
            problems.add("end.counts", "is missing")
        else:
            for name, n in actual.items():
                if counts.get(name, 0) != n:
                    problems.add(
                        f"end.counts.{name}", f"says {counts.get(name, 0)} rows; the file has {n}"
                    )
    _references(state, problems)
    problems.raise_if_any()
    return state


def _header(item: Any, schema: dict[str, list[Column]], problems: _Problems) -> StateFile | None:
    if not isinstance(item, dict) or item.get("format") != FORMAT:
        problems.add("format", f"the first line must be a {FORMAT} header")
        return None
    version = item.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        problems.add("version", "must be an integer")
        return None
    if version > FORMAT_VERSION:
        problems.add(
            "version",
            f"is {version}; this server reads version {FORMAT_VERSION} and older "
            "(upgrade persona-mcp to load it)",
        )
        return None
    sections = item.get("sections")
    if not isinstance(sections, list) or not all(isinstance(s, str) for s in sections):
        problems.add("sections", "must list the file's sections")
        return None
    unknown = [s for s in sections if s not in schema]
    if unknown:
        problems.add(
            "sections",
            f"{', '.join(unknown)} unknown to this server (a newer persona-mcp wrote the file)",
        )
        return None
    if version < 2 and "memories" in sections:
        item = {**item, "sections": [*sections, *_V1_DERIVED]}
    return StateFile(header=item)


def _from_version_1(item: Any) -> list[Any]:
    """A line of a version-1 file as the lines of today's sections."""
    if not isinstance(item, dict) or set(item) != {"section", "row"}:
        return [item]
    name, row = item["section"], item["row"]
    if name not in ("memories", "memory_archive") or not isinstance(row, dict):
        return [item]
    row = dict(row)
    embedding, model = row.pop("embedding", None), row.pop("embedding_model", None)
    out: list[Any] = [{"section": name, "row": row}]
    if name == "memories":
        scores = {
            "memory_id": row.get("id"),
            "persona_id": row.get("persona_id"),
            "created_at": row.get("created_at"),
        }
        scores.update({c: row.pop(c) for c in _V1_SCORES if c in row})
        out.append({"section": "memory_scores", "row": scores})
    if embedding is not None:
        vector = {"memory_id": row.get("id"), "model": model or "", "embedding": embedding}
        out.append({"section": "memory_vectors", "row": vector})
    return out


def _from_version_2(item: Any) -> list[Any]:
    """A line of a version 1-2 file (an archived memory whole in its archive row) as the
    lines of today's sections: the memory's row and its narrow archive row."""
    if not isinstance(item, dict) or set(item) != {"section", "row"}:
        return [item]
    row = item["row"]
    if item["section"] != "memory_archive" or not isinstance(row, dict):
        return [item]
    memory = {k: v for k, v in row.items() if k not in _ARCHIVE_OWN}
    archive = {k: v for k, v in row.items() if k in (*_ARCHIVE_OWN, "id", "persona_id")}
    return [{"section": "memories", "row": memory}, {"section": "memory_archive", "row": archive}]


_TYPES: dict[str, Callable[[Any], bool]] = {
    "TEXT": lambda v: isinstance(v, str),
    "REAL": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "INTEGER": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "BLOB": lambda v: isinstance(v, str),
}


def _row(
    item: Any,
    lineno: int,
    state: StateFile,
    schema: dict[str, list[Column]],
    problems: _Problems,
) -> None:
    where = f"line {lineno}"
    if not isinstance(item, dict) or set(item) != {"section", "row"}:
        problems.add(where, 'must be {"section": ..., "row": {...}}')
        return
    name, row = item["section"], item["row"]
    if name not in state.header["sections"]:
        problems.add(f"{where}.section", f"{name!r} is not a section the header lists")
        return
    if not isinstance(row, dict):
        problems.add(f"{where}.row", "must be an object")
        return
    cols = {c.name: c for c in schema[name]}
    section = store.BY_NAME[name]
    for column in row:
        if column not in cols:
            problems.add(f"{where} ({name}).{column}", "is not a column of this section")
    for column, info in cols.items():
        value = row.get(column)
        at = f"{where} ({name}).{column}"
        if value is None:
            if info.required:
                problems.add(at, "is required")
            continue
        check = _TYPES.get(info.type)
        if check is not None and not check(value):
            problems.add(at, f"must be {info.type.lower()}")
            continue
        if info.type == "BLOB":
            try:
                row[column] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                problems.add(at, "must be base64")
        elif info.type == "REAL":
            row[column] = float(value)
        elif column in section.json_columns:
            try:
                orjson.loads(value)
            except orjson.JSONDecodeError:
                problems.add(at, "must hold JSON text")
    state.rows.setdefault(name, []).append(row)


def _references(state: StateFile, problems: _Problems) -> None:
    """Keys unique within each section, and every reference to a row of the file."""
    keys: dict[str, set[tuple[Any, ...]]] = {}
    for section in store.SECTIONS:
        rows = state.rows.get(section.name, [])
        seen: set[tuple[Any, ...]] = set()
        for i, row in enumerate(rows):
            if section.key:
                key = tuple(row.get(c) for c in section.key)
                if key in seen:
                    problems.add(f"{section.name}[{i}]", f"repeats the key {key}")
                seen.add(key)
            for column, parent in section.parents:
                ref = row.get(column)
                if ref is None:
                    continue
                if (ref,) not in keys.get(parent, set()):
                    problems.add(
                        f"{section.name}[{i}].{column}", f"{ref!r} is not a row of {parent}"
                    )
        keys[section.name] = seen
    if len(state.rows.get("user_state", [])) > 1:
        problems.add("user_state", "holds more than one row")
    names: set[str] = set()
    for i, persona in enumerate(state.rows.get("personas", [])):
        lowered = str(persona.get("name", "")).lower()
        if lowered in names:
            problems.add(f"personas[{i}].name", f"{persona['name']!r} is there twice")
        names.add(lowered)
