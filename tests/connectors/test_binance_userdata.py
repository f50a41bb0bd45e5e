"""Binance order lifecycle over the user-data stream: resting fills, a cut stream, REST/stream dedupe, fallback, rotation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import msgspec
import pytest

from events import Bus, ChildOrder, ExecutionReport
from events.codec import AnyEvent
from events.ids import derived_id
from events.portfolio import VenuePositionsReported
from events.trading import LimitAlgo, ParentOrderCompleted
from processors.connector.binance.executions import ExecutionBook, base_asset
from processors.connector.binance.orders import BinanceOrders
from processors.connector.binance.userdata import UserDataStream, UserDataUrls, subscribe_request
from processors.connector.credentials import BinanceCredentials
from processors.connector.sink import FeedSink
from processors.portfolio import core as portfolio_core
from processors.router.state import RouterState
from tests.conftest import eventually
from tests.connectors.binance_standin import BinanceStandIn, make_app
from tests.connectors.binance_userdata_standin import Account, add_routes
from tests.connectors.conftest import collect, serve
from tests.cores import router_step
from tests.router.factories import accept, intent, router_config, venue

CREDS = BinanceCredentials(api_key="ud-api-key-7f3a", api_secret="ud-api-secret-91c2")
D = Decimal


@dataclass
class Rig:
    """The stand-in with an account, a connector's orders client and user-data stream, and what reached the bus."""

    venue: BinanceStandIn
    account: Account
    orders: BinanceOrders
    stream: UserDataStream
    sink: FeedSink
    seen: Callable[[], list[AnyEvent]]
    stop: asyncio.Event

    def reports(self) -> list[ExecutionReport]:
        unique = {e.id: e for e in self.seen() if isinstance(e, ExecutionReport)}
        return list(unique.values())

    def fills(self) -> list[ExecutionReport]:
        return [r for r in self.reports() if r.status in ("PARTIAL", "FILLED")]


async def make_rig(bus: Bus, http: aiohttp.ClientSession, base: str, venue_: BinanceStandIn, account: Account,
                   **stream_kw: object) -> Rig:
    seen = await collect(bus)
    sink = FeedSink(bus, "binance")
    orders = BinanceOrders(http, base, CREDS, book=ExecutionBook())
    ws = base.replace("http", "ws")
    stream = UserDataStream(http, orders, sink, account="ACC1", symbols=["NKNUSDT"],
                            urls=UserDataUrls(ws_api=f"{ws}/ws-api/v3", ws_stream=ws), max_backoff_s=0.1,
                            **stream_kw)  # type: ignore[arg-type]
    return Rig(venue_, account, orders, stream, sink, seen, asyncio.Event())


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def standin() -> tuple[BinanceStandIn, Account]:
    venue_ = BinanceStandIn(CREDS.api_key, CREDS.api_secret)
    account = Account(venue_, {"NKNUSDT": ("NKN", "USDT")},
                      balances={"USDT": [D("1000"), D(0)], "NKN": [D(0), D(0)], "BNB": [D("1"), D(0)]})
    return venue_, account


def app_of(venue_: BinanceStandIn, account: Account):  # type: ignore[no-untyped-def]
    app = make_app(venue_)
    add_routes(app, account)
    return app


def router_child() -> tuple[RouterState, ChildOrder]:
    state = RouterState(router_config(venue("binance", market=None, symbols=["NKNUSDT"])))
    order = intent("rest-1", "100", venue="binance", symbol="NKNUSDT", limit="0.30", algo=LimitAlgo())
    state, _ = router_step(state, order)
    state, out = router_step(state, accept(order))
    [child] = [e for e in out if isinstance(e, ChildOrder)]
    return state, child


def fold_parent(state: RouterState, reports: list[ExecutionReport]) -> list[ParentOrderCompleted]:
    done = []
    for report in sorted(reports, key=lambda r: (r.cum_quantity, r.status != "ACK")):
        state, out = router_step(state, report)
        done += [e for e in out if isinstance(e, ParentOrderCompleted)]
    return done


