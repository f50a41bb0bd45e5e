"""`sq md candles` and `sq md book` as a user runs them: a subprocess, files or stdin in, JSON lines out."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from tests.conftest import REPO_ROOT, real_data

SAMPLES = REPO_ROOT / "data" / "samples"


def md(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "processors.marketdata_cli", "md", *args], cwd=REPO_ROOT,
                          input=stdin, capture_output=True, timeout=60)


def test_candles_from_agg_trades_on_stdin_equal_binance_5m_klines() -> None:
    trades = real_data("freqtrade_XRP_ETH-trades.json.gz")
    done = md("candles", "-", "--interval", "5m", stdin=trades.read_bytes())
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    klines = json.loads(real_data("freqtrade_XRP_ETH-5m.json").read_text(), parse_float=Decimal)
    assert [[r["open_time"], *(Decimal(r[k]) for k in ("open", "high", "low", "close", "volume"))] for r in rows] \
        == klines


def test_candles_from_one_minute_kline_csv_resampled_to_five_minutes() -> None:
    done = md("candles", str(SAMPLES / "nautilus_ADABTC-1m-2021-11-27.csv"), "--interval", "5m")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["open_time"] for r in rows] == [1637971200000, 1637971500000]
    assert rows[0]["open"] == "0.00002853" and Decimal(rows[0]["volume"]) > 0


def test_book_tops_after_every_update_from_ws_recording_and_rest_snapshot() -> None:
    done = md("book", str(SAMPLES / "cryptofeed_BINANCE.ws.1.0"), "--snapshot",
              str(SAMPLES / "cryptofeed_BINANCE.http.0.0"), "--symbol", "NKNUSDT")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 1 + 149  # the snapshot, then every non-stale diff
    tickers = {}
    for line in (SAMPLES / "cryptofeed_BINANCE.ws.1.0").read_text().splitlines()[1:]:
        if "nknusdt@bookTicker" in line:
            data = json.loads(line.partition(": ")[2])["data"]
            tickers[data["u"]] = (data["b"], data["B"], data["a"], data["A"])
    matched = [r for r in rows if r["last_update_id"] in tickers]
    assert len(matched) >= 15
    for r in matched:
        want = tuple(Decimal(x) for x in tickers[r["last_update_id"]])
        assert tuple(Decimal(r[k]) for k in ("bid_price", "bid_size", "ask_price", "ask_size")) == want


def test_book_with_a_missing_diff_reports_the_gap_and_exits_3(tmp_path: Path) -> None:
    lines = (SAMPLES / "cryptofeed_BINANCE.ws.1.0").read_text().splitlines()
    depth = [i for i, line in enumerate(lines) if i and "nknusdt@depth" in line]  # line 0 is the header
    del lines[depth[10]]
    path = tmp_path / "gap.ws"
    path.write_text("\n".join(lines))
    done = md("book", str(path), "--snapshot", str(SAMPLES / "cryptofeed_BINANCE.http.0.0"), "--symbol", "NKNUSDT")
    assert done.returncode == 3
    assert b"gap at update" in done.stderr
    assert len(done.stdout.splitlines()) == 1 + 9


def test_book_without_snapshot_exits_1_saying_what_is_missing() -> None:
    done = md("book", str(SAMPLES / "cryptofeed_BINANCE.ws.1.0"), "--symbol", "NKNUSDT")
    assert done.returncode == 1 and b"--snapshot" in done.stderr
