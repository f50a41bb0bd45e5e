"""`sq processor reporting` as a real process over a real broker and recorder: a trade report per fill, once.

The order path of the recorded run (intents, decisions, children, venue reports, completions) is
published onto JetStream; the service reports its fills; it is stopped half way and restarted. The
trade reports the WAL then holds agree with its fills event for event, byte for byte with what the
core decides offline, and with the fills of the order-record export.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import aiohttp
import pytest

from events import Broker, Bus, ExecutionReport, TradeReported, encode, free_port
from processors.reporting.core import is_fill
from processors.reporting.orders import order_records
from store.follow import history, last_recorded
from store.recorder import record
from tests.conftest import REPO_ROOT, eventually
from tests.processors._recorded_run import recorded_run

ORDER_PATH = [e.event for e in recorded_run() if e.stream == "SQ_TRADING" and not isinstance(e.event, TradeReported)]
EXPECTED = {e.event.id: encode(e.event) for e in recorded_run() if isinstance(e.event, TradeReported)}


@pytest.fixture
async def wal_root(bus: Bus, tmp_path: Path) -> AsyncIterator[Path]:
    """A real recorder writing the trading stream under tmp_path/wal while the test runs."""
    stop = asyncio.Event()
    task = asyncio.create_task(record(bus, tmp_path / "wal", ["SQ_TRADING"], stop))
    yield tmp_path / "wal"
    stop.set()
    await task


def _start(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    log = (data_dir / "reporting.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "processor", "reporting", "--nats-url", url,
                             "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO_ROOT, stdout=log, stderr=log)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _get(url: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


def _recorded(wal_root: Path) -> list[object]:
    return [e.event for e in history(wal_root, ["SQ_TRADING"], {}, until=last_recorded(wal_root, ["SQ_TRADING"]),
                                     source="test")]


async def _ready(port: int) -> None:
    async def ready() -> bool:
        return (await _get(f"http://127.0.0.1:{port}/readyz"))[0] == 200

    await eventually(ready, timeout=60, message="reporting /readyz 200")


async def test_reporting_service_reports_every_fill_once_across_a_restart_as_the_core_decides_offline(
        broker: Broker, bus: Bus, wal_root: Path) -> None:
    data_dir, port = wal_root.parent, free_port()
    half = next(i for i, e in enumerate(ORDER_PATH) if i >= len(ORDER_PATH) // 2 and isinstance(e, ExecutionReport))
    first_fills = {e.id for e in ORDER_PATH[:half] if isinstance(e, ExecutionReport) and is_fill(e)}
    assert first_fills and len(first_fills) < len(EXPECTED)

    def reported() -> dict[str, bytes]:
        return {e.id: encode(e) for e in _recorded(wal_root) if isinstance(e, TradeReported)}

    service = _start(broker.url, data_dir, port)
    try:
        await _ready(port)
        assert (await _get(f"http://127.0.0.1:{port}/healthz"))[0] == 200
        await bus.publish_batch(ORDER_PATH[:half])
        await eventually(lambda: {r.report_id for r in _recorded(wal_root) if isinstance(r, TradeReported)}
                         >= first_fills, message="the first half's fills reported")
        status, metrics = await _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "sq_reporting_trade_reports_total" in metrics
    finally:
        _stop(service)
    # While it is down the rest of the order path arrives; the restarted service reports it, and nothing twice.
    await bus.publish_batch(ORDER_PATH[half:])
    service = _start(broker.url, data_dir, port)
    try:
        await _ready(port)
        await eventually(lambda: set(reported()) == set(EXPECTED), message="every fill reported")
    finally:
        _stop(service)

    log = _recorded(wal_root)
    reports = [e for e in log if isinstance(e, TradeReported)]
    assert len(reports) == len({r.id for r in reports}) == len(EXPECTED), "each fill reported exactly once"
    assert {r.id: encode(r) for r in reports} == EXPECTED, "live reports are byte for byte the offline core's"
    fills = [e for e in log if isinstance(e, ExecutionReport) and is_fill(e)]
    assert sorted(r.report_id for r in reports) == sorted(f.id for f in fills)
    # The order-record export of the same WAL: its fill records are the reported fills, field for field.
    exported = {row["event_id"]: row for row in order_records(data_dir) if row["traded_quantity"] is not None}
    assert set(exported) == {r.report_id for r in reports}
    for report in reports:
        row = exported[report.report_id]
        assert (row["client_id"], row["venue"], row["instrument"], row["buy_sell"], D(row["traded_quantity"]),
                D(row["transaction_price"]), row["order_id"], row["child_id"], row["routing_strategy"],
                row["decision_id"]) == (report.account, report.venue, report.symbol,
                                        "BUYI" if report.side == "BUY" else "SELL", report.quantity,
                                        report.price, report.order_id, report.child_id, report.algo,
                                        report.decision_id)
