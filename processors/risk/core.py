"""The risk manager's pure core: `decide(state, event) -> [events]` and `evolve(state, event) -> state`.

No I/O and no clock: time is the `ts` of the event being handled. Output ids are derived from the
input id, so a redelivered input yields the same outputs (deduplicated by JetStream), and an
intent already decided is not decided again. The runner folds it with `processors.fold.step`:
decide on the state before the event, then evolve by the event and by each output (the outputs come
back from the bus later; applying them twice changes nothing).

Inputs and outputs:
- OrderIntent → RiskDecision naming every failed check;
- TradeSummary (the aggregator's conflated trades; a single Trade is handled alike) / BookTop →
  reference prices; a move over `breaker_move_bps` within `breaker_window_s`, between a summary's
  extremes and the window's → CircuitBreakerTripped(price_move); a mark that takes an account's day loss over
  `max_daily_loss` → TradingStateChanged(REDUCING);
- ExecutionReport → positions, open orders, working children; `error_burst_count` venue rejects
  of a symbol within `error_burst_window_s` → CircuitBreakerTripped(error_burst); a fill that takes
  the day loss over the limit → TradingStateChanged(REDUCING);
- KillSwitchEngaged → a ChildCancel per working child it covers;
- LimitsChanged → new limits, or a DeadLetter naming every bad field;
- ChildOrder, CancelIntent, RiskDecision, the control events → state only.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from decimal import Decimal

from events._base import Event
from events.audit import DeadLetter
from events.codec import encode
from events.control import (
    CircuitBreakerReset,
    CircuitBreakerTripped,
    KillSwitchEngaged,
    KillSwitchReleased,
    LimitsChanged,
    TradingStateChanged,
)
from events.ids import derived_id
from events.market import BookTop, Trade, TradeSummary
from events.subjects import subject_for
from events.trading import (
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    ParentOrderScheduled,
    RiskDecision,
)
from processors.positions import apply_fill
from processors.positions.book import evolve as evolve_book
from processors.risk.checks import Ctx, _f, _seconds, enabled_checks
from processors.risk.config import EffectiveLimits, InvalidLimits, apply_change
from processors.risk.state import DAY_NS, CheckFn, Halt, RiskState

ROLE_DECISION = "risk-decision"
ROLE_BREAKER = "circuit-breaker"
ROLE_DAILY_LOSS = "daily-loss"
ROLE_CHILD_CANCEL = "child-cancel"
ROLE_DEAD_LETTER = "dead-letter"
# The shape of this core's state: bump it when the state changes shape, so an older snapshot is
# rebuilt from the log instead of restored (processors.snapshots).
STATE_VERSION = 5  # 5: holders by symbol (RiskState.holders); 4: client order ids in compact slices
# Everything on the order path, and the trade summaries and book tops that price it (collars, marks): not
# every trade, so a flood on one symbol costs risk at most one summary per cadence.
# Not the router's timers (sq.ctl.timer, 20 a second) nor the portfolio's sq.pf events: risk reads neither.
SUBSCRIPTIONS = ("sq.ord.>", "sq.risk.>", "sq.exec.>", "sq.ctl.killswitch.>", "sq.ctl.breaker.>", "sq.ctl.state.>",
                 "sq.ctl.limits.>", "sq.md.summary.>", "sq.md.top.>")


# --- decide ---------------------------------------------------------------------------------------

def compiled_for(state: RiskState, account: str, symbol: str) -> tuple[EffectiveLimits, tuple[CheckFn, ...]]:
    """Effective limits and the checks they switch on (remembered until limits change)."""
    limits = state.limits_for(account, symbol)
    checks = state.checks.get((account, symbol))
    if checks is None:
        checks = state.checks[(account, symbol)] = enabled_checks(limits)
    return limits, checks


def decide_intent(state: RiskState, intent: OrderIntent) -> RiskDecision:
    """Run every enabled check on the intent and say which failed and why."""
    limits, checks = compiled_for(state, intent.account, intent.symbol)
    ctx = Ctx(state, intent, limits)
    failures = [failure for check in checks if (failure := check(ctx)) is not None]
    return RiskDecision(
        id=derived_id(intent.id, ROLE_DECISION), ts=intent.ts, correlation_id=intent.id, causation_id=intent.id,
        order_id=intent.id, account=intent.account, symbol=intent.symbol, accepted=not failures,
        failures=failures, checks_run=len(checks))


def _daily_loss(state: RiskState, account: str, pnl_after: Decimal, cause: Event) -> list[Event]:
    """TradingStateChanged(REDUCING) if the account's day loss after `cause` is over its limit."""
    own = state.accounts.get(account)
    if own is None or own.state != "ACTIVE":
        return []
    limit = state.limits_for(account, None).max_daily_loss
    if limit is None:
        return []
    # The first event of a new UTC day rolls the base in evolve; decide sees the base it will roll to.
    base = state.pnl(account) if cause.ts // DAY_NS > state.day else own.day_start_pnl
    loss = base - pnl_after
    if loss <= limit:
        return []
    return [TradingStateChanged(
        id=derived_id(cause.id, ROLE_DAILY_LOSS, _index(state, account)), ts=cause.ts,
        correlation_id=account, causation_id=cause.id, account=account, state="REDUCING",
        reason=f"daily loss {_f(loss)} over limit {_f(limit)} for {account}")]


