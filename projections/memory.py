"""Make a long-running projections process give the memory it frees back to the operating system.

The gateway's projections allocate and free tens of megabytes at a time: rows handed to disk, Parquet
parts merged, checkpoints snapshotted, queries answered. Four things kept that memory:
- Arrow's default allocator (mimalloc) keeps what it frees. `sq` switches Arrow to the C allocator
  before pyarrow loads (gateway/cli.py); `pa.set_memory_pool` later moves only pyarrow's own calls.
- glibc's mmap threshold rises to the largest block ever freed, so later big buffers come from the
  heap, where one live allocation pins everything below it; and its per-thread arenas (to_thread,
  DuckDB, Arrow) shrink only from the top. Fixed with a fixed threshold (events.process, which every
  `sq` process sets), and a trim after checkpoints and (at most once a second) after queries.
- Merging parts read ahead on Arrow's thread pools (projections/cold.py now reads one row group
  at a time).
- DuckDB's own jemalloc (bundled in its Linux wheels) purges freed pages only as it allocates more
  or when a task peaks over 128 MiB, so pages the dashboard's queries freed stayed resident (19 -> 28 MB
  over 50,000 orders, 2 MB of it in use). Purged with the trim, through the `duckdb_je_mallctl` those
  wheels export; without that symbol (other platforms) there is nothing to purge.
Measured over 200,000 orders fed in-process: with queries, 231 -> 455 MB with Arrow's C++ code on
mimalloc and 204 -> 239 MB on the C allocator; with no queries and Arrow on the C allocator,
198 -> 400 MB with glibc's defaults and the read-ahead merge, 191 -> 194 MB with both fixed. With
queries over 50,000 orders, trimmed: 213 -> 221 MB without the DuckDB purge, 206 -> 210 MB with it.

On other C libraries (musl, macOS) the glibc calls do not exist and are skipped.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable

import duckdb  # noqa: F401  (loads the compiled module whose allocator is purged)
import pyarrow as pa

from events.process import fix_mmap_threshold, trim_malloc

log = logging.getLogger(__name__)

# jemalloc's "all arenas" index (MALLCTL_ARENAS_ALL): purge every arena's unused dirty pages.
_PURGE_ALL_ARENAS = b"arena.4096.purge"


def _duckdb_mallctl() -> Callable[..., int] | None:
    """The `mallctl` of the jemalloc inside DuckDB's extension module, where its build exports one."""
    # The compiled module is `_duckdb` from DuckDB 1.4 on, `duckdb.duckdb` before.
    module = sys.modules.get("_duckdb") or sys.modules.get("duckdb.duckdb")
    path = getattr(module, "__file__", None)
    if path is None:
        return None
    mallctl = getattr(ctypes.CDLL(path), "duckdb_je_mallctl", None)
    if mallctl is None:
        return None
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    mallctl.restype = ctypes.c_int
    return mallctl  # type: ignore[no-any-return]


_DUCKDB_MALLCTL = _duckdb_mallctl()


def duckdb_allocator_bytes() -> tuple[int, int] | None:
    """Bytes DuckDB's jemalloc has handed out and bytes it holds resident, or None without its jemalloc."""
    if _DUCKDB_MALLCTL is None:
        return None
    epoch = ctypes.c_uint64(1)      # writing the epoch refreshes jemalloc's cached statistics
    _DUCKDB_MALLCTL(b"epoch", None, None, ctypes.addressof(epoch), ctypes.sizeof(epoch))
    figures = []
    for name in (b"stats.allocated", b"stats.resident"):
        value, size = ctypes.c_size_t(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
        _DUCKDB_MALLCTL(name, ctypes.addressof(value), ctypes.addressof(size), None, 0)
        figures.append(value.value)
    return figures[0], figures[1]


def use_returnable_memory() -> None:
    """At process start: a fixed mmap threshold, and Arrow on the C allocator, so freed memory can go back."""
    if pa.default_memory_pool().backend_name != "system":
        # Arrow's C++ code keeps the pool it chose as pyarrow loaded (`sq` sets
        # ARROW_DEFAULT_MEMORY_POOL=system first); this moves only pyarrow's own allocations.
        log.info("Arrow's default pool is not the C allocator; set ARROW_DEFAULT_MEMORY_POOL=system "
                 "before pyarrow loads", extra={"pool": pa.default_memory_pool().backend_name})
        pa.set_memory_pool(pa.system_memory_pool())
    fix_mmap_threshold()


def give_back_freed_memory() -> None:
    """Return the free pages of every malloc and DuckDB arena to the OS (after a burst of frees: a query, a spill)."""
    trim_malloc()
    global _DUCKDB_MALLCTL
    if _DUCKDB_MALLCTL is not None:
        failed = _DUCKDB_MALLCTL(_PURGE_ALL_ARENAS, None, None, None, 0)
        if failed:
            # Housekeeping must not fail the query or checkpoint that called it: say so once, stop trying.
            log.warning("DuckDB's allocator refused to purge its free pages; no longer asked",
                        extra={"mallctl_error": failed})
            _DUCKDB_MALLCTL = None
