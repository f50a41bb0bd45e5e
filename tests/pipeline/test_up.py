"""`sq up` on a fresh data dir, as a newcomer runs it: ready means tradable, and no event is stamped in the future.

One `sq up` (a real process with its embedded broker, every processor and the demo replay) serves
every test, in file order: the first places MARKET orders the moment the banner appears, the second
lets the stack run about a minute with orders working, then reads the WAL; the third checks the
trade reports and the order-record export of that run against the WAL.
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events import ExecutionReport, TradeReported, encode, free_port
from events.subjects import STREAMS, subject_for
from gateway.up import BACKGROUND, BACKGROUND_NICENESS, DEFAULTS, MARKET_FILES, SAMPLES
from gateway.up_ready import demo_markets
from gateway.users import UserStore
from processors.reporting.core import ReportingState, is_fill
from processors.reporting.core import decide as reporting_decide
from processors.reporting.core import evolve as reporting_evolve
from processors.reporting.orders import ORDER_EVENT_TYPES
from processors.reporting.runner import wanted as reporting_wanted
from store.follow import history, last_recorded
from tests.conftest import REPO_ROOT, eventually

BANNER = "ShrivenQuant is up"
FINISHED = ("FILLED", "REJECTED", "CANCELLED", "EXPIRED")
BANNER_TIMEOUT_S = 240.0
RUN_S = 60.0                  # how long the stack runs before the WAL is checked
# An event may be stamped after the broker stored it by at most this: a simulated venue stamps a
# report at the child's time plus the venue's latency (the slowest default venue: 15 ms), which
# can be later than the moment it is published; plus 5 ms for a timer that wakes a little early.
CLOCK_SLACK_NS = 5_000_000
TOLERANCE_NS = max(venue["latency_ns"] for venue in
                   tomllib.loads((DEFAULTS / "execution.toml").read_text())["venues"]) + CLOCK_SLACK_NS


@dataclass
class Up:
    """A running `sq up`: where it lives and what it printed."""

    process: subprocess.Popen[str]
    data_dir: Path
    base: str
    lines: list[str] = field(default_factory=list)
    banner: threading.Event = field(default_factory=threading.Event)
    banner_at: float = 0.0
    headers: dict[str, str] | None = None

    def read(self) -> None:
        """Collect stdout lines (a thread), noting when the banner appears."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith(BANNER) and not self.banner.is_set():
                self.banner_at = time.monotonic()
                self.banner.set()

    async def login(self, session: aiohttp.ClientSession) -> dict[str, str]:
        """Bearer headers for the demo user (password and TOTP seed from the data dir), kept for the next test."""
        if self.headers is not None:
            return self.headers
        password = (self.data_dir / "secrets" / "demo-password").read_text().strip()
        store = UserStore(self.data_dir / "secrets")
        while True:
            body = {"username": "demo", "password": password, "totp": store.totp_now("demo")}
            async with session.post(f"{self.base}/v1/auth/login", json=body) as response:
                if response.status == 200:
                    self.headers = {"Authorization": f"Bearer {(await response.json())['access_token']}"}
                    return self.headers
                # A code already used in this 30 s window: wait for the next one.
                assert response.status == 401, await response.text()
                await asyncio.sleep(1)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """`sq up --data-dir FRESH --http-port FREE`, until its banner (or fail with its output)."""
    data_dir = tmp_path_factory.mktemp("sq-up")
    port = free_port()
    errors = (data_dir / "up.stderr").open("w")
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "up", "--data-dir", str(data_dir),
                                "--http-port", str(port)], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=errors,
                               text=True)
    running = Up(process, data_dir, f"http://127.0.0.1:{port}")
    started = time.monotonic()
    reader = threading.Thread(target=running.read, daemon=True)
    reader.start()
    try:
        if not running.banner.wait(BANNER_TIMEOUT_S):
            pytest.fail(f"no banner within {BANNER_TIMEOUT_S:.0f}s; sq up printed:\n{''.join(running.lines)}")
        print(f"sq up printed its banner {running.banner_at - started:.1f} s after it started")
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        errors.close()
        reader.join(timeout=10)