def test_subscribe_request_signs_parameters_sorted_by_name() -> None:
    request = subscribe_request("key", "secret", timestamp_ms=1_700_000_000_000, request_id="r1")
    assert request["method"] == "userDataStream.subscribe.signature" and request["id"] == "r1"
    params = request["params"]
    assert list(params) == ["apiKey", "recvWindow", "timestamp", "signature"]
    import hashlib
    import hmac
    payload = "apiKey=key&recvWindow=5000&timestamp=1700000000000"
    assert params["signature"] == hmac.new(b"secret", payload.encode(), hashlib.sha256).hexdigest()
    assert base_asset("NKNUSDT") == "NKN" and base_asset("LRCBTC") == "LRC" and base_asset("USDT") is None


async def test_resting_limit_filled_in_two_parts_over_the_stream_fills_parent_and_matches_balance(
        bus: Bus, http: aiohttp.ClientSession, standin: tuple[BinanceStandIn, Account],
        caplog: pytest.LogCaptureFixture) -> None:
    venue_, account = standin
    router, child = router_child()
    async with serve(app_of(venue_, account)) as base:
        rig = await make_rig(bus, http, base, venue_, account)
        task = asyncio.create_task(rig.stream.run(rig.stop))
        await asyncio.wait_for(rig.stream.subscribed.wait(), 10)
        await rig.sink.emit(await rig.orders.place(child, recv_ts=child.ts))
        await account.fill(child.child_id, "40", commission="0.00003")
        await eventually(lambda: [r.status for r in rig.fills()] == ["PARTIAL"], message="first part")
        await account.fill(child.child_id, "60", commission="0.00004")
        await eventually(lambda: any(r.status == "FILLED" for r in rig.reports()), message="second part")
        await eventually(lambda: any(isinstance(e, VenuePositionsReported) and e.positions.get("NKNUSDT") == 100
                                     for e in rig.seen()), message="balance reported")
        rig.stop.set()
        await asyncio.wait_for(task, 10)
    fills = sorted(rig.fills(), key=lambda r: r.cum_quantity)
    assert [(f.status, f.last_quantity, f.last_price, f.cum_quantity, f.fee, f.fee_currency) for f in fills] == [
        ("PARTIAL", D(40), D("0.30"), D(40), D("0.00003"), "BNB"),
        ("FILLED", D(60), D("0.30"), D(100), D("0.00004"), "BNB")]
    assert all(f.liquidity == "MAKER" and f.venue_order_id == "1000" for f in fills)
    [done] = fold_parent(router, rig.reports())
    assert done.status == "FILLED" and done.filled_quantity == 100 and done.fees == D("0.00007")
    assert done.average_price == D("0.30")
    portfolio = portfolio_core.PortfolioState()
    for report in rig.reports():
        portfolio = portfolio_core.evolve(portfolio, report)
    positions = [e for e in rig.seen() if isinstance(e, VenuePositionsReported)]
    assert portfolio.held_at("ACC1", "binance") == {"NKNUSDT": account.balance("NKN")} == {"NKNUSDT": D(100)}
    assert positions[-1].positions == {"NKNUSDT": D(100)} and positions[-1].account == "ACC1"
    text = caplog.text + "".join(msgspec.json.encode(e).decode() for e in rig.seen())
    assert CREDS.api_secret not in text and CREDS.api_key not in text


