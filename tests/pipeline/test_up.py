"""`sq up` on a fresh data dir, as a newcomer runs it: ready means tradable, and no event is stamped in the future.

One `sq up` (a real process with its embedded broker, every processor and the demo replay) serves
both tests, in file order: the first places MARKET orders the moment the banner appears, the second
lets the stack run about a minute with orders working, then reads the WAL.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from events import free_port
from events.subjects import STREAMS
from gateway.up import DEFAULTS, MARKET_FILES, SAMPLES
from gateway.up_ready import demo_markets
from gateway.users import UserStore
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
