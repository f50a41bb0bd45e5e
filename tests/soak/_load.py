"""The soak's load and probes: a market-data publisher, an order publisher, fill latency and process memory."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal as D

import msgspec

from events import BookSnapshot, Bus, LimitAlgo, MarketAlgo, OrderIntent, Trade, TwapAlgo, new_event_id
from events._base import Side
from events.market import Level
from events.partitions import on_wire

ACCOUNT = "SOAK"
SYMBOLS = ("SOAKA", "SOAKB", "SOAKC")
TICK = D("0.01")
OVERSIZE = D(150)  # above the `processes` fixture's max_order_quantity of 100: rejected by risk


def rss_kb(pid: int) -> int:
    """Resident set size of a process in kB, from /proc/<pid>/status (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise LookupError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def paced(rate: float, stop: asyncio.Event, step: Callable[[int], object]) -> None:
    """Call `step(n)` `rate` times a second on an absolute schedule until `stop` (no drift, no burst)."""
    start, n = time.monotonic(), 0
    while not stop.is_set():
        outcome = step(n)
        if asyncio.iscoroutine(outcome):
            await outcome
        n += 1
        delay = start + n / rate - time.monotonic()
        if delay < -1.0:  # more than a second behind: drop the backlog rather than burst
            start, n = time.monotonic(), 0
        elif delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass


@dataclass
class Market:
    """A random walk per symbol: a trade at the mid every tick, a two-level book every `book_every` ticks."""

    bus: Bus
    book_every: int = 5
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    mids: dict[str, D] = field(default_factory=lambda: dict.fromkeys(SYMBOLS, D("100.00")))
    update_ids: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SYMBOLS, 0))
    published: list[str] = field(default_factory=list)

    def book(self, symbol: str) -> tuple[D, D]:
        """Best bid and ask of the last book published for `symbol`."""
        return self.mids[symbol] - TICK, self.mids[symbol] + TICK

    async def tick(self, n: int) -> None:
        now = time.time_ns()
        events: list[object] = []
        for symbol in SYMBOLS:
            if n % self.book_every == 0:
                mid = self.mids[symbol] + TICK * self.rng.choice((-1, 0, 1))
                self.mids[symbol] = min(max(mid, D("90.00")), D("110.00"))
                self.update_ids[symbol] += 1
                bids: list[Level] = [(self.mids[symbol] - TICK * k, D(1000)) for k in (1, 2)]
                asks: list[Level] = [(self.mids[symbol] + TICK * k, D(1000)) for k in (1, 2)]
                events.append(BookSnapshot(id=new_event_id(now), ts=now, venue="BINANCE", symbol=symbol,
                                           last_update_id=self.update_ids[symbol], bids=bids, asks=asks))
            events.append(Trade(id=new_event_id(now), ts=now, venue="BINANCE", symbol=symbol,
                                price=self.mids[symbol], quantity=D(self.rng.randint(1, 20))))
        await self.bus.publish_batch(events)  # type: ignore[arg-type]
        self.published.extend(e.id for e in events)  # type: ignore[attr-defined]


class _Report(msgspec.Struct):
    order_id: str
    last_quantity: D = D(0)


class _Decision(msgspec.Struct):
    order_id: str


class _Completed(msgspec.Struct):
    order_id: str


@dataclass
class Orders:
    """Mixed intents (MARKET, marketable IOC LIMIT, short TWAP, oversize) and their latencies to decision and fill.

    Latency runs from just before the JetStream publish to the arrival of the first fill report
    (or the decision) on a plain NATS subscription in this process.
    """

    bus: Bus
    market: Market
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    sent: dict[str, tuple[float, str, OrderIntent]] = field(default_factory=dict)  # id -> (t, kind, intent)
    decided: dict[str, float] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    first_fill: dict[str, float] = field(default_factory=dict)
    fills_seen: int = 0
    decisions_seen: int = 0
    # (receive time, latency s) for the samples
    fill_latencies: list[tuple[float, float]] = field(default_factory=list)
    decision_latencies: list[tuple[float, float]] = field(default_factory=list)

    async def subscribe(self) -> None:
        # As the broker delivers them: with the account's bucket token (events.partitions).
        await self.bus.nc.subscribe(on_wire(f"sq.exec.report.*.{ACCOUNT}"), cb=self._on_report)
        await self.bus.nc.subscribe(on_wire(f"sq.risk.decision.{ACCOUNT}"), cb=self._on_decision)
        await self.bus.nc.subscribe(on_wire(f"sq.exec.tca.{ACCOUNT}"), cb=self._on_completed)
        await self.bus.nc.flush()

    async def _on_report(self, msg: object) -> None:
        now = time.perf_counter()
        report = msgspec.json.decode(msg.data, type=_Report)  # type: ignore[attr-defined]
        if report.last_quantity > 0:
            self.fills_seen += 1
            if report.order_id in self.sent and report.order_id not in self.first_fill:
                self.first_fill[report.order_id] = now
                if self.sent[report.order_id][1] in ("MARKET", "LIMIT"):
                    self.fill_latencies.append((now, now - self.sent[report.order_id][0]))

    async def _on_decision(self, msg: object) -> None:
        now = time.perf_counter()
        decision = msgspec.json.decode(msg.data, type=_Decision)  # type: ignore[attr-defined]
        self.decisions_seen += 1
        if decision.order_id in self.sent and decision.order_id not in self.decided:
            self.decided[decision.order_id] = now
            self.decision_latencies.append((now, now - self.sent[decision.order_id][0]))

    async def _on_completed(self, msg: object) -> None:
        self.completed.add(msgspec.json.decode(msg.data, type=_Completed).order_id)  # type: ignore[attr-defined]

    def settled(self) -> bool:
        """Every intent decided, and every accepted one completed by the router."""
        return all(i in self.decided and (kind == "OVERSIZE" or i in self.completed)
                   for i, (_, kind, _) in list(self.sent.items()))

    def make(self, n: int) -> tuple[str, OrderIntent]:
        symbol = SYMBOLS[n % len(SYMBOLS)]
        side: Side = self.rng.choice(("BUY", "SELL"))
        quantity = D(self.rng.randint(1, 5))
        roll = self.rng.random()
        base = OrderIntent(id=new_event_id(), ts=time.time_ns(), account=ACCOUNT, client_order_id=f"soak-{n}",
                           symbol=symbol, side=side, quantity=quantity, algo=MarketAlgo())
        if roll < 0.05:
            return "OVERSIZE", msgspec.structs.replace(base, quantity=OVERSIZE)
        if roll < 0.10:
            return "TWAP", msgspec.structs.replace(base, quantity=quantity * 2,
                                                   algo=TwapAlgo(duration_s=1.0, slices=2))
        if roll < 0.25:
            bid, ask = self.market.book(symbol)
            limit = ask + TICK * 5 if side == "BUY" else bid - TICK * 5  # marketable, with room for a move
            return "LIMIT", msgspec.structs.replace(base, limit_price=limit, time_in_force="IOC", algo=LimitAlgo())
        return "MARKET", base

    async def send(self, n: int, *, kind: str | None = None) -> str:
        """Publish intent number `n` (a MARKET one when `kind` says so); return its id."""
        made, intent = self.make(n)
        if kind == "MARKET" and made != "MARKET":
            intent = msgspec.structs.replace(intent, quantity=D(1), limit_price=None, time_in_force="GTC",
                                             algo=MarketAlgo())
        kind = kind or made
        started = time.perf_counter()
        self.sent[intent.id] = (started, kind, intent)
        await self.bus.publish(intent)
        return intent.id