async def test_stream_cut_between_fills_then_second_fill_recovered_once_after_reconnect(
        bus: Bus, http: aiohttp.ClientSession, standin: tuple[BinanceStandIn, Account]) -> None:
    venue_, account = standin
    router, child = router_child()
    async with serve(app_of(venue_, account)) as base:
        rig = await make_rig(bus, http, base, venue_, account)
        task = asyncio.create_task(rig.stream.run(rig.stop))
        await asyncio.wait_for(rig.stream.subscribed.wait(), 10)
        await rig.sink.emit(await rig.orders.place(child, recv_ts=child.ts))
        await account.fill(child.child_id, "40", commission="0.00003")
        await eventually(lambda: len(rig.fills()) == 1, message="first part on the stream")
        account.refuse_connections = True            # the venue is unreachable for a while
        await account.drop()
        await eventually(lambda: not account.sockets and not rig.stream.subscribed.is_set(), message="down")
        await account.fill(child.child_id, "60", commission="0.00004")   # nobody hears it
        assert [e["x"] for e in account.lost if e["e"] == "executionReport"] == ["TRADE"]
        account.refuse_connections = False
        await eventually(lambda: any(r.status == "FILLED" for r in rig.reports()), message="recovered")
        rig.stop.set()
        await asyncio.wait_for(task, 10)
    fills = sorted(rig.fills(), key=lambda r: r.cum_quantity)
    assert [(f.status, f.last_quantity, f.cum_quantity, f.fee) for f in fills] == [
        ("PARTIAL", D(40), D(40), D("0.00003")), ("FILLED", D(60), D(100), D("0.00004"))]
    published = [e for e in rig.seen() if isinstance(e, ExecutionReport) and e.status in ("PARTIAL", "FILLED")]
    assert len(published) == 2                     # nothing published twice, even before the broker's dedupe
    assert rig.stream.stats.connects >= 2 and rig.stream.stats.recovered >= 1
    [done] = fold_parent(router, rig.reports())
    assert done.status == "FILLED" and done.filled_quantity == 100 and done.fees == D("0.00007")


async def test_fill_in_the_rest_answer_and_on_the_stream_counts_once(
        bus: Bus, http: aiohttp.ClientSession, standin: tuple[BinanceStandIn, Account]) -> None:
    venue_, account = standin
    _, child = router_child()
    crossing = msgspec.structs.replace(child, limit_price=D("1"))   # at or above the best ask: fills at once
    async with serve(app_of(venue_, account)) as base:
        rig = await make_rig(bus, http, base, venue_, account)
        task = asyncio.create_task(rig.stream.run(rig.stop))
        await asyncio.wait_for(rig.stream.subscribed.wait(), 10)
        await rig.sink.emit(await rig.orders.place(crossing, recv_ts=child.ts))
        await eventually(lambda: rig.stream.stats.events >= 3, message="NEW, TRADE and balances on the stream")
        rig.stop.set()
        await asyncio.wait_for(task, 10)
    published = [e for e in rig.seen() if isinstance(e, ExecutionReport)]
    assert [r.status for r in published] == ["ACK", "FILLED"]
    assert rig.orders.book.duplicates == 1          # the stream's copy of the REST answer's fill


async def test_listen_key_fallback_when_the_websocket_api_refuses_and_keepalive_is_sent(
        bus: Bus, http: aiohttp.ClientSession, standin: tuple[BinanceStandIn, Account]) -> None:
    venue_, account = standin
    account.refuse_signature_method = True
    _, child = router_child()
    async with serve(app_of(venue_, account)) as base:
        rig = await make_rig(bus, http, base, venue_, account, keepalive_s=0.2)
        task = asyncio.create_task(rig.stream.run(rig.stop))
        await asyncio.wait_for(rig.stream.subscribed.wait(), 10)
        assert rig.stream.stats.mode == "listen_key" and account.refused_subscribes == 1
        await rig.sink.emit(await rig.orders.place(child, recv_ts=child.ts))
        await account.fill(child.child_id, "100", commission="0.00007")
        await eventually(lambda: any(r.status == "FILLED" for r in rig.reports()), message="fill via listenKey")
        await eventually(lambda: account.keepalives >= 1, message="keepalive")
        rig.stop.set()
        await asyncio.wait_for(task, 10)


async def test_connection_rotated_before_its_limit_loses_and_doubles_nothing(
        bus: Bus, http: aiohttp.ClientSession, standin: tuple[BinanceStandIn, Account]) -> None:
    venue_, account = standin
    _, child = router_child()
    async with serve(app_of(venue_, account)) as base:
        rig = await make_rig(bus, http, base, venue_, account, rotate_after_s=0.3)
        task = asyncio.create_task(rig.stream.run(rig.stop))
        await asyncio.wait_for(rig.stream.subscribed.wait(), 10)
        await rig.sink.emit(await rig.orders.place(child, recv_ts=child.ts))
        await account.fill(child.child_id, "40", commission="0.00003")
        await eventually(lambda: rig.stream.stats.rotations >= 2, message="rotated twice")
        await account.fill(child.child_id, "60", commission="0.00004")
        await eventually(lambda: any(r.status == "FILLED" for r in rig.reports()), message="filled")
        rig.stop.set()
        await asyncio.wait_for(task, 10)
    published = [e for e in rig.seen() if isinstance(e, ExecutionReport) and e.status in ("PARTIAL", "FILLED")]
    assert [r.cum_quantity for r in published] == [D(40), D(100)]
    assert account.subscribes >= 3


