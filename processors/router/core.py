"""The execution router's pure core: `decide(state, event) -> [events]` and `evolve(state, event) -> state`.

No I/O, no clock: time is the event time of what is being handled (`due_ts` for TimerFired),
never decreasing. The only randomness is TWAP jitter from a PRNG seeded by the parent order id.

Inputs and what they cause:
- OrderIntent → kept until its RiskDecision arrives (either order is accepted);
- RiskDecision(accepted) → a ParentOrderScheduled recording the parent's schedule (the only place
  it is chosen: evolve builds the parent from that event), and the first slice at once
  (MARKET and LIMIT are one slice; TWAP equal slices over the duration, optionally jittered;
  VWAP slices sized by the historical volume curve from Bar events, TWAP when there is none;
  POV children whenever the filled quantity falls behind `rate` × market volume since start);
- TimerFired, TradeSummary (the aggregator's conflated trades; a single Trade alike), BookTop, Bar → time moves on; every slice that became due is sent. A
  slice sends what the cumulative schedule asks for minus what is filled or still working, so
  an IOC slice's unfilled rest is carried into the next slice;
- ExecutionReport → fills; a ParentOrderCompleted (with TCA) when the parent is filled, or
  cancelled with every child done, or its schedule ran out;
- CancelIntent, KillSwitchEngaged → a ChildCancel per working child, and no more slices;
- ParentOrderScheduled, ChildOrder, ChildCancel, ParentOrderCompleted (the router's own outputs) → state only.

The runner folds it with `processors.fold.step`: decide on the state before the event, then
evolve by the event and by each output. Output ids are derived from the input id (children's ids from the parent id and
their sequence number), so a redelivered input yields identical outputs, or none when the state
already shows it was handled.
"""

from __future__ import annotations

from decimal import Decimal

from events._base import Event
from events.control import KillSwitchEngaged, KillSwitchReleased, TimerFired
from events.ids import derived_id
from events.market import Bar, BookTop, Trade, TradeSummary
from events.trading import (
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    ParentOrderScheduled,
    PovAlgo,
    RiskDecision,
    TwapAlgo,
    VwapAlgo,
)
from processors.orders import apply, cancel_reason, completion, kill_reason
from processors.router.schedule import duration_ns, floor_lots, quantum, slice_times, split, vwap_slice_count
from processors.router.state import ALL, ZERO, ParentOrder, RouterState
from processors.router.tca import completed
from processors.router.venues import arrival_mid, candidates, rank_venues

ROLE_CHILD = "child"                    # child_id = derived_id(order_id, ROLE_CHILD, sequence)
ROLE_CHILD_ORDER = "router-child-order"
ROLE_CHILD_CANCEL = "router-child-cancel"
ROLE_COMPLETED = "parent-completed"
ROLE_SCHEDULED = "parent-scheduled"
# The shape of this core's state: bump it when the state changes shape, so an older snapshot is
# rebuilt from the log instead of restored (processors.snapshots).
STATE_VERSION = 2  # 2: a parent is the shared order model (processors.orders)
# Parents and their children, the kill switch, its timer, and the market it schedules against.
SUBSCRIPTIONS = ("sq.ord.intent.>", "sq.ord.cancel.>", "sq.risk.decision.>", "sq.exec.child.>", "sq.exec.report.>",
                 "sq.ctl.killswitch.>", "sq.ctl.timer.>", "sq.md.summary.>", "sq.md.top.>", "sq.md.bar.>")


def event_time(event: object) -> int:
    """The time an event says it is (0 for events that do not move the router's clock).

    Venue reports do not move it: their time is the venue's (a simulated venue's is the order's time
    plus its modelled latency, ahead of the broker's clock), and a child stamped from it would carry
    that lead into its own report, growing with each round trip (ARCHITECTURE.md principle 11).
    """
    match event:
        case TimerFired(due_ts=due):
            return due
        case ChildOrder() | ChildCancel() | ParentOrderScheduled() | ParentOrderCompleted() | ExecutionReport():
            return 0
        case Event(ts=ts):
            return ts
    return 0


# --- parents and schedules ------------------------------------------------------------------------