def _index(state: RiskState, account: str) -> int:
    """A stable per-account output index (one cause may move several accounts)."""
    return sorted(state.accounts).index(account)


def _on_mark(state: RiskState, symbol: str, mark: Decimal | None, cause: Event) -> list[Event]:
    """Daily-loss checks for every account holding `symbol` when its reference moves to `mark`."""
    if mark is None:
        return []
    out: list[Event] = []
    for account in sorted(state.holders.get(symbol, ())):
        if state.accounts[account].state == "ACTIVE" and state.limits_for(account, None).max_daily_loss:
            out += _daily_loss(state, account, state.pnl(account, marks={symbol: mark}), cause)
    return out


def _trip(symbol: str, cause_name: str, detail: str, until: int | None, event: Event) -> CircuitBreakerTripped:
    return CircuitBreakerTripped(id=derived_id(event.id, ROLE_BREAKER), ts=event.ts, correlation_id=symbol,
                                 causation_id=event.id, symbol=symbol, cause=cause_name,  # type: ignore[arg-type]
                                 detail=detail, until_ts=until)


def _halted(state: RiskState, symbol: str, ts: int) -> bool:
    halt = state.halts.get(symbol)
    return halt is not None and halt.active(ts)


def _extremes(trade: Trade | TradeSummary) -> tuple[Decimal, Decimal]:
    """The lowest and highest price of a trade (its price) or of a summary of trades."""
    return (trade.price, trade.price) if isinstance(trade, Trade) else (trade.low, trade.high)


def decide_trade(state: RiskState, trade: Trade | TradeSummary) -> list[Event]:
    """Price-move breaker and marks for the daily loss."""
    out: list[Event] = []
    limits = state.limits_for(None, trade.symbol)
    market = state.markets.get(trade.symbol)
    move = limits.breaker_move
    if move is not None and market is not None and not _halted(state, trade.symbol, trade.ts):
        found = market.range_since(trade.ts - limits.breaker_window_ns)
        if found is not None:
            lowest, highest = _extremes(trade)
            low, high = min(found[0], lowest), max(found[1], highest)
            if highest > low * (1 + move) or lowest < high * (1 - move):
                price, base = (highest, low) if highest > low * (1 + move) else (lowest, high)
                bps = round(abs(price - base) / base * 10_000, 2)
                until = trade.ts + limits.breaker_cooldown_ns if limits.breaker_cooldown_ns else None
                out.append(_trip(trade.symbol, "price_move",
                                 f"price {_f(price)} moved {_f(bps)} bps from {_f(base)} within "
                                 f"{_seconds(limits.breaker_window_ns)} s, over limit {_f((move * 10_000).normalize())} bps "
                                 f"for {trade.symbol}", until, trade))
    if state.limits.collar_reference == "last_trade" or market is None or market.mid is None:
        out += _on_mark(state, trade.symbol, trade.price, trade)
    return out


def decide_book_top(state: RiskState, top: BookTop) -> list[Event]:
    """Marks for the daily loss when the mid is the reference."""
    if state.limits.collar_reference != "mid" or top.bid_price is None or top.ask_price is None:
        return []
    return _on_mark(state, top.symbol, (top.bid_price + top.ask_price) / 2, top)


def decide_report(state: RiskState, report: ExecutionReport) -> list[Event]:
    """Error-burst breaker on venue rejects; daily loss on fills."""
    if report.child_id in state.book.done_children:
        return []                                  # redelivered report of a finished child
    if report.status == "REJECTED":
        limits = state.limits_for(None, report.symbol)
        burst = limits.error_burst_count
        if burst is None or _halted(state, report.symbol, report.ts):
            return []
        horizon = report.ts - limits.error_burst_window_ns
        recent = sum(1 for t in state.rejects.get(report.symbol, ()) if t > horizon) + 1
        if recent < burst:
            return []
        until = report.ts + limits.breaker_cooldown_ns if limits.breaker_cooldown_ns else None
        return [_trip(report.symbol, "error_burst",
                      f"{recent} venue rejects within {_seconds(limits.error_burst_window_ns)} s reached limit "
                      f"{burst} for {report.symbol}", until, report)]
    child = state.book.children.get(report.child_id)
    cum = child.cum_quantity if child is not None else Decimal(0)
    if report.status in ("PARTIAL", "FILLED") and report.last_price is not None and report.cum_quantity > cum \
            and report.last_quantity > 0:
        after = apply_fill(state.book.position(report.account, report.symbol), report.side,
                           report.last_quantity, report.last_price, report.fee, report.ts)
        return _daily_loss(state, report.account, state.pnl(report.account, replace=after), report)
    return []