def test_execution_report_mapping_from_the_documented_payload() -> None:
    _, child = router_child()
    book = ExecutionBook()
    book.track(child)
    doc = {"e": "executionReport", "E": 1499405658658, "s": "NKNUSDT", "c": child.child_id, "S": "BUY",
           "o": "LIMIT", "f": "GTC", "q": "100.00000000", "p": "0.30000000", "P": "0.00000000", "F": "0.00000000",
           "g": -1, "C": "", "x": "NEW", "X": "NEW", "r": "NONE", "i": 4293153, "l": "0.00000000",
           "z": "0.00000000", "L": "0.00000000", "n": "0", "N": None, "T": 1499405658657, "t": -1, "I": 8641984,
           "w": True, "m": False, "M": False, "O": 1499405658657, "Z": "0.00000000", "Y": "0.00000000",
           "Q": "0.00000000", "W": 1499405658657, "V": "NONE"}
    [ack] = book.on_execution_report(doc) or []
    assert ack.status == "ACK" and ack.venue_order_id == "4293153" and ack.ts == 1499405658657 * 1_000_000
    trade = doc | {"x": "TRADE", "X": "PARTIALLY_FILLED", "l": "25.5", "L": "0.2999", "n": "0.0001", "N": "BNB",
                   "t": 77}
    [partial] = book.on_execution_report(trade) or []
    assert (partial.last_quantity, partial.last_price, partial.fee, partial.leaves_quantity) == (
        D("25.5"), D("0.2999"), D("0.0001"), D("74.5"))
    assert book.on_execution_report(trade) == [] and book.duplicates == 1
    expired = doc | {"x": "EXPIRED", "X": "EXPIRED", "C": ""}
    [end] = book.on_execution_report(expired) or []
    assert end.status == "CANCELLED" and end.cum_quantity == D("25.5") and "EXPIRED" in (end.reason or "")
    assert book.on_execution_report(doc | {"c": "someone-else", "i": 1}) is None
    assert json.dumps(doc)  # the documented payload is plain JSON


async def test_child_placed_by_an_earlier_run_is_answered_from_its_state_not_rejected(
        bus: Bus, http: aiohttp.ClientSession, standin: tuple[BinanceStandIn, Account]) -> None:
    venue_, account = standin
    _, child = router_child()
    async with serve(app_of(venue_, account)) as base:
        first = BinanceOrders(http, base, CREDS)
        assert [r.status for r in await first.place(child, recv_ts=1)] == ["ACK"]
        await account.fill(child.child_id, "40", commission="0.00003")
        restarted = BinanceOrders(http, base, CREDS)                 # its answer was lost; Binance says duplicate
        reports = await restarted.place(child, recv_ts=2)
    assert [(r.status, r.cum_quantity, r.last_price) for r in reports] == [("ACK", 0, None),
                                                                          ("PARTIAL", D(40), D("0.30"))]
    assert reports[1].id == derived_id(child.child_id, "binance:trade:1")


async def test_placement_whose_answer_is_lost_is_settled_from_the_order_state(
        standin: tuple[BinanceStandIn, Account]) -> None:
    venue_, account = standin
    _, child = router_child()
    async with serve(app_of(venue_, account)) as base, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as http:
        orders = BinanceOrders(http, base, CREDS)
        venue_.hang_next_order = True
        reports = await orders.place(child, recv_ts=1)
    assert [(r.status, r.venue_order_id) for r in reports] == [("ACK", "1000")]
    assert not orders.known[child.child_id].done and venue_.order_requests == 1