async def _order(session: aiohttp.ClientSession, up: Up, body: dict[str, object]) -> str:
    async with session.post(f"{up.base}/v1/orders", json=body, headers=await up.login(session)) as response:
        answer = await response.json()
        assert response.status == 202, answer
        return str(answer["order_id"])


async def _status(session: aiohttp.ClientSession, up: Up, order_id: str) -> dict[str, object]:
    async with session.get(f"{up.base}/v1/orders/{order_id}", headers=await up.login(session)) as response:
        if response.status == 404:  # not folded into the projections yet
            return {}
        assert response.status == 200, await response.text()
        body: dict[str, object] = await response.json()
        return body


def test_up_when_the_banner_appears_then_a_market_order_on_every_demo_symbol_fills(up: Up) -> None:
    books, _ = demo_markets(SAMPLES / name for name in MARKET_FILES)
    symbols = [symbol for _, symbol in books]
    assert len(symbols) >= 4

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ids = {symbol: await _order(session, up, {"account": "ACC1", "client_order_id": f"first-{symbol}",
                                                      "symbol": symbol, "side": "BUY", "quantity": "10",
                                                      "algo": {"kind": "MARKET"}})
                   for symbol in symbols}
            # Placed the moment the banner appeared: the fixture hands over as soon as it reads it.
            done: dict[str, dict[str, object]] = {}

            async def all_finished() -> bool:
                for symbol, order_id in ids.items():
                    body = await _status(session, up, order_id)
                    if body.get("status") in FINISHED:
                        done[symbol] = body
                return len(done) == len(ids)

            await eventually(all_finished, timeout=60, interval=0.2, message="every first order finished")
            assert {symbol: body["status"] for symbol, body in done.items()} == dict.fromkeys(symbols, "FILLED"), \
                {symbol: (body.get("status"), body.get("decision")) for symbol, body in done.items()}

    asyncio.run(scenario())


def test_up_runs_the_order_path_at_its_own_priority_and_every_other_process_niced_below_it(up: Up) -> None:
    children = Path(f"/proc/{up.process.pid}/task/{up.process.pid}/children").read_text().split()
    niceness: dict[str, int] = {}
    for pid in map(int, children):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if "processor" in argv:
            # The bars replay is the connector given an --interval (gateway.up names it connector-bars).
            name = "connector-bars" if "--interval" in argv else argv[argv.index("processor") + 1]
            niceness[name] = os.getpriority(os.PRIO_PROCESS, pid)
    own = os.getpriority(os.PRIO_PROCESS, up.process.pid)
    assert niceness == {name: min(19, own + BACKGROUND_NICENESS) if name in BACKGROUND else own
                        for name in niceness}, niceness
    assert {"risk", "router", "venue-sim", "recorder", "portfolio", "reporting"} <= set(niceness), niceness


