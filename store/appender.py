"""asyncio group commit: concurrent appends gathered for a few ms into one write and one fdatasync."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from store.errors import WalClosedError, WalError, WalRecordError
from store.writer import Entry, WalWriter, WriteTicket

_Pending = tuple[Entry, "asyncio.Future[int]"]


class AsyncWalAppender:
    """Appends from many coroutines, acknowledged (the future resolves) only once durable.

    Writes run on one thread and fdatasyncs on another, so batch N+1 is encoded and written
    while batch N is being synced; ordering is kept because writes are issued one at a time.
    """

    def __init__(self, writer: WalWriter, *, max_delay: float = 0.002, max_batch: int = 4096,
                 max_inflight: int = 2) -> None:
        self.writer = writer
        self._max_delay = max_delay
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._inflight = asyncio.Semaphore(max_inflight)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="wal-write")
        self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="wal-sync")

    async def append(self, payload: bytes | bytearray | memoryview, *, ts: int, subject: str = "", type: str = "",
                     seq: int | None = None, schema: int = 1) -> int:
        """Append one record; return its sequence once durable."""
        return (await self.append_many([Entry(payload, ts, subject, type, seq, schema)]))[0]

    async def append_many(self, entries: Iterable[Entry]) -> list[int]:
        """Append records in order; return their sequences once all are durable."""
        if self._closing:
            raise WalClosedError("appender is closed")
        loop = asyncio.get_running_loop()
        futures = []
        for entry in entries:
            future: asyncio.Future[int] = loop.create_future()
            self._pending.append((entry, future))
            futures.append(future)
        if len(self._pending) >= self._max_batch:
            self._full.set()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wal-group-commit")
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        """Flush what is queued, wait for every sync in flight, stop the threads (the writer stays open)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        for _ in range(self._max_inflight):
            await self._inflight.acquire()
        self._write_thread.shutdown()
        self._sync_thread.shutdown()

    async def __aenter__(self) -> AsyncWalAppender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self) -> None:
        """Gather, write, hand the sync to the sync thread, repeat."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            if len(self._pending) < self._max_batch and self._max_delay > 0 and not self._closing:
                # The bounded gathering window: wait for more appends, or for a full batch.
                waiter = asyncio.ensure_future(self._full.wait())
                await asyncio.wait([waiter], timeout=self._max_delay)
                waiter.cancel()
            self._full.clear()
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch:]
            if self._pending or self._closing:
                self._wake.set()
            await self._inflight.acquire()
            try:
                ticket = await loop.run_in_executor(self._write_thread, self.writer.write_batch,
                                                    [entry for entry, _ in batch])
            except WalRecordError as exc:
                # Nothing was written: fail the offending entry alone and retry the others in order.
                self._inflight.release()
                _fail([batch[exc.index]], exc)
                self._pending[:0] = batch[: exc.index] + batch[exc.index + 1:]
                self._wake.set()
                continue
            except WalError as exc:
                self._inflight.release()
                _fail(batch, exc)
                continue
            synced = loop.run_in_executor(self._sync_thread, self.writer.sync, ticket)
            synced.add_done_callback(partial(self._settle, batch, ticket))

    def _settle(self, batch: list[_Pending], ticket: WriteTicket, synced: asyncio.Future[None]) -> None:
        """Resolve a batch's futures once its sync finished (or failed: then none is acknowledged)."""
        self._inflight.release()
        error = synced.exception()
        if error is not None:
            _fail(batch, error)
            return
        for (_entry, future), seq in zip(batch, ticket.seqs, strict=True):
            if not future.done():
                future.set_result(seq)


def _fail(batch: list[_Pending], error: BaseException) -> None:
    """Fail every still-waiting future of a batch."""
    for _entry, future in batch:
        if not future.done():
            future.set_exception(error)
