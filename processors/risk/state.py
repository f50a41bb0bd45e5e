"""The risk core's state: limits in force, the book, market references and per-account risk bookkeeping.

State is owned by one core loop and updated in place by `core.evolve` (see processors.positions.book
for why); `decide` only reads it. Everything here is derived from events, so a replay of the same
events rebuilds the same state.
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Literal

from events.control import TradingState
from events.trading import CheckFailure, OrderIntent
from processors.positions import Book, Position
from processors.positions._position import ZERO
from processors.recent import Recent
from processors.risk.client_ids import ClientOrderIds, id_hash
from processors.risk.config import NS_PER_S, EffectiveLimits, LimitsFile, effective

DAY_NS = 86_400 * 1_000_000_000
_SEVERITY: dict[str, int] = {"ACTIVE": 0, "REDUCING": 1, "HALTED": 2}


class SymbolMarket:
    """Latest prices of a symbol (any venue) and the trade-price window the move breaker watches."""

    __slots__ = ("prefer", "last_trade", "bid", "ask", "mid", "ref", "window", "lows", "highs")

    def __init__(self, prefer: Literal["mid", "last_trade"] = "mid") -> None:
        self.prefer = prefer
        self.last_trade: Decimal | None = None
        self.bid: Decimal | None = None
        self.ask: Decimal | None = None
        self.mid: Decimal | None = None
        self.ref: Decimal | None = None           # the reference, kept current on every update
        # Monotonic deques of (ts, price) inside the breaker window: its low and high in O(1) per trade,
        # and memory bounded by the distinct price steps, not by how many trades the window holds.
        self.lows: deque[tuple[int, Decimal]] = deque()
        self.highs: deque[tuple[int, Decimal]] = deque()

    def set_top(self, bid: Decimal | None, ask: Decimal | None) -> None:
        """A new best bid and ask (either may be missing)."""
        self.bid, self.ask = bid, ask
        self.mid = None if bid is None or ask is None else (bid + ask) / 2
        self.ref = self.reference(self.prefer)

    def set_last(self, price: Decimal) -> None:
        """A new last trade price."""
        self.last_trade = price
        self.ref = self.reference(self.prefer)

    def reference(self, prefer: Literal["mid", "last_trade"]) -> Decimal | None:
        """The price to value and collar against: the preferred reference, else the other."""
        if prefer == "mid":
            return self.mid if self.mid is not None else self.last_trade
        return self.last_trade if self.last_trade is not None else self.mid

    def add_trade(self, ts: int, price: Decimal, window_ns: int) -> None:
        """Record a trade for the move breaker and drop those older than the window."""
        while self.lows and self.lows[-1][1] >= price:
            self.lows.pop()
        self.lows.append((ts, price))
        while self.highs and self.highs[-1][1] <= price:
            self.highs.pop()
        self.highs.append((ts, price))
        horizon = ts - window_ns
        for series in (self.lows, self.highs):
            while series and series[0][0] <= horizon:
                series.popleft()

    def range_since(self, horizon: int) -> tuple[Decimal, Decimal] | None:
        """Lowest and highest trade price after `horizon`, or None without trades there."""
        low = next((p for t, p in self.lows if t > horizon), None)
        high = next((p for t, p in self.highs if t > horizon), None)
        return None if low is None or high is None else (low, high)

    def reset_window(self) -> None:
        """Forget the move history (after a trip, so a cooled-down symbol does not trip on the old move)."""
        self.lows.clear()
        self.highs.clear()


class AccountRisk:
    """Per-account risk bookkeeping: trading state, kill switch, order rate, client order ids, day P&L base."""

    __slots__ = ("state", "killed", "order_times", "coids", "day_start_pnl", "symbols")

    def __init__(self, dedupe_ns: int, day_start_pnl: Decimal = ZERO) -> None:
        self.state: TradingState = "ACTIVE"
        self.killed = False
        self.order_times: list[int] = []          # ts of accepted intents, ascending
        # Client order id -> the intent decided with it (a 64-bit fingerprint of its id, and its ts), for at
        # least the dedupe window (a day by default): about 24 bytes an intent (processors.risk.client_ids).
        self.coids = ClientOrderIds(dedupe_ns)
        self.day_start_pnl = day_start_pnl        # P&L (realized - fees + unrealized) when the UTC day began
        self.symbols: set[str] = set()            # symbols the account has traded

    def coid_used_at(self, intent: OrderIntent) -> int | None:
        """When another intent used this intent's client order id, if within the dedupe window before it."""
        found = self.coids.get(intent.client_order_id)
        if found is None or self.decided(intent):
            return None
        used = found[1]
        return used if used > intent.ts - self.coids.window_ns else None

    def remember(self, intent: OrderIntent) -> None:
        """Record that `intent` was decided with its client order id (unless another intent holds the id)."""
        if self.coid_used_at(intent) is None:
            self.coids.set(intent.client_order_id, id_hash(intent.id), intent.ts)

    def decided(self, intent: OrderIntent) -> bool:
        """Whether this very intent holds its client order id: decided already, within the dedupe window."""
        found = self.coids.get(intent.client_order_id)
        return found is not None and found[0] == id_hash(intent.id)

    def orders_since(self, horizon: int) -> int:
        """Accepted intents with ts after `horizon`."""
        return len(self.order_times) - bisect_right(self.order_times, horizon)