def test_up_when_run_for_a_minute_then_no_recorded_event_is_stamped_after_the_broker_stored_it(up: Up) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            twap = await _order(session, up, {"account": "ACC1", "client_order_id": "minute-twap",
                                              "symbol": "NKNUSDT", "side": "BUY", "quantity": "300",
                                              "limit_price": "0.36",
                                              "algo": {"kind": "TWAP", "duration_s": 30, "slices": 6}})

            seen: list[dict[str, object]] = [{}]

            async def a_minute_with_the_twap_done() -> bool:
                seen[0] = await _status(session, up, twap)
                return seen[0].get("status") in FINISHED and time.monotonic() - up.banner_at >= RUN_S

            await eventually(a_minute_with_the_twap_done, timeout=RUN_S + 90, interval=0.5,
                             message="a minute of sq up with the TWAP finished")
            assert seen[0]["status"] == "FILLED", seen[0]

    asyncio.run(scenario())
    wal = up.data_dir / "wal"
    names = [spec.name for spec in STREAMS]
    envelopes = list(history(wal, names, {}, until=last_recorded(wal, names), source="test-up"))
    kinds = {type(envelope.event).__name__ for envelope in envelopes}
    assert {"Trade", "BookTop", "Bar", "OrderIntent", "ChildOrder", "ExecutionReport"} <= kinds, kinds
    ahead = [(type(e.event).__name__, e.subject, (e.event.ts - e.stored_ts) / 1e6)
             for e in envelopes if e.event.ts > e.stored_ts + TOLERANCE_NS]
    lead = max(envelopes, key=lambda e: e.event.ts - e.stored_ts)
    print(f"{len(envelopes)} events; the most ahead of its broker time: {type(lead.event).__name__} on "
          f"{lead.subject}, {(lead.event.ts - lead.stored_ts) / 1e6:.3f} ms (tolerance {TOLERANCE_NS / 1e6:.0f} ms)")
    assert ahead == [], f"{len(ahead)} of {len(envelopes)} events stamped more than " \
                        f"{TOLERANCE_NS / 1e6:.0f} ms after the broker stored them (type, subject, ms): {ahead[:20]}"


def test_up_then_the_trade_reports_and_the_order_record_export_agree_with_the_wal_event_for_event(
        up: Up, tmp_path: Path) -> None:
    wal, streams = up.data_dir / "wal", ["SQ_TRADING"]

    def trading() -> list[Any]:
        return [e.event for e in history(wal, streams, {}, until=last_recorded(wal, streams), source="test-up")]

    def fills_and_reports() -> tuple[set[str], set[str]]:
        log = trading()
        return ({e.id for e in log if isinstance(e, ExecutionReport) and is_fill(e)},
                {e.report_id for e in log if isinstance(e, TradeReported)})

    async def every_fill_reported() -> None:
        await eventually(lambda: (lambda f, r: bool(f) and f == r)(*fills_and_reports()), timeout=30,
                         message="a trade report in the WAL for every fill in it, and none other")

    asyncio.run(every_fill_reported())
    log = trading()
    reports = [e for e in log if isinstance(e, TradeReported)]
    assert len(reports) == len({r.report_id for r in reports}), "each fill reported once"
    # The live service's reports are what its core decides from the same log, byte for byte.
    state, offline = ReportingState(), []
    for event in log:
        if reporting_wanted(subject_for(event)):
            offline += reporting_decide(state, event)
            state = reporting_evolve(state, event)
    assert [encode(r) for r in reports] == [encode(r) for r in offline]
    assert {r.algo for r in reports} >= {"MARKET", "TWAP"} and all(r.decision_id for r in reports)

    # `sq report orders`, run as the user runs it beside the live stack, holds one record per order event.
    out = tmp_path / "orders.csv"
    subprocess.run([sys.executable, "-m", "gateway.cli", "report", "orders", "--data-dir", str(up.data_dir),
                    "--format", "csv", "--out", str(out)], cwd=REPO_ROOT, check=True, capture_output=True)
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    last = max(int(row["wal_seq"]) for row in rows)
    recorded = [e for e in history(wal, streams, {}, until={"SQ_TRADING": last}, source="test-up")
                if isinstance(e.event, ORDER_EVENT_TYPES)]
    assert [(int(r["wal_seq"]), r["event_id"], r["event_type"]) for r in rows] == \
           [(e.seq, e.event.id, type(e.event).__name__) for e in recorded]
    fill_rows = {r["event_id"]: r for r in rows if r["traded_quantity"]}
    assert set(fill_rows) == {r.report_id for r in reports}, "the demo's orders are done: no fill after the export"
    for report in reports:
        row = fill_rows[report.report_id]
        assert (D(row["traded_quantity"]), D(row["transaction_price"]), row["decision_id"], row["routing_strategy"]) == \
               (report.quantity, report.price, report.decision_id, report.algo)
