"""The recorder's durable watermarks: wait until a published event is in the WAL before acknowledging it."""

from __future__ import annotations

import asyncio
import json
import logging

from nats.aio.msg import Msg

from events.bus import Bus
from events.subjects import WATERMARK_PREFIX

log = logging.getLogger(__name__)


class Watermarks:
    """Follows `sq.wal.watermark.<stream>` (core NATS) and wakes waiters as the recorded sequence grows."""

    def __init__(self) -> None:
        self._seq: dict[str, int] = {}
        self._changed = asyncio.Condition()

    async def follow(self, bus: Bus) -> None:
        """Subscribe to every stream's watermark."""
        await bus.nc.subscribe(WATERMARK_PREFIX + ">", cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
            stream, seq = str(body["stream"]), int(body["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored malformed watermark", extra={"subject": msg.subject, "error": repr(exc)})
            return
        await self.advance(stream, seq)

    async def advance(self, stream: str, seq: int) -> None:
        """Record that `stream` is durable up to `seq`."""
        if seq > self._seq.get(stream, 0):
            async with self._changed:
                self._seq[stream] = seq
                self._changed.notify_all()

    def current(self, stream: str) -> int:
        """The last durable sequence seen for `stream` (0 if none yet)."""
        return self._seq.get(stream, 0)

    async def wait_for(self, stream: str, seq: int, timeout: float) -> bool:
        """True once `stream` is durable at `seq` or beyond; False if that takes longer than `timeout`."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._seq.get(stream, 0) >= seq), timeout)
            except TimeoutError:
                return False
        return True
