"""Binance live: recorded streams through a protocol stand-in, with a gap, a dropped connection, bad input, orders."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from events import BookDelta, BookSnapshot, BookTop, Bus, ChildCancel, ChildOrder, DeadLetter, Trade
from processors.aggregator.book import levels
from processors.aggregator.book_events import from_scaled
from processors.connector.binance.live import BinanceFeed, BinanceUrls, stream_url
from processors.connector.binance.orders import BinanceOrderError, BinanceOrders, order_params
from processors.connector.credentials import BinanceCredentials
from processors.connector.sink import FeedSink
from tests.conftest import eventually
from tests.connectors.binance_standin import BinanceStandIn, make_app
from tests.connectors.conftest import collect, serve

SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
CREDS = BinanceCredentials(api_key="test-api-key", api_secret="test-api-secret")
TRUNCATED = '{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":16339985'
WRONG_TYPE = ('{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998513000,"s":"NKNUSDT","a":"x",'
              '"p":"0.35","q":"1","f":1,"l":1,"T":1633998513000,"m":true}}')


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def test_stream_url_names_every_symbol_stream() -> None:
    url = stream_url("ws://h:1", ["NKNUSDT"], ["trade", "depth@100ms"])
    assert url == "ws://h:1/stream?streams=nknusdt@trade/nknusdt@depth@100ms"


def book_levels(feed: BinanceFeed, symbol: str, depth: int) -> tuple[list, list]:
    book = feed.books[symbol].sync.book
    as_dec = [[(from_scaled(p, 8), from_scaled(s, 8)) for p, s in levels(book, bid=bid, depth=depth)]
              for bid in (True, False)]
    return as_dec[0], as_dec[1]


def venue_levels(venue: BinanceStandIn, symbol: str, depth: int) -> tuple[list, list]:
    snap = venue.books[symbol].snapshot(depth)
    return ([(Decimal(p), Decimal(s)) for p, s in snap["bids"]], [(Decimal(p), Decimal(s)) for p, s in snap["asks"]])


async def test_feed_syncs_books_resyncs_after_gap_and_reconnect_and_dead_letters_bad_input(
        http: aiohttp.ClientSession, bus: Bus) -> None:
    venue = BinanceStandIn(CREDS.api_key, CREDS.api_secret, drop={54}, cut_after=150, lost_on_cut=5,
                           inject={20: TRUNCATED, 30: WRONG_TYPE})
    seen = await collect(bus)
    async with serve(make_app(venue)) as base:
        feed = BinanceFeed(http, BinanceUrls(ws=base.replace("http", "ws"), rest=base), SYMBOLS,
                           FeedSink(bus, "binance"), max_backoff_s=0.2, snapshot_retry_s=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(feed.run(stop))
        await asyncio.wait_for(venue.finished.wait(), 30)
        await eventually(lambda: feed.stats.messages == venue.sent
                         and all(feed.synced(s) for s in SYMBOLS), message="every book synced")
        await eventually(lambda: all(book_levels(feed, s, 50) == venue_levels(venue, s, 50) for s in SYMBOLS),
                         message="local books equal the venue's")
        await eventually(lambda: len(seen()) >= feed.stats.events + feed.stats.rejected, message="all published")
        stop.set()
        await asyncio.wait_for(task, 10)
    assert venue.connects == 2 and feed.stats.connects == 2                    # reconnected after the cut
    assert feed.stats.gaps >= 1                                                # the dropped diff was noticed
    assert venue.snapshot_requests.count("NKNUSDT") >= 3                       # start, gap, reconnect
    assert all(venue.snapshot_requests.count(s) >= 2 for s in SYMBOLS)          # every book resynced on reconnect
    letters = [e for e in seen() if isinstance(e, DeadLetter)]
    assert feed.stats.rejected == 2 and len(letters) == 2
    assert all(letter.subject == "binance.ws" and "malformed" in letter.reason for letter in letters)
    assert {letter.payload for letter in letters} == {TRUNCATED, WRONG_TYPE}
    kinds = {type(e) for e in seen()}
    assert {BookDelta, BookSnapshot, BookTop, Trade} <= kinds
    deltas = [e for e in seen() if isinstance(e, BookDelta)]
    assert len(deltas) == len({d.id for d in deltas})
    assert not any(d.first_update_id == json.loads(venue.messages[54])["data"]["U"] for d in deltas)


def child(**overrides: object) -> ChildOrder:
    fields: dict[str, object] = dict(id="e1", ts=1, order_id="parent-1", child_id="0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                                     account="ACC1", venue="binance", symbol="NKNUSDT", side="BUY",
                                     quantity=Decimal("100"), limit_price=Decimal("0.36"))
    fields.update(overrides)
    return ChildOrder(**fields)  # type: ignore[arg-type]


def test_order_params_map_child_to_binance_fields() -> None:
    assert order_params(child()) == [("symbol", "NKNUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
                                     ("quantity", "100"), ("price", "0.36"),
                                     ("newClientOrderId", "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
                                     ("newOrderRespType", "FULL")]
    assert ("type", "MARKET") in order_params(child(limit_price=None))
    with pytest.raises(BinanceOrderError, match="time_in_force DAY"):
        order_params(child(time_in_force="DAY"))


async def test_signed_order_verified_by_venue_fills_and_cancel_and_status_map_to_reports(
        http: aiohttp.ClientSession) -> None:
    venue = BinanceStandIn(CREDS.api_key, CREDS.api_secret)
    async with serve(make_app(venue)) as base:
        orders = BinanceOrders(http, base, CREDS)
        filled = await orders.place(child(), recv_ts=5)
        assert venue.signed_ok == 1
        assert [r.status for r in filled] == ["ACK", "FILLED"]
        best_ask = min(venue.books["NKNUSDT"].asks)
        assert filled[1].last_price == best_ask and filled[1].last_quantity == 100 and filled[1].fee_currency == "BNB"
        resting = child(child_id="0192a1b2-c3d4-7e5f-8a9b-000000000002", limit_price=Decimal("0.30"))
        assert [r.status for r in await orders.place(resting, recv_ts=6)] == ["ACK"]
        assert await orders.status(resting.child_id) == []
        cancelled = await orders.cancel(ChildCancel(id="x", ts=7, order_id="parent-1", child_id=resting.child_id,
                                                    account="ACC1", venue="binance", reason="user"))
        assert [r.status for r in cancelled] == ["CANCELLED"] and cancelled[0].venue_order_id == "1001"
        sent = venue.order_requests
        assert await orders.place(child(), recv_ts=8) == [] and venue.order_requests == sent  # a redelivery
        forged = BinanceOrders(http, base, BinanceCredentials(api_key=CREDS.api_key, api_secret="wrong-secret"))
        refused = await forged.place(child(child_id="c-3"), recv_ts=9)
        assert refused[0].status == "REJECTED" and "-1022" in (refused[0].reason or "")
        assert "wrong-secret" not in (refused[0].reason or "")
        stale = BinanceOrders(http, base, CREDS, clock_ms=lambda: 1_000)
        assert "-1021" in ((await stale.place(child(child_id="c-4"), recv_ts=10))[0].reason or "")


async def test_diff_that_crosses_the_book_is_dead_lettered_and_the_book_resynced(
        http: aiohttp.ClientSession, bus: Bus) -> None:
    venue = BinanceStandIn(CREDS.api_key, CREDS.api_secret)
    seen = await collect(bus)
    async with serve(make_app(venue)) as base:
        feed = BinanceFeed(http, BinanceUrls(ws="ws://127.0.0.1:9", rest=base), ["NKNUSDT"], FeedSink(bus, "binance"),
                           snapshot_retry_s=0.05)
        last = venue.books["NKNUSDT"].last_update_id
        first = {"stream": "nknusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1, "s": "NKNUSDT", "U": last + 1,
                                                           "u": last + 1, "b": [], "a": []}}
        await feed.on_text(json.dumps(first))
        await eventually(lambda: feed.synced("NKNUSDT"), message="synced from the snapshot")
        best_ask = min(venue.books["NKNUSDT"].asks)
        crossing = {"stream": "nknusdt@depth@100ms",
                    "data": {"e": "depthUpdate", "E": 2, "s": "NKNUSDT", "U": last + 2, "u": last + 2,
                             "b": [[f"{best_ask + Decimal('0.01'):f}", "5"]], "a": []}}
        await feed.on_text(json.dumps(crossing))
        assert feed.stats.crosses == 1 and not feed.synced("NKNUSDT")
        await eventually(lambda: any(isinstance(e, DeadLetter) for e in seen()), message="dead letter")
        await eventually(lambda: venue.snapshot_requests.count("NKNUSDT") == 2, message="resync requested")
    [letter] = [e for e in seen() if isinstance(e, DeadLetter)]
    assert "crosses the NKNUSDT book" in letter.reason and letter.source == "binance"
