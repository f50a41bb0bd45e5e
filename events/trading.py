"""The order path: intents and cancels from users, risk decisions, child orders and execution reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from events._base import TRUSTED, Event, EventId, Side, TimeInForce, TimestampNs, Token, check_decimal

ClientOrderId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Duration = Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400, description="seconds")]


class _Algo(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True):
    """Base of the execution algorithms a parent order may ask the router for."""


class MarketAlgo(_Algo, frozen=True, kw_only=True, tag="MARKET"):
    """Execute the whole quantity now against the book."""


class LimitAlgo(_Algo, frozen=True, kw_only=True, tag="LIMIT"):
    """Work the whole quantity as one resting limit order at `limit_price`."""


class TwapAlgo(_Algo, frozen=True, kw_only=True, tag="TWAP"):
    """Equal slices at equal intervals over `duration_s`; `randomize` jitters each slice time by a fraction."""

    duration_s: Duration
    slices: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    randomize: Annotated[float, msgspec.Meta(ge=0, le=0.5)] = 0.0


class VwapAlgo(_Algo, frozen=True, kw_only=True, tag="VWAP"):
    """Slices sized by the historical intraday volume curve over `duration_s`."""

    duration_s: Duration
    slices: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None


class PovAlgo(_Algo, frozen=True, kw_only=True, tag="POV"):
    """Trade `rate` of the market volume observed since the order started, within slice bounds."""

    rate: Annotated[float, msgspec.Meta(gt=0, le=1)]
    min_slice: Decimal | None = None
    max_slice: Decimal | None = None

    def __post_init__(self) -> None:
        if self.min_slice is not None:
            check_decimal("algo.min_slice", self.min_slice, positive=True)
        if self.max_slice is not None:
            check_decimal("algo.max_slice", self.max_slice, positive=True)
        if self.min_slice is not None and self.max_slice is not None and self.min_slice > self.max_slice:
            raise ValueError(f"algo.min_slice {self.min_slice} is above algo.max_slice {self.max_slice}")


Algo = MarketAlgo | LimitAlgo | TwapAlgo | VwapAlgo | PovAlgo
AlgoKind = Literal["MARKET", "LIMIT", "TWAP", "VWAP", "POV"]


class OrderIntent(Event, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A parent order a trader or strategy asks for: the project's public contract (README, "Order intent").

    It comes from outside, so unknown fields are errors. `id` and `ts` may be omitted by a
    NATS publisher: the intake fills `id` from account + client_order_id and `ts` from the
    JetStream message time (see `events.codec.complete_intent`). `algo` defaults to LIMIT
    when a limit price is given and MARKET otherwise.
    """

    id: EventId | Literal[""] = ""
    ts: TimestampNs = 0
    account: Token
    client_order_id: ClientOrderId
    symbol: Token
    venue: Token | None = None
    side: Side
    quantity: Decimal
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = "GTC"
    algo: Algo | None = None
    strategy: Token | None = None

    def __post_init__(self) -> None:
        check_decimal("quantity", self.quantity, positive=True)
        if self.limit_price is not None:
            check_decimal("limit_price", self.limit_price, positive=True)
        if isinstance(self.algo, LimitAlgo) and self.limit_price is None:
            raise ValueError("limit_price is required when algo.kind is LIMIT")

    @property
    def algo_kind(self) -> AlgoKind:
        """The algorithm the router should run, with the documented default applied."""
        if self.algo is not None:
            return self.algo.__struct_config__.tag  # type: ignore[return-value]
        return "LIMIT" if self.limit_price is not None else "MARKET"


