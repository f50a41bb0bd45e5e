"""One valid instance of every event type, for round-trip and schema tests."""

from __future__ import annotations

from decimal import Decimal as D

from events import (
    AuditEvent,
    Bar,
    BookDelta,
    BookSnapshot,
    BookTop,
    CancelIntent,
    CheckFailure,
    ChildCancel,
    ChildOrder,
    CircuitBreakerReset,
    CircuitBreakerTripped,
    DeadLetter,
    Event,
    ExecutionReport,
    KillSwitchEngaged,
    KillSwitchReleased,
    Limits,
    LimitsChanged,
    OrderIntent,
    ParentOrderCompleted,
    RebalanceProposed,
    ReconciliationBreak,
    RiskDecision,
    TargetWeightsSet,
    TimerFired,
    Trade,
    TradingStateChanged,
    TwapAlgo,
    VenuePositionsReported,
    new_event_id,
)

TS = 1_700_000_000_000_000_000


def sample_events() -> list[Event]:
    """A valid event of every catalogue type."""
    oid, cid = new_event_id(), new_event_id()
    common = {"ts": TS, "correlation_id": oid, "causation_id": oid}
    return [
        Trade(id=new_event_id(), ts=TS, venue="BINANCE", symbol="BTCUSDT", price=D("43210.50"),
              quantity=D("0.012"), aggressor="BUY", trade_id="123"),
        BookSnapshot(id=new_event_id(), ts=TS, venue="BINANCE", symbol="BTCUSDT", last_update_id=10,
                     bids=[(D("100.1"), D("2"))], asks=[(D("100.2"), D("1.5"))]),
        BookDelta(id=new_event_id(), ts=TS, venue="BINANCE", symbol="BTCUSDT", first_update_id=11,
                  last_update_id=12, bids=[(D("100.1"), D("0"))], asks=[]),
        BookTop(id=new_event_id(), ts=TS, venue="BINANCE", symbol="BTCUSDT", last_update_id=12,
                bid_price=D("100.0"), bid_size=D("1"), ask_price=D("100.2"), ask_size=D("1.5"), imbalance=-0.2),
        Bar(id=new_event_id(), ts=TS, venue="BINANCE", symbol="BTCUSDT", interval="1m", open_time=TS,
            open=D("1"), high=D("2"), low=D("0.5"), close=D("1.5"), volume=D("10"), trade_count=3),
        OrderIntent(id=oid, ts=TS, account="ACC1", client_order_id="s-1", symbol="BTCUSDT", side="BUY",
                    quantity=D("0.250"), limit_price=D("43210.50"),
                    algo=TwapAlgo(duration_s=60, slices=6)),
        CancelIntent(id=new_event_id(), ts=TS, account="ACC1", order_id=oid),
        RiskDecision(id=new_event_id(), **common, order_id=oid, account="ACC1", symbol="BTCUSDT",
                     accepted=False, failures=[CheckFailure(check="max_notional", reason="too big",
                                                            value="5", limit="4")], checks_run=12),
        ChildOrder(id=cid, **common, order_id=oid, child_id=cid, account="ACC1", venue="SIM_A",
                   symbol="BTCUSDT", side="BUY", quantity=D("0.05")),
        ChildCancel(id=new_event_id(), **common, order_id=oid, child_id=cid, account="ACC1", venue="SIM_A",
                    reason="kill switch"),
        ExecutionReport(id=new_event_id(), **common, order_id=oid, child_id=cid, account="ACC1", venue="SIM_A",
                        symbol="BTCUSDT", side="BUY", status="FILLED", last_quantity=D("0.05"),
                        last_price=D("43210"), cum_quantity=D("0.05"), fee=D("0.01")),
        ParentOrderCompleted(id=new_event_id(), **common, order_id=oid, account="ACC1", client_order_id="s-1",
                             symbol="BTCUSDT", side="BUY", algo="TWAP", status="FILLED", quantity=D("0.25"),
                             filled_quantity=D("0.25"), children=6, start_ts=TS, end_ts=TS + 60,
                             arrival_price=D("43210"), average_price=D("43211"), shortfall_bps=D("0.23")),
        TargetWeightsSet(id=new_event_id(), ts=TS, account="ACC1", weights={"BTCUSDT": 0.6}, method="equal"),
        RebalanceProposed(id=new_event_id(), ts=TS, account="ACC1", trades={"BTCUSDT": D("0.1")},
                          drift_threshold=0.05),
        ReconciliationBreak(id=new_event_id(), ts=TS, account="ACC1", venue="SIM_A", symbol="BTCUSDT",
                            ours=D("1"), venue_reported=D("0.9")),
        VenuePositionsReported(id=new_event_id(), ts=TS, account="ACC1", venue="SIM_A",
                               positions={"BTCUSDT": D("0.9")}),
        KillSwitchEngaged(id=new_event_id(), ts=TS, account="ACC1", actor="risk-officer", reason="drill"),
        KillSwitchReleased(id=new_event_id(), ts=TS, actor="risk-officer", reason="drill over"),
        CircuitBreakerTripped(id=new_event_id(), ts=TS, symbol="BTCUSDT", cause="price_move", detail="-7% in 60s"),
        CircuitBreakerReset(id=new_event_id(), ts=TS, symbol="BTCUSDT", actor="risk-officer"),
        TradingStateChanged(id=new_event_id(), ts=TS, account="ACC1", state="REDUCING", reason="daily loss"),
        LimitsChanged(id=new_event_id(), ts=TS, account="ACC1",
                      limits=Limits(max_order_quantity=D("5"), max_open_orders=3, max_position=None), actor="ops"),
        TimerFired(id=new_event_id(), ts=TS, timer="router", due_ts=TS),
        AuditEvent(id=new_event_id(), ts=TS, kind="login", actor="alice", action="login", outcome="success"),
        DeadLetter(id=new_event_id(), ts=TS, source="risk", subject="sq.ord.intent.ACC1", reason="bad",
                   payload="{}"),
    ]
