"""The dashboard at / driven in headless Chromium over the DevTools protocol, on the running order path:
sign in with a TOTP code, place an order from the ticket, see its fill arrive live over the WebSocket,
engage the kill switch and see the risk state change. Screenshots are kept as artefacts."""

from __future__ import annotations

import json
import time
from decimal import Decimal as D

import aiohttp

from events import Bar, derived_id
from tests.dashboard.cdp import Page
from tests.dashboard.conftest import PASSWORD, Served, Shots
from tests.pipeline.test_order_path import _market


async def _bars(served: Served, now: int) -> None:
    """Five 1m XYZ candles, as the aggregator would publish them, for the candles panel."""
    minute = 60_000_000_000
    first = now - now % minute - 5 * minute
    closes = [D("9.90"), D("10.05"), D("9.97"), D("10.12"), D("10.00")]
    opens = [D("9.95"), *closes[:-1]]
    bars = [Bar(id=derived_id("BINANCE:XYZ", "bar", first + i * minute), ts=first + (i + 1) * minute,
                venue="BINANCE", symbol="XYZ", interval="1m", open_time=first + i * minute,
                open=opens[i], high=max(opens[i], closes[i]) + D("0.05"), low=min(opens[i], closes[i]) - D("0.05"),
                close=closes[i], volume=D(12 + i), trade_count=4 + i)
            for i in range(5)]
    await served.stack.bus.publish_batch(bars)


def _js(value: object) -> str:
    return json.dumps(value)


async def _fill(page: Page, fields: dict[str, str]) -> None:
    """Type into inputs and selects by id, firing the events a user's typing would."""
    for element_id, value in fields.items():
        await page.evaluate(f"""(() => {{
            const el = document.getElementById({_js(element_id)});
            el.value = {_js(value)};
            el.dispatchEvent(new Event('input', {{bubbles: true}}));
            el.dispatchEvent(new Event('change', {{bubbles: true}}));
            return el.value;
        }})()""")


async def _click(page: Page, element_id: str) -> None:
    await page.evaluate(f"document.getElementById({_js(element_id)}).click()")


async def _text(page: Page, element_id: str) -> str:
    value = await page.evaluate(f"document.getElementById({_js(element_id)}).textContent")
    return str(value)


def _rows(table_id: str, where: str = "true") -> str:
    """JS: the text of each cell of the rows of a table's body matching `where` (a JS predicate on `r`)."""
    return (f"[...document.querySelectorAll('#{table_id} tbody tr')].filter(r => {where})"
            ".map(r => [...r.cells].map(c => c.textContent))")


async def test_page_is_served_with_a_self_only_csp_no_caching_and_its_assets(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served.base_url}/") as response:
            assert response.status == 200 and response.content_type == "text/html"
            page = await response.text()
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Cache-Control"] == "no-store"
        # No inline script or handler the CSP would refuse; everything comes from /static/.
        assert "<script>" not in page and " onclick=" not in page and " style=" not in page
        assert 'src="/static/app.js"' in page and 'href="/static/style.css"' in page
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            async with session.get(f"{served.base_url}/static/{name}") as response:
                assert response.status == 200 and response.content_type == kind
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        for missing in ("nope.js", "..%2Fapp.py", "index.html"):
            async with session.get(f"{served.base_url}/static/{missing}") as response:
                assert response.status == 404 and (await response.json())["error"] == "not_found"
        async with session.get(f"{served.base_url}/openapi.json") as response:
            assert "/" in (await response.json())["paths"]


