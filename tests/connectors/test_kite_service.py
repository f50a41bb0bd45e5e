"""`sq processor kite` end to end against the Kite stand-in; instruments cache; session renewal across 06:00 IST."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import msgspec
import pyotp
import pytest

from events import BookSnapshot, BookTop, Broker, Bus, ChildOrder, ExecutionReport, Trade
from events.audit import AuditEvent
from events.broker import free_port
from processors.connector.credentials import CredentialStore, KiteCredentials, SessionCache
from processors.connector.kite.instruments import InstrumentCache, InstrumentError, parse_wanted
from processors.connector.kite.orders import KiteInstrument, KiteOrders
from processors.connector.kite.runner import renew_daily
from processors.connector.kite.session import KiteSession, KiteUrls
from processors.connector.kite.stream import KiteTicker
from processors.connector.kite.ticker import IST
from processors.connector.limits import Limit, VenueLimiter
from processors.connector.sink import FeedSink
from tests.conftest import eventually
from tests.connectors.conftest import collect, serve
from tests.connectors.kite_standin import KiteStandIn, make_app, message, pack_full

REPO = Path(__file__).resolve().parents[2]
SEED = pyotp.random_base32()
CREDS = KiteCredentials(user_id="ZX9876", password="kite-pw-4e1b", totp_seed=SEED, api_key="kitekey81",
                        api_secret="kite-secret-5d0c")
INFY = 408065


class Clock:
    """Wall time that moves only when the test says."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _no_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQ_MASTER_KEY", raising=False)


def standin(clock: Clock | None = None) -> KiteStandIn:
    return KiteStandIn(CREDS.user_id, CREDS.password, SEED, CREDS.api_key, CREDS.api_secret, clock=clock)


def urls_of(base: str) -> KiteUrls:
    return KiteUrls(login=base, connect=base, api=base, ws=base.replace("http", "ws") + "/ws")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_instrument_tokens_come_from_the_list_cached_for_the_ist_day(http: aiohttp.ClientSession,
                                                                          tmp_path: Path) -> None:
    venue = standin()
    clock = Clock(datetime(2026, 12, 4, 9, 0, tzinfo=IST))
    async with serve(make_app(venue)) as base:
        session = KiteSession(http, CREDS, urls_of(base), SessionCache(tmp_path))
        cache = InstrumentCache(session, tmp_path, clock=clock)
        found = await cache.resolve(parse_wanted("NSE:INFY,nse:m&m"))
        assert found == {"INFY": KiteInstrument("INFY", "NSE", "INFY", INFY),
                         "M_M": KiteInstrument("M_M", "NSE", "M&M", 519937)}
        with pytest.raises(InstrumentError, match="BSE:INFY' is the symbol INFY of NSE:INFY too"):
            await cache.resolve(parse_wanted("NSE:INFY,BSE:INFY"))
        await cache.resolve(parse_wanted("NSE:RELIANCE"))
        assert venue.instrument_fetches == 1                          # the same IST day: read from disk
        clock.now += timedelta(hours=20)                               # 05:00 IST the next day
        assert (await cache.resolve(parse_wanted("NSE:RELIANCE")))["RELIANCE"].instrument_token == 738561
        assert venue.instrument_fetches == 2
        assert [p.name for p in (tmp_path / "kite").iterdir()] == ["instruments-2026-12-05.csv"]
        with pytest.raises(InstrumentError, match="NSE:NOPE' is not in Kite's instruments list"):
            await cache.resolve(parse_wanted("NSE:NOPE"))
    with pytest.raises(InstrumentError, match="is not EXCHANGE:TRADINGSYMBOL"):
        parse_wanted("INFY")


async def test_session_renewed_across_0600_ist_with_a_fresh_totp_and_the_ticker_follows(
        http: aiohttp.ClientSession, bus: Bus, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 12, 4, 5, 30, tzinfo=IST))
    venue = standin(clock)
    async with serve(make_app(venue)) as base:
        session = KiteSession(http, CREDS, urls_of(base), SessionCache(tmp_path, clock=clock))
        first = await session.token()
        assert session.renewal_due() == datetime(2026, 12, 4, 6, 0, tzinfo=IST)
        ticker = KiteTicker(session, {INFY: "INFY"}, FeedSink(bus, "kite"), max_backoff_s=0.1)
        cache = InstrumentCache(session, tmp_path, clock=clock)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(ticker.run(stop)),
                 asyncio.create_task(renew_daily(session, ticker, cache, [("NSE", "INFY")], stop, poll_s=0.05))]
        await asyncio.wait_for(ticker.connected.wait(), 10)
        assert not await session.renew_if_due() and venue.logins == 1        # 05:30: not yet
        clock.now = datetime(2026, 12, 4, 6, 0, 20, tzinfo=IST)             # Kite voids every token at 06:00
        venue.revoke_tokens()
        await eventually(lambda: venue.logins == 2 and venue.ws_connects >= 2 and len(venue.sockets) == 1,
                         message="renewed and reconnected")
        stop.set()
        await asyncio.gather(*tasks)
    totp = pyotp.TOTP(SEED)
    assert venue.twofa_codes == [totp.at(datetime(2026, 12, 4, 5, 30, tzinfo=IST)),
                                 totp.at(datetime(2026, 12, 4, 6, 0, 20, tzinfo=IST))]
    assert await_token_differs(first, venue)
    assert session.renewal_due() == datetime(2026, 12, 4, 18, 0, 20, tzinfo=IST)  # 12 h cap: renewed again then


