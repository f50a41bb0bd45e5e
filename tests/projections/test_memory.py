"""The gateway's process can give freed memory back: Arrow on the C allocator, glibc told not to hoard."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pyarrow as pa
import pytest

from projections.memory import duckdb_allocator_bytes, give_back_freed_memory, use_returnable_memory

POOL_OF_SQ = "import gateway.cli, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def _pool_in_fresh_process(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", POOL_OF_SQ], env={**clean, **env}, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def test_every_sq_process_allocates_arrow_with_the_c_allocator() -> None:
    assert _pool_in_fresh_process() == "system"


def test_an_operator_can_still_choose_arrows_allocator() -> None:
    assert _pool_in_fresh_process(ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "mimalloc"


def test_returnable_memory_moves_pyarrow_to_the_c_allocator_and_trims() -> None:
    before = pa.default_memory_pool()
    try:
        use_returnable_memory()
        assert pa.default_memory_pool().backend_name == "system"
        table = pa.table({"x": pa.array(range(100_000))})
        assert pa.system_memory_pool().bytes_allocated() >= table.nbytes
        del table
        give_back_freed_memory()
    finally:
        pa.set_memory_pool(before)


def test_giving_back_purges_the_pages_a_duckdb_query_freed() -> None:
    if duckdb_allocator_bytes() is None:
        pytest.skip("this DuckDB build has no jemalloc of its own to purge (only its Linux wheels bundle one)")
    connection = duckdb.connect(config={"threads": 1})
    # A full sort of 2M strings: DuckDB allocates and frees about 100 MB, which its jemalloc keeps.
    connection.sql("select count(*) from (select x::varchar || x::varchar s from range(2000000) t(x) "
                   "order by s offset 1)").fetchall()
    allocated, resident = duckdb_allocator_bytes() or (0, 0)
    assert resident - allocated > 32 << 20, "the sort left no freed pages to purge: the test proves nothing"
    give_back_freed_memory()
    allocated, resident = duckdb_allocator_bytes() or (0, 0)
    assert resident - allocated < 16 << 20