def schedule(state: RouterState, intent: OrderIntent, decision: RiskDecision, now: int) -> ParentOrderScheduled:
    """The router's plan for an accepted intent (its whole slice schedule), as the event that records it."""
    config = state.config
    start = max(state.now, decision.ts)
    quantity = intent.quantity
    lot = quantum(quantity, config.lot_size(intent.symbol))
    times, sizes, note = [start], [quantity], None
    rate: Decimal | None = None
    min_slice: Decimal | None = None
    max_slice: Decimal | None = None
    match intent.algo:
        case TwapAlgo(duration_s=seconds, slices=slices, randomize=randomize):
            times = slice_times(intent.id, start, duration_ns(seconds), slices, randomize)
            sizes = split(quantity, [1] * slices, lot)
        case VwapAlgo(duration_s=seconds, slices=requested):
            duration = duration_ns(seconds)
            slices = vwap_slice_count(duration, state.curve.bucket_ns, requested, config.vwap_max_slices)
            weights = state.curve.weights(intent.symbol, start, duration, slices)
            if weights is None:
                note = (f"no {config.vwap_bar_interval} bar volume for {intent.symbol} in the order's "
                        f"time of day: sliced evenly (TWAP)")
            times = [start + (i * duration) // slices for i in range(slices)]
            sizes = split(quantity, weights or [1] * slices, lot)
        case PovAlgo(rate=pov_rate):
            times, sizes, rate = [], [], Decimal(repr(pov_rate))
            min_slice, max_slice = intent.algo.min_slice, intent.algo.max_slice
    return ParentOrderScheduled(
        id=derived_id(intent.id, ROLE_SCHEDULED), ts=now, correlation_id=intent.id, causation_id=decision.id,
        order_id=intent.id, account=intent.account, client_order_id=intent.client_order_id, symbol=intent.symbol,
        venue=intent.venue, side=intent.side, quantity=quantity, limit_price=intent.limit_price,
        time_in_force=intent.time_in_force, algo=intent.algo_kind, lot=lot, start_ts=start,
        slice_times=times, slice_quantities=sizes, pov_rate=rate, min_slice=min_slice, max_slice=max_slice,
        arrival_price=arrival_mid(config, state.market, intent.symbol, intent.venue),
        sources=sorted(spec.source for spec in candidates(config, intent.symbol, intent.venue)), note=note,
        stopping=_stop_reason_at_start(state, intent.id, intent.account))


def parent_of(plan: ParentOrderScheduled) -> ParentOrder:
    """The parent order a recorded schedule describes (no choice is made here)."""
    cumulative: list[Decimal] = []
    for size in plan.slice_quantities:
        cumulative.append((cumulative[-1] if cumulative else ZERO) + size)
    return ParentOrder(
        order_id=plan.order_id, account=plan.account, client_order_id=plan.client_order_id, symbol=plan.symbol,
        side=plan.side, quantity=plan.quantity, limit_price=plan.limit_price, time_in_force=plan.time_in_force,
        ts=plan.ts, status="ACCEPTED", slices=len(plan.slice_times),
        venue=plan.venue, algo=plan.algo, lot=plan.lot, start_ts=plan.start_ts, arrival_price=plan.arrival_price,
        sources=frozenset(plan.sources), times=list(plan.slice_times), cumulative=cumulative,
        pov_rate=plan.pov_rate, min_slice=plan.min_slice, max_slice=plan.max_slice, note=plan.note,
        stopping=plan.stopping)


def _counts(parent: ParentOrder, trade: Trade | TradeSummary) -> bool:
    """Do these market trades count towards the parent's observed volume and interval VWAP?

    A summary counts only when its first trade is at or after the parent's start: one that straddles the
    start is left out whole (at most one cadence of volume), so POV never trades on volume before it began.
    """
    first = trade.ts if isinstance(trade, Trade) else trade.first_ts
    return trade.symbol == parent.symbol and trade.venue in parent.sources and first >= parent.start_ts


def _volume(trade: Trade | TradeSummary) -> tuple[Decimal, Decimal]:
    """Quantity and notional of a trade, or of the trades a summary holds."""
    return (trade.quantity, trade.price * trade.quantity) if isinstance(trade, Trade) \
        else (trade.volume, trade.quote_volume)


def _pov_quantity(parent: ParentOrder, extra_volume: Decimal) -> Decimal:
    """What a POV parent should send now: its lag behind rate × market volume, within its slice bounds."""
    if parent.working or parent.pov_rate is None:
        return ZERO
    remaining = parent.quantity - parent.filled
    need = min(parent.quantity, parent.pov_rate * (parent.market_volume + extra_volume)) - parent.filled
    if need <= 0:
        return ZERO
    quantity = remaining if need >= remaining else floor_lots(need, parent.lot)
    if parent.max_slice is not None and quantity > parent.max_slice:
        quantity = floor_lots(parent.max_slice, parent.lot)
    threshold = min(parent.min_slice or parent.lot, remaining)
    return quantity if quantity >= threshold else ZERO


def _slice_due(parent: ParentOrder, now: int) -> tuple[Decimal, int]:
    """The quantity and index of the newest slice due at `now` and not yet acted on, or (0, -1)."""
    newest = parent.due_slices(now) - 1
    if newest < 0 or newest <= parent.last_slice:
        return ZERO, -1
    need = parent.cumulative[newest] - parent.committed
    if newest < len(parent.times) - 1:
        need = floor_lots(need, parent.lot)
    return (need, newest) if need > 0 else (ZERO, -1)


def _work(state: RouterState, parent: ParentOrder, now: int, cause: Event, out: list[Event],
          latest: BookTop | Trade | TradeSummary | None = None, extra_volume: Decimal = ZERO) -> None:
    """Append the child the parent should send at `now`, if any."""
    if parent.stopping is not None or state.is_killed(parent.account):
        return
    if parent.algo == "POV":
        quantity, index = _pov_quantity(parent, extra_volume), len(parent.children)
    else:
        quantity, index = _slice_due(parent, now)
    if quantity <= 0:
        return
    ranked = rank_venues(state.config, state.market, parent.symbol, parent.side,  # type: ignore[arg-type]
                         parent.limit_price, venue=parent.venue, latest=latest)
    if parent.algo == "MARKET":
        tif = parent.time_in_force if parent.time_in_force in ("IOC", "FOK") else "IOC"
    elif parent.algo == "LIMIT":
        tif = parent.time_in_force
    else:
        tif = state.config.slice_time_in_force if parent.limit_price is not None else "IOC"
    out.append(ChildOrder(
        id=derived_id(cause.id, ROLE_CHILD_ORDER, len(out)), ts=now, correlation_id=parent.order_id,
        causation_id=cause.id, order_id=parent.order_id,
        child_id=derived_id(parent.order_id, ROLE_CHILD, len(parent.children)), account=parent.account,
        venue=ranked[0].venue, symbol=parent.symbol, side=parent.side,  # type: ignore[arg-type]
        quantity=quantity, limit_price=parent.limit_price, time_in_force=tif,  # type: ignore[arg-type]
        slice_index=index))


def _complete(state: RouterState, parent: ParentOrder, cause: Event, now: int, out: list[Event]) -> None:
    """Append the parent's completion (with TCA) if it is finished."""
    found = completion(parent)
    if found is not None:
        status, reason = found
        out.append(completed(parent, status=status, reason=reason, cause=cause, end_ts=now,
                             event_id=derived_id(parent.order_id, ROLE_COMPLETED),
                             price_places=state.config.price_places, bps_places=state.config.bps_places))


def _stop(state: RouterState, parent: ParentOrder, reason: str, cause: Event, now: int, out: list[Event]) -> None:
    """Cancel every working child and stop scheduling; complete at once if nothing is working."""
    for child in parent.working:
        if child.cancel_sent:
            continue
        out.append(ChildCancel(id=derived_id(cause.id, ROLE_CHILD_CANCEL, len(out)), ts=now,
                               correlation_id=parent.order_id, causation_id=cause.id, order_id=parent.order_id,
                               child_id=child.child_id, account=parent.account, venue=child.venue, reason=reason))
    after = parent.clone()
    after.stopping = reason
    _complete(state, after, cause, now, out)


# --- decide ---------------------------------------------------------------------------------------

def _stop_reason_at_start(state: RouterState, order_id: str, account: str) -> str | None:
    if state.is_killed(account):
        return f"kill switch engaged for {account}"
    return state.early_cancels.get(order_id)


def _start(state: RouterState, intent: OrderIntent, decision: RiskDecision, cause: Event) -> list[Event]:
    now = max(state.now, decision.ts, event_time(cause))
    plan = schedule(state, intent, decision, now)
    parent = parent_of(plan)
    # The children are numbered among themselves (not after the schedule) so their ids stay what
    # they were before the schedule was recorded: a restart over an older log finds them published.
    out: list[Event] = []
    if parent.stopping is not None:
        _complete(state, parent, cause, now, out)
    else:
        _work(state, parent, now, cause, out)
    return [plan, *out]


def _stops(state: RouterState, event: CancelIntent | KillSwitchEngaged) -> list[tuple[ParentOrder, str]]:
    """The working parents a cancel intent or the kill switch stops, each with why: one rule for decide and evolve."""
    match event:
        case CancelIntent(account=account):
            parent = state.parents.get(state.resolve(account, event.order_id, event.client_order_id) or "")
            return [(parent, cancel_reason(event))] if parent is not None and parent.account == account else []
        case KillSwitchEngaged(account=account):
            reason = kill_reason(event)
            return [(parent, reason) for parent in state.parents.values()
                    if account is None or parent.account == account]
    return []


def decide(state: RouterState, event: object) -> list[Event]:
    """The events `event` causes, given the state before it. Never mutates `state`."""
    out: list[Event] = []
    match event:
        case OrderIntent(id=order_id):
            if order_id not in state.parents and order_id not in state.closed and order_id in state.decisions:
                return _start(state, event, state.decisions[order_id], event)
        case RiskDecision(order_id=order_id, accepted=True):
            intent = state.intents.get(order_id)
            if intent is not None and order_id not in state.parents and order_id not in state.closed:
                return _start(state, intent, event, event)
        case ExecutionReport(child_id=child_id):
            parent = state.parents.get(state.child_parent.get(child_id, ""))
            if parent is not None:
                after = parent.clone()
                if after.apply_report(event):
                    _complete(state, after, event, max(state.now, event.ts), out)
        case CancelIntent() | KillSwitchEngaged():
            now = max(state.now, event.ts)
            for parent, reason in _stops(state, event):
                if parent.stopping is None:
                    _stop(state, parent, reason, event, now, out)
        case TimerFired() | Trade() | TradeSummary() | BookTop() | Bar():
            now = max(state.now, event_time(event))
            latest = event if isinstance(event, Trade | TradeSummary | BookTop) else None
            for parent in state.parents.values():
                extra = _volume(event)[0] if isinstance(event, Trade | TradeSummary) and _counts(parent, event) else ZERO
                _work(state, parent, now, event, out, latest, extra)
    return out


# --- evolve ---------------------------------------------------------------------------------------

def _create(state: RouterState, plan: ParentOrderScheduled) -> None:
    if plan.order_id in state.parents or plan.order_id in state.closed:
        return                                   # a copy of a schedule already applied
    parent = parent_of(plan)
    state.intents.pop(plan.order_id, None)
    state.decisions.pop(plan.order_id, None)
    state.early_cancels.pop(plan.order_id, None)
    state.parents[parent.order_id] = parent
    _close_if_done(state, parent)


def _close(state: RouterState, order_id: str) -> None:
    parent = state.parents.pop(order_id, None)
    state.closed.add(order_id, state.now)
    intent = state.intents.pop(order_id, None)
    state.decisions.pop(order_id, None)
    state.early_cancels.pop(order_id, None)
    opened = parent or intent
    if opened is not None:
        client = (opened.account, opened.client_order_id)
        if state.by_client.get(client) == order_id:
            del state.by_client[client]
    if parent is not None:
        for child_id in parent.children:
            state.child_parent.pop(child_id, None)


def _close_if_done(state: RouterState, parent: ParentOrder) -> None:
    # The same rule decide uses to emit ParentOrderCompleted, so a rebuild without that event agrees.
    if completion(parent) is not None:
        _close(state, parent.order_id)


def _on_child(state: RouterState, child: ChildOrder) -> None:
    parent = state.parents.get(child.order_id)
    if parent is not None and child.child_id not in parent.children:
        apply(parent, child)
        state.child_parent[child.child_id] = parent.order_id


def _stop_all(state: RouterState, event: CancelIntent | KillSwitchEngaged) -> None:
    for parent, _ in _stops(state, event):
        apply(parent, event)
        _close_if_done(state, parent)


def evolve(state: RouterState, event: object) -> RouterState:
    """Apply an event to the state (in place) and return it."""
    match event:
        case OrderIntent(id=order_id):
            if order_id not in state.parents and order_id not in state.closed:
                state.intents[order_id] = event
                client = (event.account, event.client_order_id)
                if state.by_client.get(client) not in state.parents:      # a working order keeps its id
                    state.by_client[client] = order_id
        case RiskDecision(order_id=order_id):
            if order_id in state.parents or order_id in state.closed:
                pass
            elif not event.accepted:
                _close(state, order_id)
            else:
                state.decisions[order_id] = event
        case ParentOrderScheduled():
            _create(state, event)
        case ChildOrder():
            _on_child(state, event)
        case ChildCancel(order_id=order_id):
            parent = state.parents.get(order_id)
            if parent is not None:
                apply(parent, event)
        case ExecutionReport(child_id=child_id):
            parent = state.parents.get(state.child_parent.get(child_id, ""))
            if parent is not None and parent.apply_report(event):
                _close_if_done(state, parent)
        case ParentOrderCompleted(order_id=order_id):
            _close(state, order_id)
        case CancelIntent(account=account):
            target = state.resolve(account, event.order_id, event.client_order_id)
            if (pending := state.intents.get(target or "")) is not None and pending.account == account:
                state.early_cancels.setdefault(pending.id, cancel_reason(event))   # cancelled while risk decides
            _stop_all(state, event)
        case KillSwitchEngaged(account=account):
            state.killed.add(account or ALL)
            _stop_all(state, event)
        case KillSwitchReleased(account=account):
            if account is None:
                state.killed.clear()
            else:
                state.killed.discard(account)
        case Trade() | TradeSummary():
            state.market.apply(event)
            for parent in state.parents.values():
                if _counts(parent, event):
                    parent.add_trade(*_volume(event))
        case BookTop():
            state.market.apply(event)
        case Bar(interval=interval):
            if interval == state.config.vwap_bar_interval:
                state.curve.add(event)
    state.now = max(state.now, event_time(event))
    return state


__all__ = ["ROLE_CHILD", "decide", "event_time", "evolve", "parent_of", "schedule"]