def await_token_differs(first: str, venue: KiteStandIn) -> bool:
    return first not in venue.access_tokens and len(venue.access_tokens) == 1


async def test_kite_order_burst_over_ten_a_second_is_refused_by_name_and_never_sent(
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    venue = standin()
    async with serve(make_app(venue)) as base:
        session = KiteSession(http, CREDS, urls_of(base), SessionCache(tmp_path))
        now = [100.0]
        limiter = VenueLimiter("kite-burst", (Limit("orders", 10, 1), Limit("orders_minute", 200, 60)),
                               clock=lambda: now[0])
        orders = KiteOrders(session, {"INFY": KiteInstrument("INFY", "NSE", "INFY", INFY)}, limiter=limiter)
        reports = [await orders.place(kite_child(n), recv_ts=n) for n in range(12)]
    assert [r.status for r in reports] == ["ACK"] * 10 + ["REJECTED"] * 2
    assert all("kite-burst orders 10/1s limit reached" in (r.reason or "") for r in reports[10:])
    assert len(venue.orders) == 10


def kite_child(n: int, *, quantity: int = 10) -> ChildOrder:
    return ChildOrder(id=f"c0000000-0000-7000-8000-{n:012d}", ts=1, order_id="parent-k", account="ACC1",
                      child_id=f"0192a1b2-c3d4-7e5f-8a9b-{n:012d}", venue="kite", symbol="INFY", side="BUY",
                      quantity=Decimal(quantity), limit_price=Decimal("1500.5"))


async def test_sq_processor_kite_logs_in_streams_trades_orders_and_checks_postbacks(
        broker: Broker, bus: Bus, tmp_path: Path) -> None:
    venue = standin()
    store = CredentialStore(tmp_path)
    for name in ("user_id", "password", "totp_seed", "api_key", "api_secret"):
        store.set("kite", name, getattr(CREDS, name))
    seen = await collect(bus)
    port, postback_port = free_port(), free_port()
    async with serve(make_app(venue)) as base, aiohttp.ClientSession() as http:
        env = {k: v for k, v in os.environ.items() if k != "SQ_MASTER_KEY"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "processors.connector.kite.runner", "--instruments", "NSE:INFY", "--trade",
            "--login-url", base, "--connect-url", base, "--api-url", base, "--ws-url",
            base.replace("http", "ws") + "/ws", "--nats-url", broker.url, "--port", str(port),
            "--postback-port", str(postback_port), "--data-dir", str(tmp_path), "--log-level", "INFO",
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            async def ready() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, message="/readyz")
            assert venue.logins == 1 and pyotp.TOTP(SEED).verify(venue.twofa_codes[0], valid_window=1)
            await eventually(lambda: {"a": "subscribe", "v": [INFY]} in venue.subscriptions, message="subscribed")
            await venue.push(message(pack_full(INFY, ltp=157315, last_qty=5, volume=1000, close=156780,
                                               last_trade_time=1_764_820_000, exchange_ts=1_764_820_001,
                                               bids=[(10, 157310, 2)], asks=[(7, 157320, 1)])))
            await eventually(lambda: {Trade, BookSnapshot, BookTop} <= {type(e) for e in seen()}, message="md")
            await bus.publish(kite_child(1))
            await eventually(lambda: len(venue.orders) == 1, message="order placed at Kite")
            [order_id] = venue.orders
            assert venue.orders[order_id]["tag"] == "0192a1b2c3d47e5f8a9b"
            partial = venue.order_update(order_id, status="OPEN", filled=4, average="1500")
            await venue.push({"type": "order", "id": "", "data": partial})        # the ticker's order message
            complete = venue.order_update(order_id, status="COMPLETE", filled=10, average="1500.3")
            forged = venue.order_update(order_id, status="COMPLETE", filled=10, average="1.0", secret="guess")
            url = f"http://127.0.0.1:{postback_port}/kite/postback"
            async with http.post(url, data=json.dumps(forged), headers={"Content-Type": "application/json"}) as r:
                assert r.status == 401
            async with http.post(url, data=json.dumps(complete), headers={"Content-Type": "application/json"}) as r:
                assert r.status == 200
            await venue.push({"type": "order", "data": complete})                 # the same update both ways
            await eventually(lambda: any(isinstance(e, ExecutionReport) and e.status == "FILLED" for e in seen()),
                             message="FILLED")
            await eventually(lambda: any(isinstance(e, AuditEvent) for e in seen()), message="audit")
        finally:
            proc.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, output.decode()[-2000:]
    reports = [e for e in seen() if isinstance(e, ExecutionReport)]
    assert [(r.status, r.last_quantity, r.last_price, r.cum_quantity) for r in reports] == [
        ("ACK", 0, None, 0), ("PARTIAL", 4, Decimal("1500"), 4), ("FILLED", 6, Decimal("1500.5"), 10)]
    [audit] = [e for e in seen() if isinstance(e, AuditEvent)]
    assert audit.outcome == "denied" and order_id in audit.detail and audit.kind == "kite_postback"
    trade = next(e for e in seen() if isinstance(e, Trade))
    assert trade.price == Decimal("1573.15") and trade.symbol == "INFY"
    everything = output.decode() + "".join(msgspec.json.encode(e).decode() for e in seen())
    for secret in (CREDS.password, CREDS.api_secret, CREDS.totp_seed, *venue.access_tokens, forged["checksum"]):
        assert secret not in everything


async def test_orders_restored_from_the_log_recognise_an_update_after_a_restart(http: aiohttp.ClientSession,
                                                                                tmp_path: Path) -> None:
    venue = standin()
    async with serve(make_app(venue)) as base:
        session = KiteSession(http, CREDS, urls_of(base), SessionCache(tmp_path))
        before = KiteOrders(session, {})
        child = kite_child(7)
        ack = await before.place(child, recv_ts=1)
        partial = before.on_order_update(venue.order_update(ack.venue_order_id or "", status="OPEN", filled=4,
                                                            average="1500"), recv_ts=2)
        after = KiteOrders(session, {})                 # a new process: it knows only what the log says
        for event in (child, ack, partial):
            after.restore(event)
        assert child.child_id in after.placed
        filled = after.on_order_update(venue.order_update(ack.venue_order_id or "", status="COMPLETE", filled=10,
                                                          average="1500.3"), recv_ts=3)
    assert filled is not None and (filled.status, filled.last_quantity, filled.last_price, filled.cum_quantity) == (
        "FILLED", 6, Decimal("1500.5"), 10)


async def test_kite_429_blocks_orders_for_a_second_then_they_go_and_no_secret_reaches_the_metrics(
        http: aiohttp.ClientSession, tmp_path: Path) -> None:
    from prometheus_client import REGISTRY, generate_latest

    venue = standin()
    venue.throttle = 1
    async with serve(make_app(venue)) as base:
        session = KiteSession(http, CREDS, urls_of(base), SessionCache(tmp_path))
        now = [100.0]
        limiter = VenueLimiter("kite-429", (Limit("orders", 10, 1),), clock=lambda: now[0], default_retry_s=1.0)
        orders = KiteOrders(session, {}, limiter=limiter)
        first = await orders.place(kite_child(20), recv_ts=1)
        held = await orders.place(kite_child(21), recv_ts=2)
        now[0] += 1.0
        sent = await orders.place(kite_child(22), recv_ts=3)
    assert first.status == "REJECTED" and "HTTP 429" in (first.reason or "")
    assert held.status == "REJECTED" and "rate limited (HTTP 429), Retry-After 1s" in (held.reason or "")
    assert sent.status == "ACK" and venue.order_requests == 2
    metrics = generate_latest(REGISTRY).decode()
    assert 'sq_connector_throttled_total{limit="retry_after",venue="kite-429"} 1.0' in metrics
    for secret in (CREDS.password, CREDS.api_secret, CREDS.api_key, CREDS.totp_seed, *venue.access_tokens):
        assert secret not in metrics


async def test_kite_placement_whose_answer_is_lost_is_found_by_its_tag(tmp_path: Path) -> None:
    venue = standin()
    async with serve(make_app(venue)) as base, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as http:
        session = KiteSession(http, CREDS, urls_of(base), SessionCache(tmp_path))
        await session.token()
        orders = KiteOrders(session, {})
        venue.hang_next_order = True
        found = await orders.place(kite_child(30), recv_ts=1)
        [order_id] = venue.orders
        venue.drop_next_order = True                  # a lost request: Kite never made the order
        other = msgspec.structs.replace(kite_child(31), child_id="11112222-3333-7444-8555-000000000031")
        missing = await orders.place(other, recv_ts=2)
    assert found is not None and (found.status, found.venue_order_id) == ("ACK", order_id)
    assert missing is not None and missing.status == "REJECTED"
    assert "Kite has no order tagged 11112222333374448555" in (missing.reason or "")
