"""The aggregator's core: trades to bars and trade summaries, book snapshots and deltas to book tops, bad
input to dead letters.

`handle(state, event) -> list[Event]` is deterministic and does no I/O and reads no clock. The
candle part is a pure decide/evolve pair (candles.py); the books are numpy arrays updated in
place (copying them per delta would cost more than the update), so `handle` mutates `state`
and returns the events to publish. Replaying the same input into a fresh state yields the same
outputs with the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from events._base import Event
from events.audit import DeadLetter
from events.codec import encode
from events.control import TimerFired
from events.ids import derived_id
from events.market import BookDelta, BookSnapshot, BookTop, Trade
from processors.aggregator import candles
from processors.aggregator.book import L2Book, Status, imbalance, top_of_book
from processors.aggregator.book_events import from_scaled
from processors.aggregator.config import AggregatorConfig, interval_to_ns
from processors.aggregator.sync import BookSync, on_delta, on_snapshot
from processors.aggregator.tape import Tape, on_time, on_trade
from processors.fold import step

SOURCE = "aggregator"
# The shape of this core's state: bump it when the state changes shape, so an older snapshot is
# rebuilt from the log instead of restored (processors.snapshots).
STATE_VERSION = 2         # 2: the trade tape (summaries)
# Trades make bars and summaries, depth makes books and tops.
SUBSCRIPTIONS = ("sq.md.trade.>", "sq.md.book.>")


@dataclass
class AggregatorState:
    """Candle states per (venue, symbol, interval), books per (venue, symbol), last top time per book, the tape."""

    config: AggregatorConfig
    candles: dict[tuple[str, str, str], candles.CandleState] = field(default_factory=dict)
    books: dict[tuple[str, str], BookSync] = field(default_factory=dict)
    last_top_ts: dict[tuple[str, str], int] = field(default_factory=dict)
    tape: Tape = field(default_factory=lambda: Tape(every_ns=0))


def initial_state(config: AggregatorConfig) -> AggregatorState:
    """An empty state for a validated config."""
    config = config.validate()
    return AggregatorState(config=config, tape=Tape(every_ns=config.summary_every_ms * 1_000_000))


def _dead_letter(event: Event, reason: str) -> DeadLetter:
    return DeadLetter(id=derived_id(event.id, f"dlq:{SOURCE}"), ts=event.ts, source=SOURCE,
                      subject=f"{type(event).__name__}:{getattr(event, 'venue', '')}:{getattr(event, 'symbol', '')}",
                      reason=reason, payload=encode(event).decode())


def _on_candle_event(state: AggregatorState, event: Trade | TimerFired) -> list[Event]:
    out: list[Event] = []
    if isinstance(event, Trade):
        for interval in state.config.intervals:
            key = (event.venue, event.symbol, interval)
            current = state.candles.get(key) or candles.CandleState(
                venue=event.venue, symbol=event.symbol, interval=interval,
                interval_ns=interval_to_ns(interval) or 0)
            try:
                state.candles[key], bars = step(candles.decide, candles.evolve, current, event, apply_outputs=False)
            except candles.LateTrade as exc:
                return [_dead_letter(event, f"{exc}: the {interval} bar was already published")]
            out += bars
        return out
    for key, current in state.candles.items():
        state.candles[key], bars = step(candles.decide, candles.evolve, current, event, apply_outputs=False)
        out += bars
    return out


def _book_top(state: AggregatorState, event: BookSnapshot | BookDelta, sync: BookSync) -> list[Event]:
    key = (event.venue, event.symbol)
    every = state.config.top_every_ms * 1_000_000
    last = state.last_top_ts.get(key)
    if last is not None and every and event.ts - last < every:
        return []
    state.last_top_ts[key] = event.ts
    top = top_of_book(sync.book)
    book = sync.book

    def price(value: int | None) -> Decimal | None:
        return None if value is None else from_scaled(value, book.price_scale)

    def size(value: int | None) -> Decimal | None:
        return None if value is None else from_scaled(value, book.size_scale)

    return [BookTop(id=derived_id(event.id, "top"), ts=event.ts, causation_id=event.id, venue=event.venue,
                    symbol=event.symbol, last_update_id=top.last_update_id or 0, bid_price=price(top.bid_price),
                    bid_size=size(top.bid_size), ask_price=price(top.ask_price), ask_size=size(top.ask_size),
                    imbalance=imbalance(top))]


def _on_book_event(state: AggregatorState, event: BookSnapshot | BookDelta) -> list[Event]:
    key = (event.venue, event.symbol)
    sync = state.books.get(key)
    if sync is None:
        sync = state.books[key] = BookSync(book=L2Book(max_ticks=state.config.max_ticks),
                                           max_buffer=state.config.max_buffered_deltas)
    try:
        result = on_snapshot(sync, event) if isinstance(event, BookSnapshot) else on_delta(sync, event)
    except ValueError as exc:
        # Levels the book cannot hold (more decimals than its scale, non-positive price).
        return [_dead_letter(event, str(exc))]
    if result.status is Status.APPLIED:
        return _book_top(state, event, sync)
    if result.status in (Status.GAP, Status.CROSSED):
        return [_dead_letter(event, f"{result.status.value}: {result.reason}; book resync requested")]
    return []


def handle(state: AggregatorState, event: Event) -> list[Event]:
    """The events `event` leads to (bars, trade summaries, book tops, dead letters); `state` is updated in place."""
    match event:
        case Trade():
            return _on_candle_event(state, event) + on_trade(state.tape, event)
        case TimerFired():
            return _on_candle_event(state, event)
        case BookSnapshot() | BookDelta():
            return _on_book_event(state, event) + on_time(state.tape, event.ts)
    return []


__all__ = ["SOURCE", "AggregatorState", "handle", "initial_state"]
