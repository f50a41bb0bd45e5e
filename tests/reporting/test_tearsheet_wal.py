"""`sq report tearsheet --account` reads the account's P&L from a real WAL through the projections."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from events.codec import encode
from events.market import Trade
from events.subjects import STREAM_MD, STREAM_TRADING, subject_for
from events.trading import ExecutionReport
from processors.aggregator.tape import summarise
from store import WalWriter

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400 * 10**9
T0 = 19_700 * DAY  # 2023-12-09T00:00Z


def _record(directory: Path, events: list) -> None:
    """Append events to one stream's WAL as the recorder would (payload, broker time, subject, type)."""
    with WalWriter.open(directory, contiguous=True) as writer:
        for event in events:
            writer.append(encode(event), ts=event.ts, subject=subject_for(event), type=type(event).__name__)


def test_tearsheet_when_account_given_then_daily_returns_come_from_wal_pnl(tmp_path):
    marks = [summarise(Trade(id=f"t{i}", ts=T0 + i * DAY + 10, venue="SIM", symbol="AAA", price=D(p), quantity=D(1)))
             for i, p in enumerate(("100", "105", "98"))]     # the aggregator's summaries: what P&L marks use
    fill = ExecutionReport(id="x1", ts=T0 + 20, order_id="o1", child_id="c1", account="ACC1", venue="SIM",
                           symbol="AAA", side="BUY", status="FILLED", last_quantity=D(10), last_price=D(100),
                           cum_quantity=D(10), fee=D(1))
    _record(tmp_path / "wal" / STREAM_MD.name, marks)
    _record(tmp_path / "wal" / STREAM_TRADING.name, [fill])
    out = tmp_path / "acc1.html"
    done = subprocess.run([sys.executable, "-m", "gateway.report_cli", "report", "tearsheet", "--account",
                           "ACC1", "--data-dir", str(tmp_path), "--capital", "10000", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert "Account ACC1, daily net P&amp;L on capital 10000" in page and page.count("<svg") == 5

    from processors.reporting.tearsheet import returns_from_pnl
    from projections.blotter import pnl_from_wal
    dates, returns = returns_from_pnl(pnl_from_wal(tmp_path, "ACC1"), 10000.0)
    assert dates == ["2023-12-09", "2023-12-10", "2023-12-11"]
    assert list(returns) == pytest.approx([-1 / 10000, 50 / 9999, -70 / 10049], rel=1e-12)


def test_tearsheet_when_account_has_no_pnl_then_exit_2_saying_so(tmp_path):
    (tmp_path / "wal").mkdir()
    done = subprocess.run([sys.executable, "-m", "gateway.report_cli", "report", "tearsheet", "--account",
                           "NOPE", "--data-dir", str(tmp_path), "--capital", "1000", "--out",
                           str(tmp_path / "x.html")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "account NOPE has no P&L points" in done.stderr
