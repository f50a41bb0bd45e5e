"""GET /v1/ws over a real broker: subject patterns, per-account visibility, errors, auth and slow clients."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from events import Bus, ExecutionReport, Trade, encode, new_event_id
from gateway.routes_ws import CLOSE_SLOW_CONSUMER, FANOUT, Fanout, PatternError, account_of, parse_pattern
from tests.conftest import eventually
from tests.gateway.conftest import Running


def _report(account: str, status: str = "FILLED") -> ExecutionReport:
    return ExecutionReport(id=new_event_id(), ts=time.time_ns(), order_id=new_event_id(), child_id=new_event_id(),
                           account=account, venue="SIM", symbol="BTCUSDT", side="BUY", status=status,  # type: ignore[arg-type]
                           last_quantity=Decimal("0.1"), last_price=Decimal("100.5"), cum_quantity=Decimal("0.1"))


def _trade(price: str = "100.5") -> Trade:
    return Trade(id=new_event_id(), ts=time.time_ns(), venue="BINANCE", symbol="BTCUSDT", price=Decimal(price),
                 quantity=Decimal("0.01"))


async def _receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> dict[str, Any]:
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    body: dict[str, Any] = message.json()
    return body


async def _subscribe(ws: aiohttp.ClientWebSocketResponse, *patterns: str, **options: str) -> None:
    await ws.send_json({"subscribe": list(patterns), **options})
    answer = await _receive(ws)
    assert set(patterns) <= set(answer["subscribed"]), answer


async def _connect(client: TestClient, token: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:  # type: ignore[type-arg]
    return await client.ws_connect("/v1/ws", headers={"Authorization": f"Bearer {token}"}, **kwargs)


async def test_trader_sees_own_execution_reports_and_not_another_accounts(running: Running, bus: Bus) -> None:
    ws = await _connect(running.client, await running.login("alice"))
    await _subscribe(ws, "sq.exec.report.>")
    other, own = _report("ACC2"), _report("ACC1")
    await bus.publish(other)
    await bus.publish(own)
    frame = await _receive(ws)
    assert frame["subject"] == "sq.exec.report.SIM.ACC1"
    assert frame["event"]["id"] == own.id and frame["event"]["last_price"] == "100.5"
    # Nothing of ACC2 arrives between: the next frame is the next ACC1 report.
    await bus.publish(_report("ACC2"))
    marker = _report("ACC1", "PARTIAL")
    await bus.publish(marker)
    assert (await _receive(ws))["event"]["id"] == marker.id
    await ws.close()


async def test_risk_officer_sees_every_account(running: Running, bus: Bus) -> None:
    ws = await _connect(running.client, await running.login("rita"))
    await _subscribe(ws, "sq.exec.report.*.*")
    await bus.publish(_report("ACC2"))
    assert (await _receive(ws))["subject"] == "sq.exec.report.SIM.ACC2"
    await ws.close()


async def test_viewer_receives_trades_with_token_in_the_query_string(running: Running, bus: Bus) -> None:
    token = await running.login("vic")
    ws = await running.client.ws_connect(f"/v1/ws?token={token}")
    await _subscribe(ws, "sq.md.trade.BINANCE.*")
    trade = _trade("43210.5")
    await bus.publish(trade)
    frame = await _receive(ws)
    assert frame == {"subject": "sq.md.trade.BINANCE.BTCUSDT", "event": json.loads(encode(trade))}
    await ws.close()


async def test_bad_pattern_and_bad_message_answer_error_frames_and_keep_the_connection(running: Running) -> None:
    ws = await _connect(running.client, await running.login("alice"))
    for bad in ("sq.audit.>", "sq.>", "sq.md.>.trade", "sq.md.trade.BTC USDT", "foo.md.trade"):
        await ws.send_json({"subscribe": [bad]})
        error = await _receive(ws)
        assert error["error"] == "invalid_pattern" and bad in error["detail"], error
    await ws.send_str("{not json")
    assert (await _receive(ws))["error"] == "invalid_message"
    await ws.send_json({"subscribe": ["sq.md.>"], "colour": "red"})
    assert "colour" in (await _receive(ws))["detail"]
    await ws.send_json({"ping": 7})
    assert await _receive(ws) == {"pong": 7}
    await ws.close()
    assert ws.close_code == 1000


async def test_unauthenticated_websocket_is_refused_with_401_json_before_the_upgrade(running: Running) -> None:
    plain = await running.client.get("/v1/ws")
    assert plain.status == 401 and (await plain.json())["error"] == "unauthorized"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await running.client.ws_connect("/v1/ws?token=not-a-token")
    assert refused.value.status == 401


async def test_slow_client_is_closed_with_4008_and_counted(running: Running) -> None:
    fanout = _fanout(running)
    fanout.queue_size = 4
    before = REGISTRY.get_sample_value("sq_gateway_ws_overflow_total", {"action": "disconnect"}) or 0.0
    ws = await _connect(running.client, await running.login("vic"))
    await _subscribe(ws, "sq.md.trade.>")
    # Offered synchronously, without yielding, so the writer cannot drain in between: the queue must overflow.
    for _ in range(10):
        fanout.dispatch("sq.md.trade.BINANCE.BTCUSDT", encode(_trade()))
    message = await ws.receive(timeout=10)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
    assert ws.close_code == CLOSE_SLOW_CONSUMER
    assert REGISTRY.get_sample_value("sq_gateway_ws_overflow_total", {"action": "disconnect"}) == before + 1
    await asyncio.wait_for(_until_no_clients(running), 10)


async def test_drop_oldest_client_keeps_the_newest_frames(running: Running) -> None:
    fanout = _fanout(running)
    fanout.queue_size = 4
    ws = await _connect(running.client, await running.login("vic"))
    await _subscribe(ws, "sq.md.trade.>", overflow="drop_oldest")
    trades = [_trade(str(100 + i)) for i in range(10)]
    for trade in trades:
        fanout.dispatch("sq.md.trade.BINANCE.BTCUSDT", encode(trade))
    received = [(await _receive(ws))["event"]["id"] for _ in range(4)]
    assert received == [t.id for t in trades[-4:]]
    await ws.close()


async def test_gateway_takes_from_the_bus_only_the_kinds_its_clients_ask_for(running: Running, bus: Bus) -> None:
    fanout = _fanout(running)
    ws = await _connect(running.client, await running.login("rita"))
    await _subscribe(ws, "sq.exec.report.>", "sq.ctl.killswitch.>")
    assert sorted(fanout.subscriptions) == ["ctl", "exec"]     # no market data, intents or decisions
    await _subscribe(ws, "sq.md.trade.BINANCE.*")
    assert sorted(fanout.subscriptions) == ["ctl", "exec", "md"]
    await ws.send_json({"unsubscribe": ["sq.exec.report.>", "sq.ctl.killswitch.>"]})
    assert (await _receive(ws))["subscribed"] == ["sq.md.trade.BINANCE.*"]
    assert sorted(fanout.subscriptions) == ["md"]
    # What is still wanted still arrives, exactly once.
    trade = _trade("101.5")
    await bus.publish(_report("ACC1"))
    await bus.publish(trade)
    assert (await _receive(ws))["event"]["id"] == trade.id
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.5)
    await ws.close()
    await eventually(lambda: fanout.subscriptions == {}, timeout=5, message="the last kind dropped")


def _fanout(running: Running) -> Fanout:
    app = running.client.app
    assert app is not None
    return app[FANOUT]


async def _until_no_clients(running: Running) -> None:
    while _fanout(running).clients:
        await asyncio.sleep(0.01)


def test_patterns_are_validated_naming_the_offender() -> None:
    assert parse_pattern("sq.exec.report.>") == ("sq", "exec", "report", ">")
    assert parse_pattern("sq.ctl.*") == ("sq", "ctl", "*")
    assert parse_pattern("sq.rpt.trade.>") == ("sq", "rpt", "trade", ">")
    for bad in ("sq.dlq.x", "sq.*.trade", "sq.md", "sq.md..x", "sq.md.>.x"):
        with pytest.raises(PatternError) as raised:
            parse_pattern(bad)
        assert raised.value.pattern == bad


def test_account_of_scopes_order_path_and_account_control_subjects_only() -> None:
    assert account_of(("sq", "exec", "report", "SIM", "ACC1")) == "ACC1"
    assert account_of(("sq", "ord", "intent", "ACC2")) == "ACC2"
    assert account_of(("sq", "rpt", "trade", "ACC4")) == "ACC4"     # trade reports: only their account's users
    assert account_of(("sq", "ctl", "killswitch", "ACC3")) == "ACC3"
    assert account_of(("sq", "ctl", "killswitch", "all")) is None
    assert account_of(("sq", "ctl", "breaker", "BTCUSDT")) is None
    assert account_of(("sq", "md", "trade", "SIM", "BTCUSDT")) is None


async def test_bus_message_that_is_not_json_is_counted_and_not_streamed(running: Running) -> None:
    ws = await _connect(running.client, await running.login("vic"))
    await _subscribe(ws, "sq.md.trade.>")
    before = REGISTRY.get_sample_value("sq_gateway_ws_undecodable_total") or 0.0
    assert _fanout(running).dispatch("sq.md.trade.SIM.BTCUSDT", b"{not json") == 0
    assert REGISTRY.get_sample_value("sq_gateway_ws_undecodable_total") == before + 1
    good = _trade()
    assert _fanout(running).dispatch("sq.md.trade.SIM.BTCUSDT", encode(good)) == 1
    assert (await _receive(ws))["event"]["id"] == good.id
    await ws.close()
