"""Market-data events: trades, order-book snapshots and deltas, book tops and bars."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from events._base import TRUSTED, Event, Side, TimestampNs, Token, check_decimal, check_levels

Level = tuple[Decimal, Decimal]
# Bar intervals are subject tokens like 1s, 5m, 1h, 1d.
Interval = Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,5}(ms|s|m|h|d)$")]


class Trade(Event, frozen=True, kw_only=True):
    """A print on a venue: price, size and (when the venue says) which side was the aggressor."""

    venue: Token
    symbol: Token
    price: Decimal
    quantity: Decimal
    aggressor: Side | None = None
    trade_id: str | None = None
    venue_ts: TimestampNs | None = None

    def __post_init__(self) -> None:
        if TRUSTED.on:
            return
        check_decimal("price", self.price, positive=True)
        check_decimal("quantity", self.quantity, positive=True)


class TradeSummary(Event, frozen=True, kw_only=True):
    """The trades of one symbol on one venue since the previous summary, conflated by the aggregator.

    The first trade after a quiet spell is summarised alone at once; later ones are folded together and
    published at most once per cadence of event time. Cores that need prices, extremes and volume but
    not every print (risk, the router, portfolio, the projections) read these instead of each trade, so a
    busy symbol costs them a bounded rate. `ts` is the last trade's time, `first_ts` the first's.
    """

    venue: Token
    symbol: Token
    first_ts: TimestampNs
    price: Decimal              # the last trade's
    high: Decimal
    low: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: Annotated[int, msgspec.Meta(ge=1)]


class BookSnapshot(Event, frozen=True, kw_only=True):
    """A full L2 book at `last_update_id`; bids best-first descending, asks best-first ascending."""

    venue: Token
    symbol: Token
    last_update_id: int
    bids: list[Level]
    asks: list[Level]

    def __post_init__(self) -> None:
        if TRUSTED.on:
            return
        check_levels("bids", self.bids)
        check_levels("asks", self.asks)


class BookDelta(Event, frozen=True, kw_only=True):
    """Changed L2 levels covering update ids first..last; size 0 removes a level.

    `prev_last_update_id` carries Binance futures' `pu` (the previous delta's `u`), so
    futures books chain exactly; spot books check `first_update_id <= last + 1` instead.
    """

    venue: Token
    symbol: Token
    first_update_id: int
    last_update_id: int
    bids: list[Level]
    asks: list[Level]
    prev_last_update_id: int | None = None

    def __post_init__(self) -> None:
        if TRUSTED.on:
            return
        if self.last_update_id < self.first_update_id:
            raise ValueError(
                f"last_update_id {self.last_update_id} is below first_update_id {self.first_update_id}")
        check_levels("bids", self.bids)
        check_levels("asks", self.asks)


class BookTop(Event, frozen=True, kw_only=True):
    """Best bid and ask with sizes, spread and top-of-book imbalance, sampled from a rebuilt book."""

    venue: Token
    symbol: Token
    last_update_id: int
    bid_price: Decimal | None
    bid_size: Decimal | None
    ask_price: Decimal | None
    ask_size: Decimal | None
    imbalance: float | None = None


class Bar(Event, frozen=True, kw_only=True):
    """An OHLCV candle, left-closed [open_time, open_time + interval) and labelled by its open time.

    An interval with no trades is published with `trade_count == 0`, zero volume and the
    previous close as open, high, low and close, so gaps are explicit rather than missing.
    """

    venue: Token
    symbol: Token
    interval: Interval
    open_time: TimestampNs
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int = 0
    quote_volume: Decimal | None = None

    def __post_init__(self) -> None:
        if TRUSTED.on:
            return
        for name in ("open", "high", "low", "close"):
            check_decimal(name, getattr(self, name), positive=True)
        check_decimal("volume", self.volume, non_negative=True)
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")