async def test_sign_in_order_live_fill_and_kill_switch_in_headless_chromium(served: Served, page: Page,
                                                                           shots: Shots) -> None:
    started = time.monotonic()
    await _market(served.stack, time.time_ns())
    await _bars(served, time.time_ns())
    users = served.running.gateway.users
    await page.navigate(f"{served.base_url}/")
    assert await page.evaluate("!document.getElementById('login-panel').hidden")
    assert await page.evaluate("document.getElementById('dashboard').hidden")

    # A wrong code is refused and the API's {error, detail} is shown to the user.
    await _fill(page, {"login-username": "olga", "login-password": "wrong password", "login-totp": "000000"})
    await _click(page, "login-submit")
    await page.wait_for("!document.getElementById('error').hidden", message="login error shown")
    assert "unauthorized" in await _text(page, "error-text")
    await shots.take(page, "login-refused")

    await _fill(page, {"login-password": PASSWORD, "login-totp": users.totp_now("olga")})
    await _click(page, "login-submit")
    await page.wait_for("!document.getElementById('dashboard').hidden", message="dashboard shown after login")
    assert await page.evaluate("document.getElementById('error').hidden"), await _text(page, "error-text")
    assert "olga" in await _text(page, "who") and "risk" in await _text(page, "who")
    # Both the ticket (trader) and the kill switch (risk) are offered to this user.
    assert await page.evaluate("!document.getElementById('ticket').hidden")
    assert await page.evaluate("!document.getElementById('killswitch-form').hidden")
    await page.wait_for("document.getElementById('ws-status').textContent === 'live: on'",
                        message="WebSocket subscribed")
    # The token lives in memory and this tab's sessionStorage only: no cookie, no localStorage.
    assert await page.evaluate("document.cookie === '' && localStorage.length === 0")
    await shots.take(page, "signed-in")

    # A bad order: the gateway's 400 names the field, and the page shows it.
    await _fill(page, {"ticket-symbol": "XYZ", "ticket-quantity": "-5", "ticket-price": "10.50",
                       "ticket-algo": "LIMIT"})
    await _click(page, "ticket-submit")
    await page.wait_for("!document.getElementById('error').hidden", message="order error shown")
    assert "quantity" in await _text(page, "error-text")

    # A marketable limit order fills against the simulated book (ask 10.01).
    await _fill(page, {"ticket-quantity": "5"})
    await _click(page, "ticket-submit")
    await page.wait_for("document.getElementById('ticket-result').textContent.includes('accepted')",
                        message="order accepted")
    assert await page.evaluate("document.getElementById('error').hidden"), await _text(page, "error-text")
    live_fills = await page.wait_for(_rows("fills", "r.dataset.source === 'live'") + ".length && "
                                     + _rows("fills", "r.dataset.source === 'live'"),
                                     timeout=20, message="fill pushed over the WebSocket")
    _, account, symbol, side, quantity, price, venue = live_fills[0]
    assert (account, symbol, side, quantity, price) == ("ACC1", "XYZ", "BUY", "5", "10.01")
    assert venue.startswith("SIM_")
    orders = await page.wait_for(_rows("orders", "r.dataset.status === 'FILLED'") + ".length && "
                                 + _rows("orders"), timeout=10, message="order shown FILLED")
    assert orders[0][2:6] == ["XYZ", "BUY", "5", "5"]
    positions = await page.wait_for(_rows("positions", "r.dataset.symbol === 'XYZ'") + ".length && "
                                    + _rows("positions", "r.dataset.symbol === 'XYZ'"),
                                    timeout=10, message="position shown")
    assert positions[0][:4] == ["ACC1", "XYZ", "5", "10.01"]
    await page.wait_for("document.getElementById('pnl-summary').textContent.includes('ACC1')",
                        timeout=10, message="P&L chart drawn")
    await _fill(page, {"candles-symbol": "XYZ", "candles-interval": "1m"})
    await page.evaluate("document.querySelector('#candles-form button[type=submit]').click()")
    summary = await page.wait_for("(t => t.includes('bars') && t)(document.getElementById('candles-summary')"
                                  ".textContent)", timeout=10, message="candles drawn")
    assert summary.startswith("XYZ 1m: 5 bars") and "C 10" in summary
    await shots.take(page, "order-filled")

    # Kill switch for every account: the state flips, and the control event arrives live.
    await page.evaluate("window.confirm = () => true")  # the page asks before engaging
    await _fill(page, {"killswitch-reason": "dashboard drill"})
    await _click(page, "killswitch-engage")
    await page.wait_for("document.getElementById('risk-state').dataset.engaged === 'true'",
                        message="risk state shows the kill switch engaged")
    assert await _text(page, "risk-state") == "ENGAGED (all)"
    event = await page.wait_for("(document.querySelector('#risk-events li[data-type=KillSwitchEngaged]') || {})"
                                ".textContent", message="kill switch event pushed over the WebSocket")
    assert "by olga" in event and "dashboard drill" in event
    # A new order is now refused by risk, and the page shows which check refused it.
    await _fill(page, {"ticket-quantity": "1"})
    await _click(page, "ticket-submit")
    rejected = await page.wait_for(_rows("decisions", "r.cells[3].textContent.startsWith('rejected')"),
                                   timeout=15, message="refusal shown in the risk decisions")
    assert "kill_switch" in rejected[0][3]
    await page.wait_for(_rows("orders", "r.dataset.status === 'REJECTED'") + ".length", timeout=10,
                        message="order shown REJECTED")
    await shots.take(page, "kill-switch-engaged")

    assert page.problems() == []
    assert all(path.stat().st_size > 10_000 for path in shots.taken)
    assert time.monotonic() - started < 40
