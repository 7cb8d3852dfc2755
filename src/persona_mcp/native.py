"""The C allocator, kept lean: glibc holds freed memory per thread arena and returns
little of it, so a server that encodes batches on worker threads grows to twice what it
uses. Both calls are no-ops where glibc is not the allocator."""

from __future__ import annotations

import ctypes
import functools
from typing import Any

MALLOC_ARENAS = 2
M_ARENA_MAX = -8


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 (both symbols exist only in glibc)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def cap_malloc_arenas() -> None:
    """At most MALLOC_ARENAS arenas for the threads started from now on (measured: a
    server that had encoded LoCoMo kept 480 MiB resident with glibc's default, 260 with
    two arenas)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def release_free_memory() -> None:
    """Give memory freed by the allocator back to the system (`malloc_trim`): after a
    burst of encoding, 340 MiB resident fell to 146 MiB."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
