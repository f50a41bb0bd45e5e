"""Each table keeps its own version: a market tick does not invalidate the orders table's cached answers."""

from __future__ import annotations

from decimal import Decimal as D

from events import OrderIntent, Trade, intent_id_for
from events.market import BookTop
from projections.state import ProjectionState, evolve
from projections.tables import TableCache
from store.follow import Envelope


def _fold(state: ProjectionState, event: object, seq: int) -> None:
    from events.subjects import stream_for_subject, subject_for

    subject = subject_for(event)  # type: ignore[arg-type]
    evolve(state, Envelope(event, stream_for_subject(subject).name, seq, subject, event.ts, live=True))  # type: ignore


def test_a_trade_or_a_top_leaves_the_orders_table_as_it_was_and_an_intent_does_not() -> None:
    state, cache = ProjectionState(), TableCache()
    intent = OrderIntent(id=intent_id_for("ACC1", "v-1"), ts=10, account="ACC1", client_order_id="v-1", symbol="XYZ",
                         side="BUY", quantity=D(1), limit_price=D(10))
    _fold(state, intent, 1)
    orders_at = cache.built_at(state, "orders")
    orders_table = cache.table(state, "orders")
    positions_at = cache.built_at(state, "positions")
    _fold(state, Trade(id=intent_id_for("m", "t"), ts=11, venue="BINANCE", symbol="XYZ", price=D(10),
                       quantity=D(1)), 2)
    _fold(state, BookTop(id=intent_id_for("m", "top"), ts=12, venue="BINANCE", symbol="XYZ", last_update_id=1,
                         bid_price=D(9), bid_size=D(1), ask_price=D(11), ask_size=D(1)), 3)
    assert cache.built_at(state, "orders") == orders_at and cache.table(state, "orders") is orders_table
    assert cache.built_at(state, "positions") != positions_at, "a trade moves the marks"
    assert cache.table(state, "book_tops").num_rows == 1
    _fold(state, OrderIntent(id=intent_id_for("ACC1", "v-2"), ts=13, account="ACC1", client_order_id="v-2",
                             symbol="XYZ", side="SELL", quantity=D(1), limit_price=D(10)), 4)
    assert cache.built_at(state, "orders") != orders_at and cache.table(state, "orders").num_rows == 2