class Halt:
    """A symbol halted by a circuit breaker, until `until_ts` (None: until reset)."""

    __slots__ = ("cause", "until_ts")

    def __init__(self, cause: str, until_ts: int | None) -> None:
        self.cause = cause
        self.until_ts = until_ts

    def active(self, ts: int) -> bool:
        """Whether the halt still holds at event time `ts`."""
        return self.until_ts is None or ts < self.until_ts


# A check is a function of the context built for one intent (see checks.py).
CheckFn = Callable[..., CheckFailure | None]


class RiskState:
    """Everything the risk core knows, rebuilt from events."""

    def __init__(self, limits: LimitsFile | None = None) -> None:
        self.limits = limits if limits is not None else LimitsFile()
        self.book = Book()
        self.markets: dict[str, SymbolMarket] = {}
        self.accounts: dict[str, AccountRisk] = {}
        # symbol -> accounts that have traded it: a mark moves the daily loss of these accounts only.
        self.holders: dict[str, set[str]] = {}
        self.global_state: TradingState = "ACTIVE"
        self.global_kill = False
        self.halts: dict[str, Halt] = {}
        self.rejects: dict[str, deque[int]] = {}       # symbol -> ts of venue rejects in the burst window
        # Intent ids decided recently (processors.recent): covers intents that do not hold their client
        # order id (refused as duplicates of another); the account's `coids` cover the rest for a day.
        self.recent: Recent[str, None] = Recent()
        self.day = -1
        self.dedupe_ns = int(self.limits.dedupe_window_s * NS_PER_S)
        # (account, symbol) -> effective limits, and the checks they switch on (the core fills that one,
        # from processors.risk.checks, which reads this state); both cleared whenever limits change.
        self.compiled: dict[tuple[str | None, str | None], EffectiveLimits] = {}
        self.checks: dict[tuple[str | None, str | None], tuple[CheckFn, ...]] = {}

    def copy(self) -> RiskState:
        """A deep snapshot (tests, what-if runs)."""
        return copy.deepcopy(self)

    def account(self, account: str) -> AccountRisk:
        """The account's bookkeeping, created on first sight with today's P&L base."""
        found = self.accounts.get(account)
        if found is None:
            found = self.accounts[account] = AccountRisk(self.dedupe_ns, self.pnl(account))
        return found

    def traded(self, account: str, symbol: str) -> None:
        """Record that `account` has traded `symbol` (its P&L now moves with the symbol's marks)."""
        self.account(account).symbols.add(symbol)
        self.holders.setdefault(symbol, set()).add(account)

    def decided(self, intent: OrderIntent) -> bool:
        """Whether `intent` was decided already: a redelivered copy, to be dropped."""
        own = self.accounts.get(intent.account)
        return intent.id in self.recent or (own is not None and own.decided(intent))

    def market(self, symbol: str) -> SymbolMarket:
        """The symbol's market references, created on first sight."""
        found = self.markets.get(symbol)
        if found is None:
            found = self.markets[symbol] = SymbolMarket(self.limits.collar_reference)
        return found

    def reference(self, symbol: str) -> Decimal | None:
        """Reference price of a symbol (mid or last trade, as configured)."""
        market = self.markets.get(symbol)
        return None if market is None else market.ref

    def limits_for(self, account: str | None, symbol: str | None) -> EffectiveLimits:
        """Effective limits (cached)."""
        found = self.compiled.get((account, symbol))
        if found is None:
            found = self.compiled[(account, symbol)] = effective(self.limits, account, symbol)
        return found

    def trading_state(self, account: str) -> TradingState:
        """The stricter of the system-wide and the account's trading state."""
        own = self.accounts.get(account)
        mine = own.state if own is not None else "ACTIVE"
        return mine if _SEVERITY[mine] >= _SEVERITY[self.global_state] else self.global_state

    def killed(self, account: str) -> bool:
        """Whether a global or per-account kill switch is engaged."""
        own = self.accounts.get(account)
        return self.global_kill or (own is not None and own.killed)

    def value(self, position: Position, mark: Decimal | None = None) -> Decimal:
        """Signed market value of a position at `mark` or its symbol's reference (at cost without one)."""
        if mark is None:
            mark = self.reference(position.symbol)
        return position.cost if mark is None else position.quantity * mark

    def pnl(self, account: str, replace: Position | None = None, marks: dict[str, Decimal] | None = None) -> Decimal:
        """Realized - fees + unrealized over the account's positions, optionally with one position or marks swapped."""
        total = ZERO
        own = self.accounts.get(account)
        if own is None or not own.symbols:
            if replace is None:
                return total
        symbols: set[str] | list[str] = own.symbols if own is not None else []
        if replace is not None and replace.symbol not in symbols:
            symbols = [*symbols, replace.symbol]
        for symbol in symbols:
            position = replace if replace is not None and replace.symbol == symbol else \
                self.book.position(account, symbol)
            mark = marks.get(symbol) if marks else None
            total += position.realized_pnl - position.fees + self.value(position, mark) - position.cost
        return total
