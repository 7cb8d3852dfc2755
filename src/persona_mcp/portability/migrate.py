"""Moving a whole store between backends: `persona-mcp migrate-store --from --to`.

A store is named `sqlite:PATH` or a PostgreSQL URI (`postgresql://…`, `postgres://…`).
Both are opened as the server opens them (so the target is migrated to the current
schema), then every table is copied in dependency order (`store.transfer`), in batches
of one transaction each. A target that already holds data is refused unless `force`,
which empties it first. The source is only read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from persona_mcp.errors import InvalidParams
from persona_mcp.store import transfer
from persona_mcp.store.api import Database

BATCH = 2000
Progress = Callable[[str, int, int], None]  # table, rows done, rows in the table


def open_named(name: str) -> Database:
    """The store a `--from`/`--to` value names (not yet opened)."""
    if name.startswith("sqlite:"):
        from persona_mcp.store.db import Database as SQLiteDatabase

        return SQLiteDatabase(Path(name.removeprefix("sqlite:")).expanduser())
    if name.startswith(("postgresql://", "postgres://")):
        from persona_mcp.store.postgres.db import PgDatabase

        return PgDatabase(name)
    raise InvalidParams(f"{name!r}: name a store as sqlite:PATH or postgresql://…")


@dataclass
class Copied:
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def copy_store(
    source: Database, target: Database, *, force: bool = False, progress: Progress | None = None
) -> Copied:
    """Copy every table of `source` into `target` (both open)."""
    started = time.perf_counter()
    tables = transfer.tables()
    held = await target.read(lambda conn: {t: transfer.count(conn, t) for t, _ in tables})
    if any(held.values()):
        if not force:
            used = ", ".join(f"{t} {n}" for t, n in held.items() if n)
            raise InvalidParams(
                f"the target store is not empty ({used}); pass --force to replace its data"
            )
        await target.write(transfer.clear)
    copied = Copied()
    for table, order in tables:
        names_in = await source.read(partial(transfer.columns, table=table))
        names_out = set(await target.read(partial(transfer.columns, table=table)))
        names = [n for n in names_in if n in names_out]
        total = await source.read(partial(transfer.count, table=table))
        done = 0
        while done < total:
            rows = await source.read(
                partial(transfer.batch, table=table, names=names, order=order, offset=done,
                        limit=BATCH)
            )  # fmt: skip
            if not rows:
                break
            await target.write(partial(transfer.insert, table=table, names=names, rows=rows))
            done += len(rows)
            if progress is not None:
                progress(table, done, total)
        await target.write(partial(transfer.finish, table=table))
        if progress is not None and total == 0:
            progress(table, 0, 0)
        copied.counts[table] = done
    copied.seconds = time.perf_counter() - started
    return copied
