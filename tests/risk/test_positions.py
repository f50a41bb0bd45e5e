"""Position keeping: exact average cost, realized and unrealized P&L, flips, open orders, redelivery."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.positions import Book, Position, apply_fill, evolve
from tests.risk.factories import D, child, intent, report

FLAT = Position(account="ACC1", symbol="BTCUSDT")

quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(1000), places=3)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100_000), places=2)
fees = st.decimals(min_value=Decimal(0), max_value=Decimal(10), places=4)
fills = st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), quantities, prices, fees), min_size=1, max_size=25)


def apply_all(fill_list: list[tuple[str, Decimal, Decimal, Decimal]]) -> Position:
    position = FLAT
    for side, quantity, price, fee in fill_list:
        position = apply_fill(position, side, quantity, price, fee)
    return position


def test_fill_when_buying_from_flat_then_long_at_fill_price() -> None:
    position = apply_fill(FLAT, "BUY", D("2"), D("100"), D("0.5"))
    assert (position.quantity, position.avg_price, position.realized_pnl, position.fees) == (2, 100, 0, D("0.5"))


def test_fill_when_adding_then_average_cost_is_weighted() -> None:
    position = apply_fill(apply_fill(FLAT, "BUY", D("1"), D("100")), "BUY", D("3"), D("104"))
    assert position.avg_price == D("103")
    assert position.cost == D("412")


def test_fill_when_partly_closing_long_then_realizes_against_average_cost() -> None:
    position = apply_fill(apply_fill(FLAT, "BUY", D("4"), D("100")), "SELL", D("1"), D("110"))
    assert position.quantity == 3
    assert position.realized_pnl == D("10")
    assert position.avg_price == D("100")


def test_fill_when_selling_through_zero_then_flips_short_at_fill_price() -> None:
    position = apply_fill(apply_fill(FLAT, "BUY", D("2"), D("100")), "SELL", D("5"), D("90"))
    assert position.quantity == -3
    assert position.realized_pnl == D("-20")
    assert position.avg_price == D("90")
    assert position.unrealized_pnl(D("80")) == D("30")


def test_fill_when_covering_short_below_entry_then_profit() -> None:
    position = apply_fill(apply_fill(FLAT, "SELL", D("2"), D("100")), "BUY", D("2"), D("95"))
    assert (position.quantity, position.cost, position.realized_pnl) == (0, 0, D("10"))


def test_fill_when_closing_a_third_then_released_cost_rounds_but_totals_stay_exact() -> None:
    position = apply_fill(apply_fill(FLAT, "BUY", D("1"), D("10")), "BUY", D("2"), D("10.01"))
    position = apply_fill(position, "SELL", D("1"), D("11"))
    # 30.02 / 3 is 10.00666..., released at 12 places; the rest stays in the cost basis exactly.
    assert position.realized_pnl == D("0.993333333333")
    assert position.cost == D("20.013333333333")
    assert position.realized_pnl + position.unrealized_pnl(D("11")) == position.cash + position.quantity * D("11")


@settings(max_examples=200, deadline=None)
@given(fills, prices)
def test_pnl_when_any_fills_then_realized_plus_unrealized_equals_cash_flow_pnl(fill_list, mark) -> None:
    position = apply_all(fill_list)
    cash_flow_pnl = position.cash + position.fees + position.quantity * mark
    assert position.realized_pnl + position.unrealized_pnl(mark) == cash_flow_pnl
    assert position.net_pnl(mark) == position.cash + position.quantity * mark


@settings(max_examples=200, deadline=None)
@given(quantities, prices, fees, fees, st.sampled_from(["BUY", "SELL"]))
def test_pnl_when_round_trip_at_same_price_then_realizes_zero_minus_fees(quantity, price, fee1, fee2, side) -> None:
    other = "SELL" if side == "BUY" else "BUY"
    position = apply_fill(apply_fill(FLAT, side, quantity, price, fee1), other, quantity, price, fee2)
    assert position.quantity == 0 and position.cost == 0
    assert position.realized_pnl == 0
    assert position.realized_pnl - position.fees == -(fee1 + fee2)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.just("BUY"), quantities, prices, fees), min_size=1, max_size=15), st.randoms())
def test_pnl_when_same_side_fills_reordered_then_position_and_cost_unchanged(fill_list, rnd) -> None:
    shuffled = list(fill_list)
    rnd.shuffle(shuffled)
    a, b = apply_all(fill_list), apply_all(shuffled)
    assert (a.quantity, a.cost, a.fees, a.realized_pnl) == (b.quantity, b.cost, b.fees, b.realized_pnl)


@settings(max_examples=150, deadline=None)
@given(fills, prices, st.randoms())
def test_pnl_when_any_fills_reordered_then_quantity_and_total_pnl_at_mark_unchanged(fill_list, mark, rnd) -> None:
    shuffled = list(fill_list)
    rnd.shuffle(shuffled)
    a, b = apply_all(fill_list), apply_all(shuffled)
    assert a.quantity == b.quantity
    assert a.net_pnl(mark) == b.net_pnl(mark)


@settings(max_examples=150, deadline=None)
@given(fills)
def test_position_when_any_fills_then_cost_sign_follows_quantity(fill_list) -> None:
    position = apply_all(fill_list)
    if position.quantity == 0:
        assert position.cost == 0
    else:
        assert (position.cost > 0) == (position.quantity > 0)


# --- the book: open orders, working children, redelivery --------------------------------------

def accepted(book: Book, order):
    from events import RiskDecision
    evolve(book, order)
    evolve(book, RiskDecision(id="d-" + order.id, ts=order.ts, order_id=order.id, account=order.account,
                              symbol=order.symbol, accepted=True))


def test_book_when_intent_accepted_then_open_order_and_open_quantity_counted() -> None:
    book = Book()
    order = intent(quantity="2")
    accepted(book, order)
    assert book.open_orders("ACC1") == 1
    assert book.open_buy[("ACC1", "BTCUSDT")] == 2


def test_book_when_child_partly_then_fully_filled_then_position_and_parent_closed() -> None:
    book = Book()
    order = intent(quantity="2", limit_price="100")
    accepted(book, order)
    sent = child(order)
    evolve(book, sent)
    evolve(book, report(sent, "PARTIAL", "0.5", "99", cum="0.5", fee="0.01"))
    assert book.open_buy[("ACC1", "BTCUSDT")] == D("1.5")
    assert book.working_children_of("ACC1")[0].cum_quantity == D("0.5")
    evolve(book, report(sent, "FILLED", "1.5", "100", cum="2", fee="0.03"))
    position = book.position("ACC1", "BTCUSDT")
    assert position.quantity == 2 and position.fees == D("0.04") and position.cost == D("199.5")
    assert book.open_orders("ACC1") == 0 and not book.children and ("ACC1", "BTCUSDT") not in book.open_buy


def test_book_when_report_redelivered_then_fill_applied_once() -> None:
    book = Book()
    order = intent(quantity="2")
    accepted(book, order)
    sent = child(order)
    evolve(book, sent)
    partial = report(sent, "PARTIAL", "1", "100", cum="1")
    done = report(sent, "FILLED", "1", "100", cum="2")
    for event in (partial, partial, done, partial, done):
        evolve(book, event)
    assert book.position("ACC1", "BTCUSDT").quantity == 2


def test_book_when_single_child_cancelled_then_parent_closed() -> None:
    book = Book()
    order = intent(quantity="2")
    accepted(book, order)
    sent = child(order)
    evolve(book, sent)
    evolve(book, report(sent, "CANCELLED", cum="0"))
    assert book.open_orders("ACC1") == 0


def test_book_when_twap_slice_cancelled_then_parent_stays_open() -> None:
    from events import TwapAlgo
    book = Book()
    order = intent(quantity="2", algo=TwapAlgo(duration_s=60, slices=2))
    accepted(book, order)
    sent = child(order, quantity="1")
    evolve(book, sent)
    evolve(book, report(sent, "CANCELLED", cum="0"))
    assert book.open_orders("ACC1") == 1


def test_book_when_twap_schedule_ran_out_then_order_no_longer_open() -> None:
    # The shared rule (processors.orders): with the last slice done and nothing working, the order has
    # expired. The book learns the slice count from the router's recorded schedule.
    from events import ParentOrderScheduled, TwapAlgo
    book = Book()
    order = intent(quantity="2", algo=TwapAlgo(duration_s=60, slices=2))
    accepted(book, order)
    evolve(book, ParentOrderScheduled(id="s-" + order.id, ts=order.ts, order_id=order.id, account="ACC1",
                                      client_order_id=order.client_order_id, symbol=order.symbol, side="BUY",
                                      quantity=D(2), algo="TWAP", lot=D("0.001"), start_ts=order.ts,
                                      slice_times=[order.ts, order.ts + 30], slice_quantities=[D(1), D(1)]))
    first, last = child(order, quantity="1"), child(order, quantity="1", index=1)
    evolve(book, first)
    evolve(book, report(first, "FILLED", "1", "100", cum="1"))
    evolve(book, last)
    assert book.open_orders("ACC1") == 1 and book.open_buy[("ACC1", "BTCUSDT")] == 1
    evolve(book, report(last, "CANCELLED", cum="0"))
    assert book.open_orders("ACC1") == 0 and not book.open_buy and not book.children


def test_book_when_router_completes_an_order_then_no_longer_open() -> None:
    from events import ParentOrderCompleted, TwapAlgo
    book = Book()
    order = intent(quantity="2", algo=TwapAlgo(duration_s=60, slices=2))
    accepted(book, order)
    evolve(book, ParentOrderCompleted(id="p-" + order.id, ts=order.ts, order_id=order.id, account="ACC1",
                                      client_order_id=order.client_order_id, symbol=order.symbol, side="BUY",
                                      algo="TWAP", status="EXPIRED", quantity=D(2), filled_quantity=D(0),
                                      children=0, start_ts=order.ts, end_ts=order.ts))
    assert book.open_orders("ACC1") == 0 and not book.open_buy


def test_book_when_cancel_intent_for_client_order_id_then_parent_closed() -> None:
    from events import CancelIntent
    book = Book()
    order = intent(quantity="2", client_order_id="my-1")
    accepted(book, order)
    evolve(book, CancelIntent(id="c1", ts=order.ts, account="ACC1", client_order_id="my-1"))
    assert book.open_orders("ACC1") == 0 and not book.open_buy


def test_thousands_of_random_partial_closes_keep_the_cost_basis_bounded_and_exact() -> None:
    """Regression (found by the soak): an exact release quotient with many digits grew the cost past 80 digits."""
    import random

    rng = random.Random(7)
    position = Position(account="A", symbol="S")
    cash = D(0)
    for _ in range(3_000):
        side, quantity = rng.choice(["BUY", "SELL"]), D(rng.randint(1, 5))
        price = D("100.00") + D(rng.randint(-50, 50)) / 100
        position = apply_fill(position, side, quantity, price, D("0.01"))
        cash += (-quantity if side == "BUY" else quantity) * price
    mark = D("100.25")
    assert position.realized_pnl + position.unrealized_pnl(mark) == cash + position.quantity * mark
    assert -position.cost.as_tuple().exponent <= 24
