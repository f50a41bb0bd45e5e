"""What a trader looks for first, in headless Chromium: the health strip (each service's readiness and lag,
from /readyz), a ten-level depth ladder of the selected book, and the TCA of a completed order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal as D

import aiohttp
import pytest
from aiohttp import web

from events import BookSnapshot, BookTop, Trade, derived_id, free_port
from events.process import bound_port, start_service_http
from gateway.server import start_gateway
from gateway.state import ReadinessConfig
from processors.aggregator.tape import summarise
from processors.runtime import host_details
from tests.conftest import eventually
from tests.dashboard.cdp import Page
from tests.dashboard.conftest import PASSWORD, Served, Shots
from tests.dashboard.test_dashboard import _click, _fill, _rows, _text
from tests.pipeline.conftest import Stack

# Twelve levels a side, a cent apart, around 10.00: the ladder shows the best ten.
BIDS = [(D("9.99") - D("0.01") * i, D(100 + i)) for i in range(12)]
ASKS = [(D("10.01") + D("0.01") * i, D(200 + i)) for i in range(12)]


@pytest.fixture
async def served_with_probes(stack: Stack) -> AsyncIterator[Served]:  # `stack` is the pipeline's fixture
    """The gateway over the running stack, its /readyz asking each processor's probe (as `sq up` sets it up)."""
    probes: list[web.AppRunner] = []
    for host in stack.hosts.values():
        probes.append(await start_service_http(0, host.caught_up.is_set, host="127.0.0.1",
                                               details=lambda host=host: host_details(host)))  # type: ignore[misc]
    services = tuple((name, f"http://127.0.0.1:{bound_port(probe)}/readyz")
                     for name, probe in zip(stack.hosts, probes, strict=True))
    port = free_port()
    running = await start_gateway(stack.bus, data_dir=stack.data_dir, host="127.0.0.1", port=port,
                                  readiness=ReadinessConfig(books=(("BINANCE", "XYZ"),), trades=(("BINANCE", "XYZ"),),
                                                            services=services))
    running.gateway.users.add("olga", PASSWORD, ["trader", "risk"], ["ACC1"])
    yield Served(f"http://127.0.0.1:{port}", running, stack)
    await running.close()
    for probe in probes:
        await probe.cleanup()


async def _deep_market(stack: Stack) -> None:
    """A twelve-level XYZ book, its top and a trade at 10.00 (with the aggregator's summary of it, which risk, the
    router and the projections read), applied by every in-process processor."""
    now = time.time_ns()
    book = BookSnapshot(id=derived_id("BINANCE:XYZ", "deep-snapshot", now), ts=now, venue="BINANCE", symbol="XYZ",
                        last_update_id=500, bids=BIDS, asks=ASKS)
    top = BookTop(id=derived_id("BINANCE:XYZ", "deep-top", now), ts=now, venue="BINANCE", symbol="XYZ",
                  last_update_id=500, bid_price=BIDS[0][0], bid_size=BIDS[0][1], ask_price=ASKS[0][0],
                  ask_size=ASKS[0][1])
    trade = Trade(id=derived_id("BINANCE:XYZ", "deep-trade", now), ts=now, venue="BINANCE", symbol="XYZ",
                  price=D("10.00"), quantity=D("3"))
    before = {name: host.applied for name, host in stack.hosts.items()}
    await stack.bus.publish_batch([book, top, trade, summarise(trade)])
    await eventually(lambda: all(host.applied >= before[name] + 2 for name, host in stack.hosts.items()),
                     message="market data applied by every processor")


async def test_health_strip_depth_ladder_and_tca_of_a_filled_order_in_headless_chromium(
        served_with_probes: Served, page: Page, shots: Shots) -> None:
    served = served_with_probes
    async with aiohttp.ClientSession() as session, session.get(f"{served.base_url}/readyz") as response:
        before = await response.json()
    # No market yet: /readyz names what it waits for.
    assert response.status == 503 and before["waiting_for"]["book"] == ["BINANCE:XYZ"]
    await _deep_market(served.stack)

    await page.navigate(f"{served.base_url}/")
    await _fill(page, {"login-username": "olga", "login-password": PASSWORD,
                       "login-totp": served.running.gateway.users.totp_now("olga")})
    await _click(page, "login-submit")
    await page.wait_for("!document.getElementById('dashboard').hidden", message="dashboard shown after login")

    # Health strip: the gateway and each processor, ready, with its lag.
    strip = await page.wait_for(
        "(items => items.length === 4 && items.every(i => i.dataset.ready === 'true') && "
        "items.map(i => [i.dataset.service, i.textContent]))"
        "([...document.querySelectorAll('#health-list li')])", timeout=20, message="every service shown ready")
    assert [name for name, _ in strip] == ["gateway", "risk", "router", "venue-sim"]
    assert all("ready · lag " in text for _, text in strip), strip
    assert (await _text(page, "health-summary")) == "ready: every market tradable"

    # Depth ladder: the selected book's best ten levels a side, best first.
    ladder = await page.wait_for(_rows("depth") + ".length === 10 && " + _rows("depth"), timeout=15,
                                 message="ten-level ladder shown")
    assert await page.evaluate("document.getElementById('depth-book').value") == "BINANCE/XYZ"
    assert ladder[0] == ["100", "9.99", "10.01", "200"]
    assert ladder[9] == ["109", "9.9", "10.1", "209"]
    assert [D(row[1]) for row in ladder] == sorted((D(row[1]) for row in ladder), reverse=True)
    assert "10 bid and 10 ask levels · spread 0.02" in await _text(page, "depth-summary")
    await shots.take(page, "health-and-depth")

    # A MARKET order from the ticket fills; its TCA shows arrival (the mid), average price and shortfall.
    await _fill(page, {"ticket-symbol": "XYZ", "ticket-quantity": "250", "ticket-price": "", "ticket-algo": "MARKET",
                       "ticket-tif": "IOC"})
    await _click(page, "ticket-submit")
    await page.wait_for("document.getElementById('ticket-result').textContent.includes('accepted')",
                        message="order accepted")
    await page.wait_for("document.querySelector('#orders button[data-tca]') !== null", timeout=20,
                        message="completed order offers its TCA")
    await page.evaluate("document.querySelector('#orders button[data-tca]').click()")
    await page.wait_for("!document.getElementById('tca').hidden", timeout=10, message="TCA shown")
    facts = {name: await _text(page, f"tca-{name}") for name in ("status", "filled", "arrival", "avg", "shortfall",
                                                                  "fees")}
    # 200 at 10.01 and 50 at 10.02: average 10.012; arrival mid 10.00; shortfall 12 bps.
    assert facts["status"] == "FILLED" and D(facts["filled"]) == 250
    assert D(facts["arrival"]) == D("10.00") and D(facts["avg"]) == D("10.012")
    assert facts["shortfall"].endswith(" bps") and D(facts["shortfall"].removesuffix(" bps")) == 12
    await shots.take(page, "tca")
    assert page.problems() == []
    assert all(path.stat().st_size > 10_000 for path in shots.taken)
