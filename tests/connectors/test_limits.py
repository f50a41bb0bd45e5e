"""Venue limits: held before sending, refusals name the limit, 429/418 Retry-After obeyed, throttling in metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from prometheus_client import REGISTRY

from events import ChildOrder
from processors.connector.binance.orders import BinanceOrders
from processors.connector.credentials import BinanceCredentials
from processors.connector.limits import KITE_LIMITS, Limit, LimitRefusal, VenueLimiter
from tests.connectors.binance_standin import BinanceStandIn, make_app
from tests.connectors.conftest import serve

CREDS = BinanceCredentials(api_key="lim-api-key", api_secret="lim-api-secret")


class Clock:
    """Time that moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def child(n: int) -> ChildOrder:
    return ChildOrder(id=f"e{n}", ts=1, order_id="parent-1", child_id=f"0192a1b2-c3d4-7e5f-8a9b-{n:012d}",
                      account="ACC1", venue="binance", symbol="NKNUSDT", side="BUY", quantity=Decimal(1),
                      limit_price=Decimal("0.30"))


def throttled(venue: str, limit: str) -> float:
    return REGISTRY.get_sample_value("sq_connector_throttled_total", {"venue": venue, "limit": limit}) or 0.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def test_kite_order_limits_per_second_and_per_minute_refuse_by_name_and_free_up_with_time() -> None:
    clock = Clock()
    kite = VenueLimiter("kite-test", KITE_LIMITS, clock=clock)
    for _ in range(10):
        kite.acquire({"orders": 1, "orders_minute": 1})
    with pytest.raises(LimitRefusal) as info:
        kite.acquire({"orders": 1, "orders_minute": 1})
    assert info.value.limit == "orders" and "orders 10/1s limit reached (10 used, 1 more asked)" in str(info.value)
    assert 0 < info.value.retry_in_s <= 1
    for _second in range(1, 20):
        clock.now += 1
        for _ in range(10):
            kite.acquire({"orders": 1, "orders_minute": 1})
    clock.now += 1
    with pytest.raises(LimitRefusal, match="orders_minute 200/60s limit reached") as info:
        kite.acquire({"orders": 1, "orders_minute": 1})
    assert kite.refused == {"orders": 1, "orders_minute": 1}
    clock.now += 60
    kite.acquire({"orders": 1, "orders_minute": 1})                 # a minute on, there is room again


def test_a_refused_request_charges_no_window_and_the_venue_count_is_respected() -> None:
    clock = Clock()
    limiter = VenueLimiter("test", (Limit("orders", 2, 10), Limit("weight", 10, 60)), clock=clock)
    limiter.acquire({"orders": 1, "weight": 1})
    with pytest.raises(LimitRefusal, match="weight 10/60s"):
        limiter.acquire({"orders": 1, "weight": 10})
    limiter.acquire({"orders": 1, "weight": 1})                     # the refused one took nothing
    clock.now += 11
    limiter.observe("orders", 2)                                   # the venue counted another client's orders
    with pytest.raises(LimitRefusal, match="orders 2/10s"):
        limiter.acquire({"orders": 1})


async def test_burst_above_the_binance_order_limit_is_refused_by_name_and_never_sent(
        http: aiohttp.ClientSession) -> None:
    venue = BinanceStandIn(CREDS.api_key, CREDS.api_secret)
    clock = Clock()
    limiter = VenueLimiter("binance-burst", (Limit("orders", 5, 10), Limit("weight", 6000, 60)), clock=clock)
    before = throttled("binance-burst", "orders")
    async with serve(make_app(venue)) as base:
        orders = BinanceOrders(http, base, CREDS, limiter=limiter)
        answers = [await orders.place(child(n), recv_ts=n) for n in range(8)]
        sent_in_burst = venue.order_requests
        clock.now += 10
        later = await orders.place(child(99), recv_ts=99)
    statuses = [a[0].status for a in answers]
    assert statuses == ["ACK"] * 5 + ["REJECTED"] * 3
    assert all("binance-burst orders 5/10s limit reached" in (a[0].reason or "") for a in answers[5:])
    assert all("not sent" in (a[0].reason or "") for a in answers[5:])
    assert sent_in_burst == 5                                      # nothing went over the limit
    assert later[0].status == "ACK" and venue.order_requests == 6
    assert throttled("binance-burst", "orders") - before == 3


async def test_429_and_418_retry_after_block_every_request_until_it_passes(http: aiohttp.ClientSession) -> None:
    venue = BinanceStandIn(CREDS.api_key, CREDS.api_secret, throttle=[(429, "7")])
    clock = Clock()
    limiter = VenueLimiter("binance-429", (Limit("orders", 100, 10),), clock=clock, wall=lambda: 5000.0)
    async with serve(make_app(venue)) as base:
        orders = BinanceOrders(http, base, CREDS, limiter=limiter)
        [first] = await orders.place(child(1), recv_ts=1)
        assert first.status == "REJECTED" and "HTTP 429" in (first.reason or "")
        [held] = await orders.place(child(2), recv_ts=2)
        assert held.status == "REJECTED" and "Retry-After 7s" in (held.reason or "") and venue.order_requests == 1
        assert REGISTRY.get_sample_value("sq_connector_retry_after_until_seconds", {"venue": "binance-429"}) == 5007
        clock.now += 7
        [sent] = await orders.place(child(3), recv_ts=3)
        assert sent.status == "ACK" and venue.order_requests == 2
        venue.throttle.append((418, "120"))
        await orders.place(child(4), recv_ts=4)
        [banned] = await orders.place(child(5), recv_ts=5)
    assert "IP banned (HTTP 418)" in (banned.reason or "") and venue.order_requests == 3
    assert throttled("binance-429", "retry_after") == 2
    assert CREDS.api_secret not in (banned.reason or "") and CREDS.api_key not in (banned.reason or "")
