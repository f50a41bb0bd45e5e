"""Books rebuilt from the recorded Binance REST snapshots plus diffs agree with every matching bookTicker."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.market import BookDelta, BookSnapshot, BookTop
from processors.aggregator.book import Status, levels, top_of_book
from processors.aggregator.book_events import from_scaled
from processors.aggregator.sync import BookSync, on_delta, on_snapshot
from processors.connector.recordings import Record, read_bytes, read_records

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
CASES = [("cryptofeed_BINANCE.http.0.0", "cryptofeed_BINANCE.ws.1.0"),
         ("cryptofeed_BINANCE_FUTURES.http.0.0", "cryptofeed_BINANCE_FUTURES.ws.1.0")]


def events(name: str) -> list:
    path = SAMPLES / name
    return [item.event for item in read_records(read_bytes(path), name=name) if isinstance(item, Record)]


def rebuild(snapshot: BookSnapshot, deltas: list[BookDelta]) -> tuple[BookSync, dict[int, tuple], list[Status]]:
    """Apply the snapshot then every diff; return the top after each diff by its final update id."""
    sync = BookSync()
    on_snapshot(sync, snapshot)
    tops: dict[int, tuple] = {}
    statuses = []
    for delta in deltas:
        result = on_delta(sync, delta)
        statuses.append(result.status)
        if result.status is Status.APPLIED:
            top = top_of_book(sync.book)
            tops[delta.last_update_id] = (from_scaled(top.bid_price, 8), from_scaled(top.bid_size, 8),
                                          from_scaled(top.ask_price, 8), from_scaled(top.ask_size, 8))
    return sync, tops, statuses


@pytest.mark.parametrize(("http", "ws"), CASES)
def test_rebuilt_books_match_every_book_ticker_with_a_matching_update_id(http: str, ws: str) -> None:
    snapshots = events(http)
    stream = events(ws)
    checked = 0
    for snapshot in snapshots:
        deltas = [e for e in stream if isinstance(e, BookDelta) and e.symbol == snapshot.symbol]
        tickers = [e for e in stream if isinstance(e, BookTop) and e.symbol == snapshot.symbol]
        sync, tops, statuses = rebuild(snapshot, deltas)
        assert Status.GAP not in statuses and Status.CROSSED not in statuses, snapshot.symbol
        assert statuses.count(Status.APPLIED) >= 1, snapshot.symbol
        for ticker in tickers:
            if ticker.last_update_id in tops:
                assert tops[ticker.last_update_id] == (ticker.bid_price, ticker.bid_size, ticker.ask_price,
                                                       ticker.ask_size), (snapshot.symbol, ticker.last_update_id)
                checked += 1
    assert checked >= 20, f"only {checked} bookTickers matched a diff's final update id"


@pytest.mark.parametrize(("http", "ws"), CASES)
def test_removing_one_diff_is_detected_as_a_gap_and_a_snapshot_resyncs(http: str, ws: str) -> None:
    snapshot = events(http)[0]
    deltas = [e for e in events(ws) if isinstance(e, BookDelta) and e.symbol == snapshot.symbol]
    applied_ids = [d.last_update_id for d in deltas if d.last_update_id > snapshot.last_update_id]
    assert len(applied_ids) > 5
    victim = next(i for i, d in enumerate(deltas) if d.last_update_id == applied_ids[3])
    sync, _, statuses = rebuild(snapshot, deltas[:victim] + deltas[victim + 1:])
    assert statuses[victim] is Status.GAP and sync.gaps == 1
    assert all(s is Status.NOT_SYNCED for s in statuses[victim + 1:])  # buffered while waiting
    # A later snapshot (here: the book as it should be, at the last diff) lets the buffered diffs resume.
    _, good_tops, _ = rebuild(snapshot, deltas)
    full = BookSync()
    on_snapshot(full, snapshot)
    for delta in deltas[: victim + 1]:
        on_delta(full, delta)
    resync = BookSnapshot(
        id="resync", ts=snapshot.ts, venue=snapshot.venue, symbol=snapshot.symbol,
        last_update_id=deltas[victim].last_update_id,
        bids=[(from_scaled(p, 8), from_scaled(s, 8)) for p, s in levels(full.book, bid=True)],
        asks=[(from_scaled(p, 8), from_scaled(s, 8)) for p, s in levels(full.book, bid=False)])
    result = on_snapshot(sync, resync)
    assert result.status is Status.APPLIED and sync.book.last_update_id == deltas[-1].last_update_id
    top = top_of_book(sync.book)
    assert (from_scaled(top.bid_price, 8), from_scaled(top.ask_price, 8)) == \
        (good_tops[deltas[-1].last_update_id][0], good_tops[deltas[-1].last_update_id][2])