def decide_kill(state: RiskState, kill: KillSwitchEngaged) -> list[Event]:
    """Cancel every working child the kill switch covers."""
    return [ChildCancel(id=derived_id(kill.id, ROLE_CHILD_CANCEL, index), ts=kill.ts,
                        correlation_id=child.order_id, causation_id=kill.id, order_id=child.order_id,
                        child_id=child.child_id, account=child.account, venue=child.venue,
                        reason=f"kill switch by {kill.actor}: {kill.reason}")
            for index, child in enumerate(state.book.working_children_of(kill.account))]


def decide_limits(state: RiskState, change: LimitsChanged) -> list[Event]:
    """A DeadLetter naming every bad field of a limits change (a good change only evolves state)."""
    try:
        apply_change(state.limits, change.account, change.symbol, change.limits)
    except InvalidLimits as exc:
        return [DeadLetter(id=derived_id(change.id, ROLE_DEAD_LETTER), ts=change.ts, causation_id=change.id,
                           correlation_id=change.id, source="risk", subject=subject_for(change),
                           reason="; ".join(exc.problems), payload=encode(change).decode())]
    return []


def decide(state: RiskState, event: object) -> list[Event]:
    """The events `event` causes, given the state before it. Never mutates `state`."""
    match event:
        case OrderIntent():
            if state.decided(event):
                return []                          # redelivered: decided once already
            return [decide_intent(state, event)]
        case Trade() | TradeSummary():
            return decide_trade(state, event)
        case BookTop():
            return decide_book_top(state, event)
        case ExecutionReport():
            return decide_report(state, event)
        case KillSwitchEngaged():
            return decide_kill(state, event)
        case LimitsChanged():
            return decide_limits(state, event)
    return []


# --- evolve ---------------------------------------------------------------------------------------

def _roll_day(state: RiskState, ts: int) -> None:
    day = ts // DAY_NS
    if day > state.day:
        if state.day >= 0:
            for account, own in state.accounts.items():
                own.day_start_pnl = state.pnl(account)
        state.day = day


def _on_decision(state: RiskState, decision: RiskDecision) -> None:
    intent = state.book.pending.pop(decision.order_id, None)
    if intent is None:
        return                                     # redelivered: the intent was decided already
    state.recent.add(intent.id, intent.ts)
    if decision.accepted:
        state.book.open_order(intent, decision)
    own = state.account(intent.account)
    own.remember(intent)
    if decision.accepted:
        insort(own.order_times, intent.ts)
        horizon = intent.ts - state.limits_for(intent.account, intent.symbol).order_window_ns
        del own.order_times[:bisect_right(own.order_times, horizon)]


def _on_report(state: RiskState, report: ExecutionReport) -> None:
    fresh = report.child_id not in state.book.done_children
    evolve_book(state.book, report)
    if not fresh:
        return
    if report.last_quantity > 0:
        state.traded(report.account, report.symbol)
    if report.status == "REJECTED":
        window = state.limits_for(None, report.symbol).error_burst_window_ns
        times = state.rejects.setdefault(report.symbol, deque())
        times.append(report.ts)
        while times and times[0] <= report.ts - window:
            times.popleft()


def evolve(state: RiskState, event: object) -> RiskState:
    """The state after `event` (updated in place and returned; see processors.risk.state)."""
    ts = getattr(event, "ts", 0)
    if ts:
        _roll_day(state, ts)
    match event:
        case OrderIntent():
            if not state.decided(event):
                state.book.pending[event.id] = event
        case RiskDecision():
            _on_decision(state, event)
        case ExecutionReport():
            _on_report(state, event)
        case ChildOrder() | CancelIntent() | ParentOrderScheduled() | ParentOrderCompleted():
            # The schedule and the router's completion end an order by the shared rule (processors.orders),
            # so an order whose schedule ran out stops counting as open, as it stops working.
            evolve_book(state.book, event)
        case Trade(symbol=symbol, price=price) | TradeSummary(symbol=symbol, price=price):
            market = state.market(symbol)
            market.set_last(price)
            limits = state.limits_for(None, symbol)
            if limits.breaker_move is not None:
                for extreme in _extremes(event):
                    market.add_trade(event.ts, extreme, limits.breaker_window_ns)
        case BookTop(symbol=symbol):
            market = state.market(symbol)
            market.set_top(event.bid_price, event.ask_price)
        case KillSwitchEngaged(account=account):
            if account is None:
                state.global_kill = True
            else:
                state.account(account).killed = True
            evolve_book(state.book, event)
        case KillSwitchReleased(account=account):
            if account is None:
                state.global_kill = False
            else:
                state.account(account).killed = False
        case CircuitBreakerTripped(symbol=symbol):
            state.halts[symbol] = Halt(event.cause, event.until_ts)
            state.market(symbol).reset_window()
            state.rejects.pop(symbol, None)
        case CircuitBreakerReset(symbol=symbol):
            state.halts.pop(symbol, None)
        case TradingStateChanged(account=account, state=new):
            if account is None:
                state.global_state = new
            else:
                state.account(account).state = new
        case LimitsChanged():
            try:
                state.limits = apply_change(state.limits, event.account, event.symbol, event.limits)
            except InvalidLimits:
                return state                       # refused; decide() dead-letters it with the reasons
            state.compiled.clear()
            state.checks.clear()
    return state
