"""Trade blotter, TCA per algorithm and venue, and the daily report, from a real WAL folded by the projections."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from projections.blotter import (
    InvalidDate,
    blotter,
    daily_report,
    day_books,
    day_bounds,
    load_inputs,
    tca_summary,
)
from tests.reporting._wal import DATE, DAY, T0, write_history

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.report_cli", "report", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def inputs(tmp_path):
    write_history(tmp_path)
    return load_inputs(tmp_path)


def test_blotter_lists_every_fill_with_order_side_price_fee_venue_and_liquidity(inputs):
    rows = blotter(inputs)
    assert [(r["order_id"], r["venue"], r["side"], r["quantity"], r["price"], r["fee"], r["liquidity"])
            for r in rows] == [("o1", "SIM_A", "BUY", "10", "10.01", "0.1001", "TAKER"),
                               ("o1", "SIM_B", "BUY", "10", "10.03", "0.25075", "TAKER")]
    assert rows[0]["algo"] == "TWAP" and rows[0]["client_order_id"] == "c-1" and rows[0]["notional"] == "100.1"
    assert rows[0]["time"] == "2023-12-09T01:00:00.000000Z"
    assert blotter(inputs, accounts=["ACC2"]) == []
    assert blotter(inputs, window=day_bounds("2023-12-10")) == []


def test_tca_when_order_split_over_venues_then_each_venue_is_costed_against_the_orders_benchmarks(inputs):
    rows = {(r["algo"], r["venue"]): r for r in tca_summary(inputs)}
    assert list(rows) == [("LIMIT", "ALL"), ("TWAP", "ALL"), ("TWAP", "SIM_A"), ("TWAP", "SIM_B")]
    whole = rows[("TWAP", "ALL")]  # the order's own ParentOrderCompleted figures
    assert whole["orders"] == 1 and whole["filled_quantity"] == "20" and whole["avg_shortfall_bps"] == "20"
    assert whole["avg_vwap_slippage_bps"] == "9.99" and whole["fees"] == "0.35085"
    a, b = rows[("TWAP", "SIM_A")], rows[("TWAP", "SIM_B")]
    # BUY at 10.01 and 10.03 against arrival 10: 10 and 30 bps; against interval VWAP 10.01: 0 and ~19.98 bps.
    assert a["avg_shortfall_bps"] == "10" and b["avg_shortfall_bps"] == "30"
    assert a["avg_vwap_slippage_bps"] == "0" and D(b["avg_vwap_slippage_bps"]) == (D("0.02") / D("10.01") * 10_000
                                                                                   ).quantize(D("0.0001"))
    assert a["fees"] == "0.1001" and b["fees"] == "0.25075"
    cancelled = rows[("LIMIT", "ALL")]
    assert cancelled["statuses"] == {"CANCELLED": 1} and cancelled["avg_shortfall_bps"] is None
    assert [r["venue"] for r in tca_summary(inputs, accounts=["ACC2"])] == ["ALL"]


def test_tca_weighted_averages_weight_orders_by_filled_notional(inputs):
    from events.trading import ParentOrderCompleted

    extra = ParentOrderCompleted(id="t9", ts=T0 + 60, order_id="o9", account="ACC1", client_order_id="c-9",
                                 symbol="XYZ", side="SELL", algo="TWAP", status="FILLED", quantity=D(30),
                                 filled_quantity=D(30), children=1, start_ts=T0, end_ts=T0 + 60,
                                 arrival_price=D(10), average_price=D(10), shortfall_bps=D(0))
    inputs.completions.append(extra)
    whole = next(r for r in tca_summary(inputs) if r["algo"] == "TWAP" and r["venue"] == "ALL")
    assert whole["orders"] == 2 and whole["avg_shortfall_bps"] == "10"
    assert D(whole["weighted_shortfall_bps"]) == (D(20) * D("200.4") / D("500.4")).quantize(D("0.0001"))


def test_daily_report_gives_each_account_its_fills_turnover_pnl_fees_and_tca(tmp_path, inputs):
    report = daily_report(inputs, DATE, day_books(tmp_path / "wal", DATE))
    by_account = {a["account"]: a for a in report["accounts"]}
    acc1 = by_account["ACC1"]
    assert acc1["fills"] == 2 and acc1["turnover"] == "200.4" and acc1["buy_notional"] == "200.4"
    assert acc1["fees"] == "0.35085" and acc1["realized_pnl"] == "0"
    assert acc1["unrealized_pnl"] == "1.6"  # 20 at 10.02 marked at 10.10
    assert D(acc1["net_pnl_change"]) == D("1.6") - D("0.35085")
    assert [(r["algo"], r["venue"]) for r in acc1["tca"]] == [("TWAP", "ALL"), ("TWAP", "SIM_A"), ("TWAP", "SIM_B")]
    assert by_account["ACC2"]["fills"] == 0 and by_account["ACC2"]["tca"][0]["statuses"] == {"CANCELLED": 1}
    assert daily_report(inputs, "2023-12-10", day_books(tmp_path / "wal", "2023-12-10"))["accounts"] == []
    assert report["end_ts"] - report["start_ts"] == DAY
    with pytest.raises(InvalidDate):
        day_books(tmp_path / "wal", "2023-13-01")


def test_report_cli_prints_blotter_tca_and_daily_as_json_and_tables(tmp_path):
    write_history(tmp_path)
    data = str(tmp_path)
    fills = json.loads(_cli("blotter", "--data-dir", data, "--account", "ACC1", "--json").stdout)["fills"]
    assert len(fills) == 2
    tca = json.loads(_cli("tca", "--data-dir", data, "--date", DATE, "--json").stdout)["tca"]
    assert len(tca) == 4
    daily = json.loads(_cli("daily", "--data-dir", data, "--date", DATE, "--account", "ACC2", "--json").stdout)
    assert [a["account"] for a in daily["accounts"]] == ["ACC2"]
    table = _cli("tca", "--data-dir", data)
    assert table.returncode == 0 and table.stdout.splitlines()[0].startswith("algo")
    text = _cli("daily", "--data-dir", data, "--date", DATE)
    assert text.returncode == 0 and "account ACC1" in text.stdout
    bad = _cli("daily", "--data-dir", data, "--date", "09/12/2023")
    assert bad.returncode == 2 and "is not a UTC day as YYYY-MM-DD" in bad.stderr
    nowal = _cli("blotter", "--data-dir", str(tmp_path / "empty"))
    assert nowal.returncode == 2 and "no WAL directory" in nowal.stderr


def test_completion_log_with_a_checkpoint_never_rereads_what_it_already_read(tmp_path):
    from projections.blotter import CompletionLog

    write_history(tmp_path)
    first = CompletionLog(tmp_path / "wal", checkpoint=tmp_path / "tca").refresh()
    assert first, "the history has completed orders"
    (tmp_path / "wal").rename(tmp_path / "wal-elsewhere")     # a restart that could only re-read the WAL fails
    again = CompletionLog(tmp_path / "wal", checkpoint=tmp_path / "tca").refresh()
    assert again == first
    with open(tmp_path / "tca" / "completions.jsonl", "ab") as handle:
        handle.write(b'{"type":"ParentOrderCompleted","id":"torn')       # a crash mid-append
    (tmp_path / "wal-elsewhere").rename(tmp_path / "wal")
    assert CompletionLog(tmp_path / "wal", checkpoint=tmp_path / "tca").refresh() == first
    assert CompletionLog(tmp_path / "wal", checkpoint=tmp_path / "tca").refresh() == first, "the torn line was cut"
