"""The one order model: its status machine and how it folds child orders and venue reports."""

from __future__ import annotations

import random
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    CancelIntent,
    ChildOrder,
    ExecutionReport,
    KillSwitchEngaged,
    MarketAlgo,
    OrderIntent,
    ParentOrderCompleted,
    ParentOrderScheduled,
    RiskDecision,
    TwapAlgo,
)
from processors.orders import TERMINAL, Order, apply, completion, order_of

T0 = 1_700_000_000_000_000_000
OID = "00000000-0000-7000-8000-000000000001"


def _intent(quantity: str = "10", algo: object = None) -> OrderIntent:
    return OrderIntent(id=OID, ts=T0, account="ACC1", client_order_id="c-1", symbol="XYZ", side="BUY",
                       quantity=D(quantity), algo=algo)  # type: ignore[arg-type]


def _accepted(quantity: str = "10", algo: object = None) -> Order:
    order = order_of(_intent(quantity, algo))
    return apply(order, RiskDecision(id="d-1", ts=T0, order_id=OID, account="ACC1", symbol="XYZ", accepted=True))


def _child(n: int, quantity: str, slice_index: int = 0) -> ChildOrder:
    return ChildOrder(id=f"co-{n}", ts=T0 + n, order_id=OID, child_id=f"ch-{n}", account="ACC1", venue="sim",
                      symbol="XYZ", side="BUY", quantity=D(quantity), slice_index=slice_index)


def _report(n: int, k: int, status: str, *, last: str = "0", cum: str = "0", price: str | None = "10",
            leaves: str = "0") -> ExecutionReport:
    return ExecutionReport(id=f"r-{n}-{k}", ts=T0 + 100 + k, order_id=OID, child_id=f"ch-{n}", account="ACC1",
                           venue="sim", symbol="XYZ", side="BUY", status=status,  # type: ignore[arg-type]
                           last_quantity=D(last), last_price=None if price is None else D(price),
                           cum_quantity=D(cum), leaves_quantity=D(leaves))


def test_order_when_accepted_then_child_sent_then_filled_then_moves_through_each_status() -> None:
    order = order_of(_intent("10", MarketAlgo()))
    assert order.status == "PENDING_RISK"
    order = _accepted("10", MarketAlgo())
    assert order.status == "ACCEPTED"
    apply(order, _child(0, "10"))
    assert order.status == "WORKING"
    apply(order, _report(0, 0, "PARTIAL", last="4", cum="4", leaves="6"))
    assert (order.status, order.filled, order.remaining) == ("PARTIALLY_FILLED", D(4), D(6))
    apply(order, _report(0, 1, "FILLED", last="6", cum="10", price="11"))
    assert (order.status, order.filled, order.avg_price) == ("FILLED", D(10), D("10.6"))


def test_order_when_single_slice_child_cancelled_with_rest_unfilled_then_expired() -> None:
    order = apply(_accepted("10"), _child(0, "10"))
    apply(order, _report(0, 0, "PARTIAL", last="3", cum="3"))
    apply(order, _report(0, 1, "CANCELLED", cum="3", price=None))
    assert order.status == "EXPIRED" and order.end_reason == "schedule ended with 7 unfilled"
    assert completion(order) == ("EXPIRED", order.end_reason)


def test_order_when_twap_slice_cancelled_before_the_last_slice_then_still_working() -> None:
    order = apply(_accepted("10", TwapAlgo(duration_s=10, slices=2)), _child(0, "5"))
    apply(order, _report(0, 0, "CANCELLED", price=None))
    assert order.status == "WORKING" and completion(order) is None


def test_order_when_cancelled_then_done_only_once_nothing_works() -> None:
    order = apply(_accepted("10"), _child(0, "10"))
    apply(order, CancelIntent(id="x-1", ts=T0 + 1, account="ACC1", order_id=OID, reason="user"))
    assert order.stopping == "cancel intent x-1: user" and order.status == "WORKING"
    apply(order, _report(0, 0, "CANCELLED", price=None))
    assert (order.status, order.end_reason) == ("CANCELLED", "cancel intent x-1: user")


def test_order_when_kill_switch_covers_another_account_then_unchanged() -> None:
    order = _accepted("10")
    apply(order, KillSwitchEngaged(id="k-1", ts=T0, account="ACC2", actor="ops", reason="drill"))
    assert order.stopping is None
    apply(order, KillSwitchEngaged(id="k-2", ts=T0, account=None, actor="ops", reason="drill"))
    assert order.status == "CANCELLED" and order.stopping == "kill switch by ops: drill"


