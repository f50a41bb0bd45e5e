"""Kite: login with automated TOTP against the stand-in, orders to ExecutionReports, ticker packets to events."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import pyotp
import pytest

from events import BookSnapshot, Bus, ChildCancel, ChildOrder, DeadLetter, ExecutionReport, Trade
from processors.connector.credentials import KiteCredentials, SessionCache
from processors.connector.kite.orders import (
    KiteInstrument,
    KiteOrders,
    OrderMappingError,
    OrderTrack,
    on_update,
    order_form,
    postback_checksum,
    postback_valid,
)
from processors.connector.kite.session import KiteError, KiteSession, KiteUrls, checksum, login
from processors.connector.kite.stream import KiteTicker
from processors.connector.sink import FeedSink
from tests.conftest import eventually
from tests.connectors.conftest import collect, serve
from tests.connectors.kite_standin import KiteStandIn, drop_ticker, make_app, message, pack_full

SEED = pyotp.random_base32()
CREDS = KiteCredentials(user_id="AB1234", password="pw-secret", totp_seed=SEED, api_key="kiteapikey",
                        api_secret="kite-api-secret")
TOKEN = 408065


@pytest.fixture
def venue() -> KiteStandIn:
    return KiteStandIn(CREDS.user_id, CREDS.password, SEED, CREDS.api_key, CREDS.api_secret)


@pytest.fixture
async def kite(venue: KiteStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KiteSession]:
    monkeypatch.delenv("SQ_MASTER_KEY", raising=False)
    async with serve(make_app(venue)) as base, aiohttp.ClientSession() as http:
        urls = KiteUrls(login=base, connect=base, api=base, ws=base.replace("http", "ws") + "/ws")
        yield KiteSession(http, CREDS, urls, SessionCache(tmp_path))


def child(**overrides: object) -> ChildOrder:
    fields: dict[str, object] = dict(id="c0000000-0000-7000-8000-000000000001", ts=1, order_id="parent-1",
                                     child_id="0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", account="ACC1", venue="kite",
                                     symbol="INFY", side="BUY", quantity=Decimal(10), limit_price=Decimal("1500.5"))
    fields.update(overrides)
    return ChildOrder(**fields)  # type: ignore[arg-type]


def test_checksum_is_sha256_of_key_token_secret() -> None:
    assert checksum("a", "b", "c") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")


async def test_login_uses_password_then_generated_totp_then_checksummed_session(kite: KiteSession,
                                                                             venue: KiteStandIn) -> None:
    token = await login(kite.http, CREDS, kite.urls)
    assert token in venue.access_tokens and venue.logins == 1
    assert len(venue.twofa_codes) == 1 and pyotp.TOTP(SEED).verify(venue.twofa_codes[0], valid_window=1)


async def test_login_when_password_wrong_then_kite_error_without_the_password(kite: KiteSession) -> None:
    bad = KiteCredentials(user_id="AB1234", password="wrong-pw", totp_seed=SEED, api_key="kiteapikey",
                          api_secret="kite-api-secret")
    with pytest.raises(KiteError) as info:
        await login(kite.http, bad, kite.urls)
    assert info.value.step == "login" and info.value.error_type == "InputException"
    assert "wrong-pw" not in str(info.value)


async def test_session_cached_then_renewed_with_fresh_totp_after_expiry(kite: KiteSession, venue: KiteStandIn,
                                                                      tmp_path: Path) -> None:
    first = await kite.token()
    assert await kite.token() == first and venue.logins == 1
    now = [datetime.now(UTC) + timedelta(hours=13)]
    venue.clock = lambda: now[0]           # the TOTP is made for the session clock's time, and checked for it
    later = KiteSession(kite.http, CREDS, kite.urls, SessionCache(tmp_path, clock=lambda: now[0]))
    assert await later.token() != first and venue.logins == 2


def test_order_form_maps_child_fields_to_kite_form() -> None:
    form = order_form(child(), KiteInstrument("INFY", "NSE", "INFY"), product="MIS")
    assert form == {"tradingsymbol": "INFY", "exchange": "NSE", "transaction_type": "BUY", "quantity": "10",
                    "product": "MIS", "validity": "DAY", "order_type": "LIMIT", "price": "1500.5",
                    "tag": "0192a1b2c3d47e5f8a9b"}
    market = order_form(child(limit_price=None, time_in_force="IOC"), KiteInstrument("INFY"))
    assert market["order_type"] == "MARKET" and "price" not in market and market["validity"] == "IOC"
    with pytest.raises(OrderMappingError, match="quantity 1.5 is fractional"):
        order_form(child(quantity=Decimal("1.5")), KiteInstrument("INFY"))
    with pytest.raises(OrderMappingError, match="time_in_force FOK"):
        order_form(child(time_in_force="FOK"), KiteInstrument("INFY"))


def test_updates_give_partial_then_filled_with_exact_fill_prices() -> None:
    track = OrderTrack(child(), "2500")
    track, first = on_update(track, {"order_id": "2500", "status": "UPDATE", "filled_quantity": 4,
                                     "average_price": 1500, "exchange_update_timestamp": "2026-03-02 09:24:25"},
                             recv_ts=5)
    track, second = on_update(track, {"order_id": "2500", "status": "COMPLETE", "filled_quantity": 10,
                                       "average_price": 1500.3}, recv_ts=6)
    assert first is not None and first.status == "PARTIAL" and first.last_quantity == 4
    assert first.leaves_quantity == 6 and first.ts == int(datetime(2026, 3, 2, 3, 54, 25,
                                                                  tzinfo=UTC).timestamp()) * 10**9
    assert second is not None and second.status == "FILLED" and second.last_quantity == 6
    assert second.last_price == Decimal("1500.5") and second.cum_quantity == 10 and second.leaves_quantity == 0
    assert on_update(track, {"status": "COMPLETE", "filled_quantity": 10}, recv_ts=7)[1] is None


def test_postback_checksum_is_verified_with_the_api_secret() -> None:
    update = {"order_id": "220303000308932", "order_timestamp": "2022-03-03 09:24:25"}
    update["checksum"] = postback_checksum(update["order_id"], update["order_timestamp"], "secret")
    assert postback_valid(update, "secret") and not postback_valid(update, "other")


async def test_place_order_acks_and_rejects_with_kite_reason(kite: KiteSession, venue: KiteStandIn) -> None:
    orders = KiteOrders(kite, {"INFY": KiteInstrument("INFY", "NSE")})
    ack = await orders.place(child(), recv_ts=10)
    assert ack.status == "ACK" and ack.venue_order_id in venue.orders and ack.leaves_quantity == 10
    assert venue.orders[ack.venue_order_id]["price"] == "1500.5"
    rejected = await orders.place(child(symbol="BADSYM", child_id="c2"), recv_ts=11)
    assert rejected.status == "REJECTED" and "Invalid `tradingsymbol`" in (rejected.reason or "")


async def test_place_order_when_token_expired_then_logs_in_again_and_succeeds(kite: KiteSession,
                                                                            venue: KiteStandIn) -> None:
    orders = KiteOrders(kite, {})
    assert (await orders.place(child(), recv_ts=1)).status == "ACK"
    venue.revoke_tokens()
    assert (await orders.place(child(child_id="c3"), recv_ts=2)).status == "ACK"
    assert venue.logins == 2


async def test_ticker_publishes_trades_books_and_order_reports_and_survives_a_drop(
        kite: KiteSession, venue: KiteStandIn, bus: Bus) -> None:
    seen = await collect(bus)
    orders = KiteOrders(kite, {})
    ack = await orders.place(child(), recv_ts=1)
    ticker = KiteTicker(kite, {TOKEN: "INFY"}, FeedSink(bus, "kite"), orders=orders)
    stop = asyncio.Event()
    task = asyncio.create_task(ticker.run(stop))
    await asyncio.wait_for(ticker.connected.wait(), 10)
    await eventually(lambda: len(venue.subscriptions) == 2)
    assert venue.subscriptions == [{"a": "subscribe", "v": [TOKEN]}, {"a": "mode", "v": ["full", [TOKEN]]}]
    packet = pack_full(TOKEN, ltp=157315, last_qty=5, volume=1000, close=156780, last_trade_time=1_700_000_000,
                       exchange_ts=1_700_000_001, bids=[(10, 157310, 2), (20, 157300, 3)], asks=[(7, 157320, 1)])
    await venue.push(message(packet))
    await venue.push(b"\x00")                                    # heartbeat
    await venue.push(struct.pack(">HH", 1, 30) + b"\x00" * 30)   # no such packet size
    await venue.push({"type": "order", "data": {"order_id": ack.venue_order_id, "status": "COMPLETE",
                                                "filled_quantity": 10, "average_price": 1500.5}})
    await eventually(lambda: len(seen()) >= 4)
    trades = [e for e in seen() if isinstance(e, Trade)]
    books = [e for e in seen() if isinstance(e, BookSnapshot)]
    assert trades[0].price == Decimal("1573.15") and trades[0].quantity == 5 and trades[0].symbol == "INFY"
    assert books[0].bids == [(Decimal("1573.1"), Decimal(10)), (Decimal("1573"), Decimal(20))]
    assert books[0].asks == [(Decimal("1573.2"), Decimal(7))]
    assert [e.status for e in seen() if isinstance(e, ExecutionReport)] == ["FILLED"]
    letters = [e for e in seen() if isinstance(e, DeadLetter)]
    assert len(letters) == 1 and "packet length 30" in letters[0].reason and ticker.stats.heartbeats == 1
    await drop_ticker(venue)
    await eventually(lambda: venue.ws_connects == 2 and len(venue.sockets) == 1)
    await venue.push(message(packet))                            # the same trade again: the same event id
    await eventually(lambda: len(seen()) >= 5)
    assert len({t.id for t in seen() if isinstance(t, Trade)}) == 1
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_cancel_unknown_child_is_refused_by_name(kite: KiteSession) -> None:
    orders = KiteOrders(kite, {})
    with pytest.raises(OrderMappingError, match="child_id nope"):
        await orders.cancel(ChildCancel(id="x", ts=1, order_id="p", child_id="nope", account="ACC1", venue="kite",
                                        reason="user"))


async def test_ticker_logs_never_carry_the_access_token(kite: KiteSession, venue: KiteStandIn, bus: Bus,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    ticker = KiteTicker(kite, {TOKEN: "INFY"}, FeedSink(bus, "kite"), max_backoff_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(ticker.run(stop))
    await asyncio.wait_for(ticker.connected.wait(), 10)
    token = await kite.token()
    venue.revoke_tokens()                  # the next handshake is refused: 403, then a fresh login
    await drop_ticker(venue)
    await eventually(lambda: venue.ws_connects == 2 and venue.logins == 2)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert token not in caplog.text and CREDS.password not in caplog.text
