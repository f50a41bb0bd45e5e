"""Attribution: P&L by symbol and by strategy tag from intents and fills, with exact arithmetic."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

import pytest

from events.trading import ExecutionReport, OrderIntent
from processors.portfolio.attribution import UNTAGGED, Attribution, MissingMark

T0 = 1_700_000_000_000_000_000


def order(order_id: str, symbol: str, side: Literal["BUY", "SELL"], quantity: str, strategy: str | None) -> OrderIntent:
    """An intent for ACC1 tagged with `strategy`."""
    return OrderIntent(id=order_id, ts=T0, account="ACC1", client_order_id=order_id, symbol=symbol, side=side,
                       quantity=D(quantity), strategy=strategy)


def fill(intent: OrderIntent, quantity: str, price: str, fee: str = "0", cum: str | None = None) -> ExecutionReport:
    """A fill of `quantity` at `price` on the intent's single child."""
    return ExecutionReport(id=f"x-{intent.id}-{cum or quantity}", ts=T0, order_id=intent.id, child_id=f"c-{intent.id}",
                           account=intent.account, venue="SIM", symbol=intent.symbol, side=intent.side,
                           status="PARTIAL", last_quantity=D(quantity), last_price=D(price),
                           cum_quantity=D(cum or quantity), fee=D(fee))


def test_attribution_when_two_strategies_trade_one_symbol_then_net_pnl_sums_to_the_symbol():
    book = Attribution("ACC1")
    momentum = order("o1", "AAA", "BUY", "10", "momentum")
    meanrev = order("o2", "AAA", "SELL", "4", "meanrev")
    untagged = order("o3", "BBB", "BUY", "2", None)
    for event in (momentum, meanrev, untagged, fill(momentum, "10", "100", "1"), fill(meanrev, "4", "110", "0.5"),
                  fill(untagged, "2", "50")):
        book.evolve(event)
    marks = {"AAA": D("105"), "BBB": D("55")}
    by_symbol = {row.key: row for row in book.by_symbol_rows(marks)}
    # AAA: bought 10 @100, sold 4 @110 -> realized 40, 6 open at 105 -> unrealized 30, fees 1.5.
    assert (by_symbol["AAA"].realized_pnl, by_symbol["AAA"].unrealized_pnl, by_symbol["AAA"].net_pnl) == (
        D("40"), D("30"), D("68.5"))
    by_strategy = {row.key: row for row in book.by_strategy_rows(marks)}
    assert by_strategy["momentum"].net_pnl == D("49")          # 10 x (105 - 100) - 1
    assert by_strategy["meanrev"].net_pnl == D("19.5")         # short 4 @110 marked 105, - 0.5
    assert by_strategy[UNTAGGED].net_pnl == D("10")
    assert by_strategy["momentum"].net_pnl + by_strategy["meanrev"].net_pnl == by_symbol["AAA"].net_pnl
    assert sum(r.net_pnl for r in book.by_strategy_rows(marks)) == sum(r.net_pnl for r in book.by_symbol_rows(marks))
    assert [r.key for r in book.by_strategy_and_symbol_rows(marks)] == ["meanrev/AAA", "momentum/AAA", "untagged/BBB"]


def test_attribution_when_fill_redelivered_or_other_account_then_counted_once():
    book = Attribution("ACC1")
    intent = order("o1", "AAA", "BUY", "10", "s1")
    book.evolve(intent)
    book.evolve(fill(intent, "4", "100", cum="4"))
    book.evolve(fill(intent, "4", "100", cum="4"))
    book.evolve(fill(intent, "6", "101", cum="10"))
    other = order("o9", "AAA", "BUY", "1", "s1")
    book.evolve(OrderIntent(**{**{f: getattr(other, f) for f in other.__struct_fields__}, "account": "ACC2"}))
    assert book.by_symbol["AAA"].quantity == D("10") and book.by_symbol["AAA"].fills == 2
    with pytest.raises(MissingMark) as caught:
        book.by_symbol_rows({})
    assert caught.value.symbol == "AAA" and caught.value.quantity == D("10")
