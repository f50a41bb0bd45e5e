"""Simulated venues' pure core: child orders matched against the market they mirror, with fees and latency.

Each named venue mirrors the book and trades of a market venue (`market_venue`, e.g. the real
`binance` feed) and charges its own fees; several can mirror the same market. No wall clock: the
venue keeps one clock per market (market venue and symbol) from that market's own trades and book
events. A report's time is when the order (or cancel) reaches the venue — its time plus the venue's
latency — but never earlier than the clock of the market it is matched against (a fill cannot
precede the book it took); a resting fill's time is the trade's. Bars and other symbols' events
never move a market's clock.

Matching rules:
- a child is rejected (no ACK) for an unknown symbol (not listed by the venue, or no market data
  seen when the venue lists none), a quantity off the lot size or not positive, a limit price off
  the tick size, a FOK that the book cannot fill whole within its limit, and a market order with
  neither a book nor a last trade;
- otherwise ACK, then a marketable order walks the opposite side level by level (one
  PARTIAL/FILLED per level, taker fee), within its limit; with no usable book it trades at the
  last trade price in full. Liquidity it takes is remembered until the book updates that level;
- the rest of a market order or an IOC is CANCELLED; a GTC/DAY limit rests;
- a resting limit fills when a later trade (at or after the time the order reached the venue)
  reaches its price (`queue_model` touch: at or through; through: strictly through), at its
  limit price, for at most the trade's size — shared by resting orders in price then time
  priority — paying the maker fee;
- ChildCancel of a working order → CANCELLED; a cancel of an unknown or finished order does
  nothing (the risk manager and the router may both cancel on a kill switch);
- a ChildOrder already seen does nothing: a working one is held once, a finished one is
  remembered while copies can still be redelivered (processors.recent), then forgotten.

Latency shifts timestamps and resting eligibility; the book an arriving order meets is the one
the venue holds when the order is processed (events are handled in stream order).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from events._base import Event
from events.ids import derived_id
from events.market import BookDelta, BookSnapshot, BookTop, Trade
from events.trading import ChildCancel, ChildOrder, ExecStatus, ExecutionReport
from processors.orders import fold_child
from processors.router.config import VenueSpec
from processors.venue_sim._book import MarketBook
from processors.venue_sim.state import SimOrder, SimState

BPS = Decimal(10_000)
ZERO = Decimal(0)
# The shape of this core's state: bump it when the state changes shape, so an older snapshot is
# rebuilt from the log instead of restored (processors.snapshots).
STATE_VERSION = 3  # 2: the module moved to processors.venue_sim; 3: SimOrder keeps the shared child fold
# The children it works and the market (trades, depth) it fills them against.
SUBSCRIPTIONS = ("sq.exec.child.>", "sq.exec.report.>", "sq.md.trade.>", "sq.md.book.>")


class _Reports:
    """Builds the reports one input causes, numbering their ids."""

    def __init__(self, state: SimState, cause: Event) -> None:
        self.state, self.cause, self.out = state, cause, list[Event]()

    def add(self, child: ChildOrder, status: ExecStatus, ts: int, *, cum: Decimal, leaves: Decimal,
            last_quantity: Decimal = ZERO, last_price: Decimal | None = None, fee: Decimal = ZERO,
            liquidity: str | None = None, reason: str | None = None) -> None:
        config = self.state.config
        self.out.append(ExecutionReport(
            id=derived_id(self.cause.id, f"sim-report:{child.venue}", len(self.out)), ts=ts,
            correlation_id=child.order_id, causation_id=self.cause.id, order_id=child.order_id,
            child_id=child.child_id, account=child.account, venue=child.venue, symbol=child.symbol,
            side=child.side, status=status, last_quantity=last_quantity, last_price=last_price,
            cum_quantity=cum, leaves_quantity=leaves, fee=fee,
            fee_currency=config.fee_currencies.get(child.symbol) if fee else None,
            liquidity=liquidity, reason=reason,  # type: ignore[arg-type]
            venue_order_id=derived_id(child.child_id, "venue-order"), venue_ts=ts))

    def fee(self, price: Decimal, quantity: Decimal, bps: Decimal) -> Decimal:
        return (price * quantity * bps / BPS).quantize(Decimal(1).scaleb(-self.state.config.fee_places),
                                                       rounding=ROUND_HALF_EVEN)


def _crosses(side: str, limit: Decimal | None, price: Decimal) -> bool:
    """Can an order on `side` with `limit` trade at `price`?"""
    return limit is None or (price <= limit if side == "BUY" else price >= limit)


def _liquidity(state: SimState, spec: VenueSpec, child: ChildOrder) -> tuple[list[tuple[Decimal, Decimal]], bool]:
    """Levels the child may take best first (net of what we already took), and whether a book priced them."""
    bid_side = child.side == "SELL"
    book = state.book(spec.source, child.symbol)
    if book is not None and book.usable:
        taken = state.consumed.get((spec.name, child.symbol), {})
        out, need = [], child.quantity
        for price, size in book.walk(bid=bid_side):
            if not _crosses(child.side, child.limit_price, price) or need <= 0:
                break
            size -= taken.get((bid_side, price), ZERO)
            if size > 0:
                out.append((price, size))
                need -= size
        return out, True
    last = state.last_trades.get((spec.source, child.symbol))
    if last is not None and _crosses(child.side, child.limit_price, last):
        return [(last, child.quantity)], False
    return [], False


def _reject_reason(state: SimState, spec: VenueSpec, child: ChildOrder) -> str | None:
    config, symbol = state.config, child.symbol
    if spec.symbols and symbol not in spec.symbols:
        return f"unknown symbol {symbol} on {spec.name}: it lists {', '.join(spec.symbols)}"
    if not spec.symbols and (spec.source, symbol) not in state.seen:
        return f"unknown symbol {symbol} on {spec.name}: no market data for it from {spec.source}"
    if child.quantity <= 0:
        return f"quantity {child.quantity} must be greater than 0"
    lot = config.lot_sizes.get(symbol)
    if lot is not None and child.quantity % lot:
        return f"quantity {child.quantity} is not a multiple of lot size {lot} for {symbol}"
    tick = config.tick_sizes.get(symbol)
    if tick is not None and child.limit_price is not None and child.limit_price % tick:
        return f"price {child.limit_price} is not a multiple of tick size {tick} for {symbol}"
    return None


def decide_child(state: SimState, spec: VenueSpec, child: ChildOrder) -> list[Event]:
    """ACK and immediate fills, or a reject, for a child arriving at `spec`."""
    reports = _Reports(state, child)
    ts = max(child.ts + spec.latency_ns, state.clock(spec.source, child.symbol))
    reason = _reject_reason(state, spec, child)
    levels, _ = ([], False) if reason else _liquidity(state, spec, child)
    available = sum((size for _, size in levels), ZERO)
    if reason is None and child.time_in_force == "FOK" and available < child.quantity:
        reason = (f"FOK: only {available} of {child.quantity} {child.symbol} available"
                  + (f" at or better than {child.limit_price}" if child.limit_price is not None else ""))
    if reason is None and child.limit_price is None and not levels:
        reason = f"no liquidity for a market order in {child.symbol} on {spec.name} (empty book side, or no book and no trade)"
    if reason is not None:
        reports.add(child, "REJECTED", ts, cum=ZERO, leaves=ZERO, reason=reason)
        return reports.out
    reports.add(child, "ACK", ts, cum=ZERO, leaves=child.quantity)
    cum = ZERO
    for price, size in levels:
        fill = min(size, child.quantity - cum)
        if fill <= 0:
            break
        cum += fill
        leaves = child.quantity - cum
        reports.add(child, "FILLED" if leaves == 0 else "PARTIAL", ts, cum=cum, leaves=leaves, last_quantity=fill,
                    last_price=price, fee=reports.fee(price, fill, spec.taker_fee_bps), liquidity="TAKER")
    rests = child.limit_price is not None and child.time_in_force in ("GTC", "DAY")
    if cum < child.quantity and not rests:
        why = "IOC" if child.time_in_force == "IOC" else "market order" if child.limit_price is None else "order"
        reports.add(child, "CANCELLED", ts, cum=cum, leaves=ZERO,
                    reason=f"{why}: {child.quantity - cum} unfilled after taking the available liquidity")
    return reports.out


def decide_trade(state: SimState, trade: Trade) -> list[Event]:
    """Fills of resting limits that this trade reaches, within its size, per venue mirroring its market."""
    reports = _Reports(state, trade)
    through = state.config.queue_model == "through"
    for spec in state.config.venues:
        if spec.source != trade.venue:
            continue
        ids = state.resting.get((spec.name, trade.symbol), [])
        orders = [o for i in ids if (o := state.orders[i]).active_ts <= trade.ts]
        eligible = []
        for order in orders:
            limit, side = order.child.limit_price, order.child.side
            assert limit is not None
            reached = trade.price < limit if side == "BUY" else trade.price > limit
            if reached or (not through and trade.price == limit):
                eligible.append(order)
        # Price priority (best limit first), then time.
        eligible.sort(key=lambda o: (-o.child.limit_price if o.child.side == "BUY" else o.child.limit_price,  # type: ignore[operator]
                                     o.seq))
        left = trade.quantity
        for order in eligible:
            if left <= 0:
                break
            fill = min(order.leaves, left)
            left -= fill
            cum = order.cum + fill
            price = order.child.limit_price
            assert price is not None
            reports.add(order.child, "FILLED" if cum == order.child.quantity else "PARTIAL", trade.ts, cum=cum,
                        leaves=order.child.quantity - cum, last_quantity=fill, last_price=price,
                        fee=reports.fee(price, fill, spec.maker_fee_bps), liquidity="MAKER")
    return reports.out


def decide(state: SimState, event: object) -> list[Event]:
    """The reports `event` causes, given the state before it. Never mutates `state`."""
    match event:
        case ChildOrder(venue=venue, child_id=child_id):
            spec = state.config.venue(venue)
            if spec is not None and child_id not in state.orders and child_id not in state.finished:
                return decide_child(state, spec, event)
        case ChildCancel(venue=venue, child_id=child_id):
            spec = state.config.venue(venue)
            order = state.orders.get(child_id)
            if spec is not None and order is not None:
                reports = _Reports(state, event)
                ts = max(event.ts + spec.latency_ns, state.clock(spec.source, order.child.symbol))
                reports.add(order.child, "CANCELLED", ts, cum=order.cum, leaves=ZERO,
                            reason=f"cancelled: {event.reason}")
                return reports.out
        case Trade():
            return decide_trade(state, event)
    return []


def _on_report(state: SimState, report: ExecutionReport) -> None:
    order = state.orders.get(report.child_id)
    if order is None:
        return
    child = order.child
    if fold_child(order.state, report):
        if report.liquidity == "TAKER" and report.last_price is not None:
            spec = state.config.venue(child.venue)
            book = state.book(spec.source, child.symbol) if spec else None
            if book is not None and book.usable:
                taken = state.consumed.setdefault((child.venue, child.symbol), {})
                level = (child.side == "SELL", report.last_price)
                taken[level] = taken.get(level, ZERO) + report.last_quantity
    if order.state.done:
        del state.orders[child.child_id]
        state.finished.add(child.child_id, report.ts)
        resting = state.resting.get((child.venue, child.symbol))
        if resting and child.child_id in resting:
            resting.remove(child.child_id)


def _on_book(state: SimState, event: BookSnapshot | BookDelta) -> None:
    key = (event.venue, event.symbol)
    book = state.books.get(key)
    if book is None:
        book = state.books[key] = MarketBook(state.config.price_scale, state.config.size_scale)
    book.apply(event)
    state.seen.add(key)
    state.tick(event.venue, event.symbol, event.ts)
    for spec in state.config.venues:
        if spec.source != event.venue or (spec.name, event.symbol) not in state.consumed:
            continue
        taken = state.consumed[(spec.name, event.symbol)]
        if isinstance(event, BookSnapshot):
            taken.clear()
        else:
            for bid, levels in ((True, event.bids), (False, event.asks)):
                for price, _ in levels:
                    taken.pop((bid, price), None)


def evolve(state: SimState, event: object) -> SimState:
    """Apply an event to the state (in place) and return it."""
    match event:
        case BookSnapshot() | BookDelta():
            _on_book(state, event)
        case Trade(venue=venue, symbol=symbol, price=price):
            state.last_trades[(venue, symbol)] = price
            state.seen.add((venue, symbol))
            state.tick(venue, symbol, event.ts)
        case BookTop(venue=venue, symbol=symbol):
            state.seen.add((venue, symbol))
            state.tick(venue, symbol, event.ts)
        case ChildOrder(venue=venue, child_id=child_id):
            spec = state.config.venue(venue)
            if spec is not None and child_id not in state.orders and child_id not in state.finished:
                state.orders[child_id] = SimOrder(event, event.ts + spec.latency_ns, state.seq)
                state.seq += 1
                if event.limit_price is not None and event.time_in_force in ("GTC", "DAY"):
                    state.resting.setdefault((venue, event.symbol), []).append(child_id)
        case ExecutionReport():
            _on_report(state, event)
    return state


__all__ = ["decide", "evolve"]
