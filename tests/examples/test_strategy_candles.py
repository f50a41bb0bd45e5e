"""examples/strategy_candles.py, run as a process against the order path fed with 1-minute bars."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal as D

from events import Bar, derived_id, intent_id_for
from tests.conftest import eventually
from tests.examples.conftest import EXAMPLES, Stack, example_env, nats_url
from tests.pipeline.test_order_path import _market

MINUTE = 60 * 1_000_000_000


def _bar(open_time: int, close: str) -> Bar:
    price = D(close)
    return Bar(id=derived_id("BINANCE:XYZ:1m", "bar", open_time), ts=open_time + MINUTE, venue="BINANCE",
               symbol="XYZ", interval="1m", open_time=open_time, open=price, high=price, low=price, close=price,
               volume=D("3"), trade_count=1)


async def test_strategy_buys_when_a_close_crosses_its_average_and_the_intent_is_decided_by_risk(
        stack: Stack) -> None:
    now = time.time_ns()
    await _market(stack, now)
    strategy = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "strategy_candles.py"), "--nats-url", nats_url(stack),
        "--account", "ACC1", "--symbol", "XYZ", "--window", "3", "--quantity", "2", "--max-orders", "1",
        env=example_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert strategy.stdout is not None
        assert "subscribed" in json.loads(await asyncio.wait_for(strategy.stdout.readline(), 20))
        start = now - now % MINUTE - 10 * MINUTE
        # Flat at 10.00, then a close of 10.20 lifts it above its 3-bar average: one BUY.
        bars = [_bar(start + i * MINUTE, close) for i, close in enumerate(["10.00", "10.00", "10.00", "10.20"])]
        await stack.bus.publish_batch(bars)
        out, err = await asyncio.wait_for(strategy.communicate(), 20)
    finally:
        if strategy.returncode is None:
            strategy.kill()
            await strategy.wait()
    assert strategy.returncode == 0, err.decode()
    published = json.loads(out.decode().splitlines()[-1])
    assert published["stream"] == "SQ_TRADING"
    intent = published["published"]
    assert intent["side"] == "BUY" and intent["limit_price"] == "10.20"
    # The intake derives the id from account + client_order_id, as the README contract says.
    order_id = intent_id_for("ACC1", intent["client_order_id"])
    await eventually(lambda: any(d.order_id == order_id for d in stack.projections.state.decisions),
                     message="a RiskDecision for the strategy's intent")
    decision = next(d for d in stack.projections.state.decisions if d.order_id == order_id)
    assert decision.accepted, decision
    await eventually(lambda: stack.projections.state.orders[order_id].status == "FILLED",
                     message="the strategy's IOC order filled at the ask")