class CancelIntent(Event, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A request to cancel a working parent order, by its id or by its client order id."""

    id: EventId | Literal[""] = ""
    ts: TimestampNs = 0
    account: Token
    order_id: EventId | None = None
    client_order_id: ClientOrderId | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.order_id is None and self.client_order_id is None:
            raise ValueError("order_id or client_order_id is required")


class CheckFailure(msgspec.Struct, frozen=True, kw_only=True):
    """One risk check that refused an intent, with a human reason and the numbers behind it."""

    check: str
    reason: str
    value: str | None = None
    limit: str | None = None


class RiskDecision(Event, frozen=True, kw_only=True):
    """The risk manager's verdict on one intent; a rejection names every failed check."""

    order_id: EventId
    account: Token
    symbol: Token
    accepted: bool
    failures: list[CheckFailure] = []
    checks_run: int = 0


class ChildOrder(Event, frozen=True, kw_only=True):
    """One slice of a parent order sent to a venue."""

    order_id: EventId
    child_id: EventId
    account: Token
    venue: Token
    symbol: Token
    side: Side
    quantity: Decimal
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = "GTC"
    slice_index: int = 0

    def __post_init__(self) -> None:
        if TRUSTED.on:
            return
        check_decimal("quantity", self.quantity, positive=True)
        if self.limit_price is not None:
            check_decimal("limit_price", self.limit_price, positive=True)


class ChildCancel(Event, frozen=True, kw_only=True):
    """A request to the venue to cancel a working child order."""

    order_id: EventId
    child_id: EventId
    account: Token
    venue: Token
    reason: str


ExecStatus = Literal["ACK", "PARTIAL", "FILLED", "CANCELLED", "REJECTED"]


class ExecutionReport(Event, frozen=True, kw_only=True):
    """What a venue says happened to a child order: acknowledged, (partly) filled, cancelled or rejected."""

    order_id: EventId
    child_id: EventId
    account: Token
    venue: Token
    symbol: Token
    side: Side
    status: ExecStatus
    last_quantity: Decimal = Decimal(0)
    last_price: Decimal | None = None
    cum_quantity: Decimal = Decimal(0)
    leaves_quantity: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    liquidity: Literal["MAKER", "TAKER"] | None = None
    reason: str | None = None
    venue_order_id: str | None = None
    venue_ts: TimestampNs | None = None

    def __post_init__(self) -> None:
        if TRUSTED.on:
            return
        check_decimal("last_quantity", self.last_quantity, non_negative=True)
        check_decimal("cum_quantity", self.cum_quantity, non_negative=True)
        check_decimal("leaves_quantity", self.leaves_quantity, non_negative=True)
        if self.last_price is not None:
            check_decimal("last_price", self.last_price, positive=True)


class ParentOrderScheduled(Event, frozen=True, kw_only=True):
    """The router's plan for an accepted parent order, fixed once when it starts working it.

    The schedule is a choice (TWAP jitter, the VWAP volume curve at that moment, the arrival quote),
    so it travels as a fact: the router's state is built from this event, never by choosing again.
    Slice `i` is due at `slice_times[i]` and brings the quantity due so far to the sum of
    `slice_quantities[:i + 1]`; both are empty for POV, which follows the market instead. `stopping`
    says why it starts already stopped (a cancel while risk decided, a kill switch), else None.
    """

    order_id: EventId
    account: Token
    client_order_id: str
    symbol: Token
    venue: Token | None = None
    side: Side
    quantity: Decimal
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = "GTC"
    algo: str
    lot: Decimal
    start_ts: TimestampNs
    slice_times: list[TimestampNs] = []
    slice_quantities: list[Decimal] = []
    pov_rate: Decimal | None = None
    min_slice: Decimal | None = None
    max_slice: Decimal | None = None
    arrival_price: Decimal | None = None
    sources: list[str] = []
    note: str | None = None
    stopping: str | None = None


ParentStatus = Literal["FILLED", "CANCELLED", "EXPIRED"]


class ParentOrderCompleted(Event, frozen=True, kw_only=True):
    """A parent order stopped working, with its transaction cost analysis.

    status: FILLED (all of it), CANCELLED (by a cancel intent or the kill switch), EXPIRED (the
    schedule ran out, or an IOC/market child could not fill, with some quantity left).

    Sign convention: `shortfall_bps` and `vwap_slippage_bps` are costs, positive when the order
    did worse than the benchmark — a BUY paid more, a SELL received less:
    `side_sign * (average_price - benchmark) / benchmark * 10_000`, side_sign +1 BUY, -1 SELL.
    `arrival_price` is the mid (best bid and best ask over the candidate venues) when the risk
    decision arrived, else the last trade; `interval_vwap` is the VWAP of the market trades in
    the symbol (every venue) from the decision to completion. Fields are None when their inputs
    are missing (no fills, no arrival quote, no market trades). Fees are not in the bps figures;
    `fees` is their sum in the fee currency of the venue reports.
    """

    order_id: EventId
    account: Token
    client_order_id: str
    symbol: Token
    side: Side
    algo: str
    status: ParentStatus
    reason: str | None = None
    quantity: Decimal
    filled_quantity: Decimal
    children: int
    start_ts: TimestampNs
    end_ts: TimestampNs
    arrival_price: Decimal | None = None
    average_price: Decimal | None = None
    fees: Decimal = Decimal(0)
    shortfall_bps: Decimal | None = None
    interval_vwap: Decimal | None = None
    vwap_slippage_bps: Decimal | None = None
    market_volume: Decimal = Decimal(0)
    participation: Decimal | None = None
    schedule_note: str | None = None


class TradeReported(Event, frozen=True, kw_only=True):
    """A real-time trade report of one fill, as the reporting service publishes it on `sq.rpt.trade.<account>`.

    It carries what a regulator's trade report asks for. Both times are to the microsecond (ns
    since the epoch, truncated to whole microseconds, and as ISO-8601 UTC text): `execution_ts`
    is when the venue says the trade executed (its `venue_ts`, else the report's time);
    `publication_ts` is the event time at which the report was made, the fill's arrival in
    ShrivenQuant (the ExecutionReport's `ts`), so a replay makes the same report byte for byte.
    `decision_id` is the accepting RiskDecision's id and `algo` the parent order's algorithm;
    both are None for a fill of an order whose intent the service never saw.
    """

    report_id: EventId
    account: Token
    venue: Token
    symbol: Token
    side: Side
    quantity: Decimal
    price: Decimal
    order_id: EventId
    child_id: EventId
    venue_order_id: str | None = None
    client_order_id: str | None = None
    decision_id: EventId | None = None
    algo: str | None = None
    execution_ts: TimestampNs
    execution_time: str
    publication_ts: TimestampNs
    publication_time: str
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    liquidity: Literal["MAKER", "TAKER"] | None = None
