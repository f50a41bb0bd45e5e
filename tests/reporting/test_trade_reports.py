"""The reporting core offline: one trade report per fill, with what a regulator asks for, decided purely."""

from __future__ import annotations

import pickle
from decimal import Decimal as D

from events import ExecutionReport, OrderIntent, ParentOrderCompleted, RiskDecision, TradeReported, derived_id
from events.subjects import subject_for
from events.trading import TwapAlgo
from processors.recent import REDELIVERY_WINDOW_NS
from processors.reporting.core import ReportingState, decide, evolve, is_fill
from processors.snapshots import state_digest
from tests.processors._recorded_run import recorded_run

TS = 1_700_000_000_123_456_789          # ns: the microsecond is 123456, the 789 ns are below a report's precision


def _intent() -> OrderIntent:
    return OrderIntent(id="o-1", ts=TS - 5_000, account="ACC1", client_order_id="c-1", symbol="BTCUSDT", side="BUY",
                       quantity=D("2"), limit_price=D("100"), algo=TwapAlgo(duration_s=10, slices=2))


def _decision(accepted: bool = True) -> RiskDecision:
    return RiskDecision(id="d-1", ts=TS - 4_000, order_id="o-1", account="ACC1", symbol="BTCUSDT", accepted=accepted)


def _report(status: str = "PARTIAL", quantity: str = "0.5", report_id: str = "r-1", ts: int = TS,
            venue_ts: int | None = TS - 2_000_321) -> ExecutionReport:
    filled = D(quantity)
    return ExecutionReport(id=report_id, ts=ts, order_id="o-1", child_id="k-1", account="ACC1", venue="SIM_A",
                           symbol="BTCUSDT", side="BUY", status=status, last_quantity=filled,
                           last_price=D("99.5") if filled else None, cum_quantity=filled,
                           leaves_quantity=D("1") - filled if filled <= 1 else D(0), fee=D("0.01"),
                           fee_currency="USDT", liquidity="TAKER", venue_order_id="v-9", venue_ts=venue_ts)


def _fold(*events: object) -> ReportingState:
    state = ReportingState()
    for event in events:
        state = evolve(state, event)
    return state


def test_fill_of_an_accepted_order_then_one_trade_report_with_every_regulatory_field() -> None:
    state = _fold(_intent(), _decision())
    [report] = decide(state, _report())
    assert isinstance(report, TradeReported)
    assert subject_for(report) == "sq.rpt.trade.ACC1"
    assert (report.account, report.venue, report.symbol, report.side) == ("ACC1", "SIM_A", "BTCUSDT", "BUY")
    assert (report.quantity, report.price) == (D("0.5"), D("99.5"))
    assert (report.order_id, report.child_id, report.venue_order_id) == ("o-1", "k-1", "v-9")
    assert (report.decision_id, report.algo, report.client_order_id) == ("d-1", "TWAP", "c-1")
    # Both times to the microsecond: the venue's execution time and the fill's arrival (the report's time).
    assert report.execution_ts == TS - 2_000_321 - 468 and report.execution_ts % 1000 == 0
    assert report.execution_time == "2023-11-14T22:13:20.121456Z"
    assert report.publication_ts == TS - 789 and report.publication_time == "2023-11-14T22:13:20.123456Z"
    assert report.id == derived_id("r-1", "trade-report") and report.causation_id == "r-1"


def test_fill_without_venue_time_then_execution_time_is_the_reports_time() -> None:
    [report] = decide(_fold(_intent(), _decision()), _report(venue_ts=None))
    assert isinstance(report, TradeReported)
    assert report.execution_ts == report.publication_ts == TS - 789


def test_report_without_a_fill_then_no_trade_report() -> None:
    state = _fold(_intent(), _decision())
    assert decide(state, _report(status="ACK", quantity="0")) == []
    assert decide(state, _report(status="CANCELLED", quantity="0")) == []
    assert decide(state, _intent()) == [] and decide(state, _decision()) == []


def test_same_fill_delivered_twice_then_reported_once_with_the_same_id_each_time() -> None:
    state = _fold(_intent(), _decision())
    first = decide(state, _report())
    assert first == decide(state, _report()), "deciding again on the same input gives the same event"
    state = evolve(state, _report())
    assert decide(state, _report()) == [], "a copy arriving after the original is not reported again"


def test_fill_of_an_order_whose_intent_was_never_seen_then_reported_without_decision_or_algo() -> None:
    [report] = decide(ReportingState(), _report())
    assert isinstance(report, TradeReported)
    assert report.decision_id is None and report.algo is None and report.client_order_id is None
    assert report.quantity == D("0.5")


def test_decide_is_pure_it_never_changes_the_state() -> None:
    state = _fold(_intent(), _decision(), _report(report_id="r-0"))
    before = state_digest(state)
    decide(state, _report())
    assert state_digest(state) == before


def test_finished_order_then_a_late_fill_still_named_and_later_its_facts_are_forgotten() -> None:
    done = ParentOrderCompleted(id="p-1", ts=TS, order_id="o-1", account="ACC1", client_order_id="c-1",
                                symbol="BTCUSDT", side="BUY", algo="TWAP", status="FILLED", quantity=D("2"),
                                filled_quantity=D("2"), children=2, start_ts=TS, end_ts=TS)
    state = _fold(_intent(), _decision(), done)
    assert state.orders == {}
    [late] = decide(state, _report(ts=TS + 1_000))
    assert isinstance(late, TradeReported) and late.decision_id == "d-1"
    later = TS + 2 * REDELIVERY_WINDOW_NS
    state = evolve(state, _report(report_id="r-2", ts=later))     # event time moves on
    assert state.facts("o-1") is None and len(pickle.dumps(state)) < 2_000


def test_rejected_order_then_its_facts_are_not_kept() -> None:
    assert _fold(_intent(), _decision(accepted=False)).orders == {}


def test_recorded_run_then_every_fill_has_exactly_one_trade_report_that_agrees_with_it() -> None:
    log = [envelope.event for envelope in recorded_run()]
    fills = {e.id: e for e in log if isinstance(e, ExecutionReport) and is_fill(e)}
    reports = [e for e in log if isinstance(e, TradeReported)]
    assert len(fills) >= 10
    assert sorted(r.report_id for r in reports) == sorted(fills), "one report per fill, none other"
    intents = {e.id: e for e in log if isinstance(e, OrderIntent)}
    accepted = {e.order_id: e.id for e in log if isinstance(e, RiskDecision) and e.accepted}
    for report in reports:
        fill = fills[report.report_id]
        assert (report.account, report.venue, report.symbol, report.side, report.quantity, report.price,
                report.order_id, report.child_id) == (fill.account, fill.venue, fill.symbol, fill.side,
                                                      fill.last_quantity, fill.last_price, fill.order_id,
                                                      fill.child_id)
        assert report.algo == intents[fill.order_id].algo_kind
        assert report.decision_id == accepted[fill.order_id]
        assert report.publication_ts == fill.ts - fill.ts % 1000