def test_order_when_report_redelivered_or_late_then_counted_once() -> None:
    order = apply(_accepted("10"), _child(0, "10"))
    fill = _report(0, 0, "PARTIAL", last="4", cum="4")
    apply(order, fill)
    apply(order, fill)
    assert order.filled == D(4)
    apply(order, _report(0, 1, "CANCELLED", cum="4", price=None))
    apply(order, _report(0, 2, "FILLED", last="6", cum="10"))           # after the child was done
    assert order.filled == D(4) and order.children["ch-0"].status == "CANCELLED"


def test_order_when_router_completes_it_then_its_word_is_final() -> None:
    order = apply(_accepted("10", TwapAlgo(duration_s=10, slices=3)), _child(0, "3"))
    apply(order, ParentOrderCompleted(id="p-1", ts=T0 + 5, order_id=OID, account="ACC1", client_order_id="c-1",
                                      symbol="XYZ", side="BUY", algo="TWAP", status="EXPIRED", reason="gone",
                                      quantity=D(10), filled_quantity=D(0), children=1, start_ts=T0, end_ts=T0 + 5))
    assert (order.status, order.end_reason) == ("EXPIRED", "gone")


# --- properties ---------------------------------------------------------------------------------

_fills = st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=8)
_statuses = st.sampled_from(["ACK", "PARTIAL", "FILLED", "CANCELLED", "REJECTED"])
_events = st.lists(st.tuples(st.integers(0, 2), _statuses, st.integers(0, 6)), max_size=30)


def _fill_reports(child: int, sizes: list[int]) -> list[ExecutionReport]:
    out, cum = [], 0
    for k, size in enumerate(sizes):
        cum += size
        out.append(_report(child, k, "FILLED" if k == len(sizes) - 1 else "PARTIAL", last=str(size), cum=str(cum)))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(_fills, min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_fills_when_children_interleave_in_any_order_then_filled_is_the_same(children: list[list[int]],
                                                                             rnd: random.Random) -> None:
    total = sum(sum(sizes) for sizes in children)
    streams = [_fill_reports(n, sizes) for n, sizes in enumerate(children)]
    merged: list[ExecutionReport] = []
    while any(streams):                      # each child's own reports stay in order, as a venue sends them
        merged.append(rnd.choice([s for s in streams if s]).pop(0))
    order = _accepted(str(total))
    for n, sizes in enumerate(children):
        apply(order, _child(n, str(sum(sizes))))
    for report in merged:
        apply(order, report)
    assert order.filled == total and order.status == "FILLED"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), _events)
def test_any_reports_then_filled_stays_within_quantity_and_terminal_states_absorb(per_child: int,
                                                                                 events: list) -> None:
    # Three children split the order; a venue never fills a child past its own quantity.
    order = _accepted(str(3 * per_child), TwapAlgo(duration_s=10, slices=3))
    apply(order, ParentOrderScheduled(id="s-1", ts=T0, order_id=OID, account="ACC1", client_order_id="c-1",
                                      symbol="XYZ", side="BUY", quantity=order.quantity, algo="TWAP", lot=D(1),
                                      start_ts=T0, slice_times=[T0, T0 + 1, T0 + 2],
                                      slice_quantities=[D(per_child)] * 3))
    for n in range(3):
        apply(order, _child(n, str(per_child), slice_index=n))
    cums = [0, 0, 0]
    terminal: str | None = None
    for k, (child, status, size) in enumerate(events):
        cum = min(per_child, cums[child] + size) if status in ("PARTIAL", "FILLED") else cums[child]
        apply(order, _report(child, k, status, last=str(cum - cums[child]), cum=str(cum)))
        if not order.children[f"ch-{child}"].done or order.children[f"ch-{child}"].cum_quantity == cum:
            cums[child] = int(order.children[f"ch-{child}"].cum_quantity)
        if terminal is not None:
            assert order.status == terminal                  # absorbing
        elif order.status in TERMINAL:
            terminal = order.status
        assert order.filled == sum((c.cum_quantity for c in order.children.values()), D(0)) <= order.quantity
    if not order.working:                                    # every slice sent and done: the order ended
        assert order.status in TERMINAL
