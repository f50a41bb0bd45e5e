"""Every recorded format reads as recorded: counts per event type, no refused lines, generic trade files."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.market import Trade
from processors.connector.binance.parse import FeedError, parse_ws
from processors.connector.recordings import BadRecord, Record, detect_format, read_bytes, read_records
from tests.conftest import real_data

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def kinds(path: Path) -> tuple[str, Counter]:
    data = read_bytes(path)
    counts: Counter = Counter()
    for item in read_records(data, name=path.name):
        counts[type(item.event).__name__ if isinstance(item, Record) else type(item).__name__] += 1
    return detect_format(path.name, data), counts


@pytest.mark.parametrize(("name", "fmt", "expected"), [
    ("cryptofeed_BINANCE.http.0.0", "cryptofeed_http", {"BookSnapshot": 4}),
    ("cryptofeed_BINANCE.ws.1.0", "cryptofeed_ws", {"BookDelta": 177, "BookTop": 84, "Trade": 2, "Skipped": 2}),
    ("cryptofeed_BINANCE_FUTURES.http.0.0", "cryptofeed_http", {"BookSnapshot": 4}),
    ("cryptofeed_BINANCE_FUTURES.ws.1.0", "cryptofeed_ws",
     {"BookDelta": 764, "BookTop": 613, "Trade": 91, "Bar": 4, "Skipped": 63}),
    ("nautilus_ADABTC-1m-2021-11-27.csv", "klines_csv", {"Bar": 10}),
])
def test_shipped_recordings_read_completely(name: str, fmt: str, expected: dict) -> None:
    assert kinds(SAMPLES / name) == (fmt, Counter(expected))


@pytest.mark.parametrize(("name", "fmt", "expected"), [
    ("freqtrade_XRP_ETH-trades.json.gz", "freqtrade_trades", {"Trade": 12477}),
    ("freqtrade_XRP_ETH-1m.json", "klines_json", {"Bar": 3560}),
    ("freqtrade_XRP_ETH-5m.json", "klines_json", {"Bar": 712}),
])
def test_freqtrade_recordings_read_completely(name: str, fmt: str, expected: dict) -> None:
    assert kinds(real_data(name)) == (fmt, Counter(expected))


def test_futures_depth_keeps_pu_and_exact_decimal_strings() -> None:
    line = (SAMPLES / "cryptofeed_BINANCE_FUTURES.ws.1.0").read_text().splitlines()[2]
    event = parse_ws(line.partition(": ")[2], "binance_futures", 0)
    assert event.prev_last_update_id == 600859598061 and event.bids[0] == (Decimal("7.5040"), Decimal("813"))
    with pytest.raises(FeedError, match="stream"):
        parse_ws('{"stream":"x@depth5","data":{}}', "binance", 0)


def test_raw_trade_and_agg_trade_messages_without_envelope() -> None:
    trade = parse_ws(b'{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
                     b'"T":1672515782136,"m":true,"M":true}', "binance", 0)
    agg = parse_ws(b'{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100",'
                   b'"f":100,"l":105,"T":1672515782136,"m":false,"M":true}', "binance", 0)
    assert (trade.trade_id, trade.aggressor, agg.aggressor) == ("12345", "SELL", "BUY")
    with pytest.raises(FeedError, match="price"):
        parse_ws(b'{"e":"trade","s":"BNBBTC","t":1,"p":"-1","q":"1","T":1,"m":true}', "binance", 0)
    with pytest.raises(FeedError, match="subject token"):
        parse_ws(b'{"e":"trade","s":"BNB.BTC","t":1,"p":"1","q":"1","T":1,"m":true}', "binance", 0)


def test_generic_csv_jsonl_and_parquet_trades_read_alike(tmp_path: Path) -> None:
    rows = [{"ts": 1570752011620, "price": "0.00141342", "quantity": "23", "side": "sell", "trade_id": "1"},
            {"ts": 1570752017964, "price": "0.00141266", "quantity": "8", "side": "buy", "trade_id": "2"}]
    csv_path = tmp_path / "XRPETH-trades.csv"
    csv_path.write_text("ts,price,quantity,side,trade_id\n" + "".join(
        f"{r['ts']},{r['price']},{r['quantity']},{r['side']},{r['trade_id']}\n" for r in rows) + "oops,1\n")
    jsonl_path = tmp_path / "XRPETH-trades.jsonl"
    jsonl_path.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    parquet_path = tmp_path / "XRPETH-trades.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet_path)
    results = {}
    for path in (csv_path, jsonl_path, parquet_path):
        items = list(read_records(read_bytes(path), name=path.name, venue="binance"))
        results[path.suffix] = [(i.event.ts, i.event.price, i.event.quantity, i.event.aggressor, i.event.symbol)
                                for i in items if isinstance(i, Record) and isinstance(i.event, Trade)]
        if path.suffix == ".csv":
            assert [type(i) for i in items][-1] is BadRecord
    assert results[".csv"] == results[".jsonl"] == results[".parquet"]
    assert results[".csv"][0] == (1570752011620000000, Decimal("0.00141342"), Decimal("23"), "SELL", "XRPETH")
