"""A small recorded history laid out as the recorder keeps it: WAL_ROOT/<STREAM>/, seq = stream sequence."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from events.codec import encode
from events.ids import intent_id_for, new_event_id
from events.market import Trade
from events.subjects import subject_for
from events.trading import OrderIntent, RiskDecision
from store import Entry, WalWriter

DAY1 = 1_709_251_200_000_000_000  # 2024-03-01T00:00:00Z
HOUR = 3_600_000_000_000
ORDER1 = new_event_id(DAY1)
ORDER2 = intent_id_for("ACC2", "c-2")  # the id an intent published without one is given


def _entry(event: object, seq: int, ts: int) -> Entry:
    return Entry(encode(event), ts, subject_for(event), type(event).__name__, seq)  # type: ignore[arg-type]


def trading_entries() -> list[Entry]:
    """Intents, decisions, an intent without an id, and one undecodable record, with a sequence gap."""
    intent = OrderIntent(id=ORDER1, ts=DAY1, account="ACC1", client_order_id="c-1", symbol="BTCUSDT", side="BUY",
                         quantity=Decimal("0.5"), limit_price=Decimal("43210.5"))
    decision = RiskDecision(id=new_event_id(DAY1 + 1), ts=DAY1 + 1, correlation_id=ORDER1, causation_id=ORDER1,
                            order_id=ORDER1, account="ACC1", symbol="BTCUSDT", accepted=True)
    bare = b'{"type":"OrderIntent","account":"ACC2","client_order_id":"c-2","symbol":"ETHUSDT",' \
           b'"side":"SELL","quantity":"2"}'
    second = RiskDecision(id=new_event_id(DAY1 + 2), ts=DAY1 + 2, correlation_id=ORDER2, causation_id=ORDER2,
                          order_id=ORDER2, account="ACC2", symbol="ETHUSDT", accepted=False)
    return [
        _entry(intent, 1, DAY1 + 1 * HOUR),
        _entry(decision, 2, DAY1 + 2 * HOUR),
        Entry(bare, DAY1 + 3 * HOUR, "sq.ord.intent.ACC2", "OrderIntent", 3),
        _entry(second, 5, DAY1 + 25 * HOUR),  # seq 4 was deleted from the stream before it was recorded
        Entry(b"not json at all", DAY1 + 26 * HOUR, "sq.ord.intent.ACC1", "", 6),
    ]


def md_entries() -> list[Entry]:
    """Trades on two symbols across midnight UTC."""
    out = []
    for seq in range(1, 7):
        symbol = "BTCUSDT" if seq % 2 else "ETHUSDT"
        ts = DAY1 + (seq * 5 - 1) * HOUR  # hours 4, 9, 14, 19, 24, 29: two on day 2
        trade = Trade(id=new_event_id(ts), ts=ts, venue="BINANCE", symbol=symbol, price=Decimal("100.5") + seq,
                      quantity=Decimal("1"))
        out.append(_entry(trade, seq, ts))
    return out


def write_history(root: Path, *, seal_every: int = 3) -> dict[str, list[Entry]]:
    """Write both streams, sealing after every `seal_every` records and at the end (all segments sealed)."""
    streams = {"SQ_TRADING": trading_entries(), "SQ_MD": md_entries()}
    for stream, entries in streams.items():
        with WalWriter.open(root / stream, contiguous=False) as writer:
            for start in range(0, len(entries), seal_every):
                writer.append_batch(entries[start:start + seal_every])
                writer.seal()
    return streams
