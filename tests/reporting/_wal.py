"""A hand-written trading history in a real WAL: two orders, two venues, a kill switch, sealed segments."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from events.codec import encode
from events.control import KillSwitchEngaged
from events.market import Trade
from events.subjects import STREAM_MD, STREAM_TRADING, subject_for
from events.trading import (
    CancelIntent,
    ChildCancel,
    ChildOrder,
    ExecutionReport,
    OrderIntent,
    ParentOrderCompleted,
    RiskDecision,
    TwapAlgo,
)
from processors.aggregator.tape import summarise
from store import WalWriter

DAY = 86_400 * 10**9
T0 = 19_700 * DAY + 3_600 * 10**9  # 2023-12-09T01:00Z
DATE = "2023-12-09"


def record(directory: Path, events: list, *, segment_size: int = 1 << 20) -> None:
    """Append events to one stream's WAL as the recorder would (payload, broker time = event time, subject, type)."""
    with WalWriter.open(directory, contiguous=True, segment_size=segment_size) as writer:
        for event in events:
            writer.append(encode(event), ts=event.ts, subject=subject_for(event), type=type(event).__name__)


def _report(n: int, order: str, child: str, venue: str, side: str, qty: str, price: str, fee: str, cum: str,
            status: str = "FILLED", account: str = "ACC1") -> ExecutionReport:
    return ExecutionReport(id=f"r{n}", ts=T0 + n, order_id=order, child_id=child, account=account, venue=venue,
                           symbol="XYZ", side=side, status=status, last_quantity=D(qty), last_price=D(price),
                           cum_quantity=D(cum), fee=D(fee), liquidity="TAKER", causation_id=child)


def trading_events() -> list:
    """o1: ACC1 TWAP BUY 20, 10 filled at SIM_A @10.01 and 10 at SIM_B @10.03. o2: ACC2 SELL 5, cancelled by kill."""
    o1 = OrderIntent(id="o1", ts=T0, account="ACC1", client_order_id="c-1", symbol="XYZ", side="BUY",
                     quantity=D(20), limit_price=D("10.5"), algo=TwapAlgo(duration_s=1, slices=2))
    o2 = OrderIntent(id="o2", ts=T0 + 1, account="ACC2", client_order_id="c-2", symbol="XYZ", side="SELL",
                     quantity=D(5), limit_price=D("9"))
    kill = KillSwitchEngaged(id="k1", ts=T0 + 40, account="ACC2", actor="rita", reason="operator")
    return [
        o1, o2,
        RiskDecision(id="d1", ts=T0 + 2, order_id="o1", account="ACC1", symbol="XYZ", accepted=True, checks_run=12,
                     causation_id="o1"),
        RiskDecision(id="d2", ts=T0 + 3, order_id="o2", account="ACC2", symbol="XYZ", accepted=True, checks_run=12,
                     failures=[], causation_id="o2"),
        ChildOrder(id="ch1", ts=T0 + 4, order_id="o1", child_id="ch1", account="ACC1", venue="SIM_A", symbol="XYZ",
                   side="BUY", quantity=D(10), limit_price=D("10.5"), causation_id="d1"),
        ChildOrder(id="ch3", ts=T0 + 5, order_id="o2", child_id="ch3", account="ACC2", venue="SIM_A", symbol="XYZ",
                   side="SELL", quantity=D(5), limit_price=D(9), causation_id="d2"),
        _report(10, "o1", "ch1", "SIM_A", "BUY", "10", "10.01", "0.1001", "10"),
        ChildOrder(id="ch2", ts=T0 + 20, order_id="o1", child_id="ch2", account="ACC1", venue="SIM_B", symbol="XYZ",
                   side="BUY", quantity=D(10), limit_price=D("10.5"), slice_index=1, causation_id="d1"),
        _report(30, "o1", "ch2", "SIM_B", "BUY", "10", "10.03", "0.25075", "10"),
        ParentOrderCompleted(id="t1", ts=T0 + 35, order_id="o1", account="ACC1", client_order_id="c-1", symbol="XYZ",
                             side="BUY", algo="TWAP", status="FILLED", quantity=D(20), filled_quantity=D(20),
                             children=2, start_ts=T0 + 2, end_ts=T0 + 35, arrival_price=D(10),
                             average_price=D("10.02"), fees=D("0.35085"), shortfall_bps=D(20),
                             interval_vwap=D("10.01"), vwap_slippage_bps=D("9.99000999000999"), causation_id="r30"),
        kill,
        ChildCancel(id="cc3", ts=T0 + 41, order_id="o2", child_id="ch3", account="ACC2", venue="SIM_A",
                    reason="kill switch", causation_id="k1"),
        CancelIntent(id="x2", ts=T0 + 42, account="ACC2", client_order_id="c-2", reason="belt and braces"),
        ExecutionReport(id="r43", ts=T0 + 43, order_id="o2", child_id="ch3", account="ACC2", venue="SIM_A",
                        symbol="XYZ", side="SELL", status="CANCELLED", causation_id="cc3"),
        ParentOrderCompleted(id="t2", ts=T0 + 44, order_id="o2", account="ACC2", client_order_id="c-2", symbol="XYZ",
                             side="SELL", algo="LIMIT", status="CANCELLED", quantity=D(5), filled_quantity=D(0),
                             children=1, start_ts=T0 + 3, end_ts=T0 + 44, reason="kill switch", causation_id="r43"),
    ]


def write_history(data_dir: Path, *, segment_size: int = 1 << 20) -> None:
    """The trading history plus a market trade marking XYZ at 10.10 (for unrealized P&L), and its summary from
    the aggregator (what the projections mark from)."""
    record(data_dir / "wal" / STREAM_TRADING.name, trading_events(), segment_size=segment_size)
    mark = Trade(id="m1", ts=T0 + 50, venue="BINANCE", symbol="XYZ", price=D("10.10"), quantity=D(1))
    record(data_dir / "wal" / STREAM_MD.name, [mark, summarise(mark)])


__all__ = ["DATE", "DAY", "T0", "record", "trading_events", "write_history"]
