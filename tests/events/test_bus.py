"""The bus over a real nats-server: exactly-once in-order consumption, dedupe, dead letters, no stalls."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

from events import (
    Bus,
    ConsumerRunner,
    ConsumerSpec,
    DeadLetter,
    Delivery,
    Trade,
    TransientError,
    decode,
    new_event_id,
)
from events.codec import AnyEvent
from events.partitions import on_wire
from tests.conftest import eventually

TS = 1_700_000_000_000_000_000


def _trades(count: int, symbol: str = "BTCUSDT") -> list[Trade]:
    return [Trade(id=new_event_id(), ts=TS + i, venue="SIM", symbol=symbol, price=Decimal("100.5"),
                  quantity=Decimal(i + 1), trade_id=str(i)) for i in range(count)]


def _spec(durable: str, *subjects: str, **options: object) -> ConsumerSpec:
    return ConsumerSpec(stream=options.pop("stream", "SQ_MD"), durable=durable,  # type: ignore[arg-type]
                        filter_subjects=subjects, fetch_timeout_s=0.2, **options)  # type: ignore[arg-type]


async def _dead_letters(bus: Bus) -> list[DeadLetter]:
    info = await bus.js.stream_info("SQ_AUDIT")
    letters = []
    for seq in range(1, info.state.last_seq + 1):
        message = await bus.js.get_msg("SQ_AUDIT", seq)
        event = decode(message.data or b"")
        assert isinstance(event, DeadLetter)
        letters.append(event)
    return letters


async def test_ten_thousand_events_consumed_exactly_once_in_order_across_a_consumer_restart(bus: Bus) -> None:
    trades = _trades(10_000)
    acks = await bus.publish_batch(trades)
    assert [ack.seq for ack in acks] == list(range(1, 10_001))

    seen: list[int] = []

    async def record(event: AnyEvent, delivery: Delivery) -> None:
        assert isinstance(event, Trade)
        seen.append(int(event.trade_id or -1))
        if len(seen) == 5_000:
            first.stop()

    spec = _spec("exactly-once", "sq.md.trade.>", batch=128)
    first = ConsumerRunner(bus, spec, record, source="test")
    await asyncio.wait_for(first.run(), 60)
    assert 5_000 <= len(seen) < 10_000, "the first runner stopped halfway"

    second = ConsumerRunner(bus, spec, record, source="test")
    task = asyncio.create_task(second.run())
    await eventually(lambda: len(seen) >= 10_000, timeout=60, message="all 10,000 events processed")
    second.stop()
    await asyncio.wait_for(task, 10)
    assert seen == list(range(10_000))
    assert second.stats.duplicates_skipped == 0


async def test_a_runner_stopped_mid_fetch_hands_back_what_it_did_not_handle_so_the_next_gets_it_now_in_order(
        bus: Bus) -> None:
    await bus.publish_batch(_trades(5_000))
    seen: list[int] = []

    async def record(event: AnyEvent, delivery: Delivery) -> None:
        assert isinstance(event, Trade)
        seen.append(int(event.trade_id or -1))
        first.stop()

    # A 5 ms deadline on a 4,096-message fetch returns early with the rest of the pull still arriving:
    # those messages were sent to this runner, and only a hand-back gets them to the next before ack_wait.
    spec = _spec("hand-back", "sq.md.trade.>", batch=4_096, ack_wait_s=30.0)
    first = ConsumerRunner(bus, replace(spec, fetch_timeout_s=0.005), record, source="test")
    await asyncio.wait_for(first.run(), 30)
    assert 1 <= len(seen) < 5_000

    async def record_all(event: AnyEvent, delivery: Delivery) -> None:
        assert isinstance(event, Trade)
        seen.append(int(event.trade_id or -1))

    second = ConsumerRunner(bus, spec, record_all, source="test")
    task = asyncio.create_task(second.run())
    try:
        await eventually(lambda: len(seen) >= 5_000, timeout=15, message="the rest handled well before ack_wait")
    finally:
        second.stop()
        await asyncio.wait_for(task, 10)
    assert seen == list(range(5_000))


async def test_same_event_published_twice_is_stored_once(bus: Bus) -> None:
    trade = _trades(1)[0]
    first = await bus.publish(trade)
    second = await bus.publish(trade)
    assert second.duplicate is True and second.seq == first.seq
    again = await bus.publish_batch([trade, trade])
    assert all(ack.seq == first.seq for ack in again)
    info = await bus.js.stream_info("SQ_MD")
    assert info.state.messages == 1


async def test_garbage_and_invalid_intent_are_dead_lettered_and_the_consumer_keeps_going(bus: Bus) -> None:
    handled: list[str] = []

    async def handle(event: AnyEvent, delivery: Delivery) -> None:
        handled.append(event.id)

    await bus.js.publish("sq.ord.intent.ACC1", b"\xff\xfegarbage{", headers={"Nats-Msg-Id": "g-1"})
    await bus.js.publish("sq.ord.intent.ACC1",
                         b'{"account":"ACC1","client_order_id":"c1","symbol":"BTCUSDT","side":"BUY","quantity":"-2"}')
    good = b'{"account":"ACC1","client_order_id":"c2","symbol":"BTCUSDT","side":"BUY","quantity":"2"}'
    await bus.js.publish("sq.ord.intent.ACC1", good)

    runner = ConsumerRunner(bus, _spec("risk-test", "sq.ord.intent.>", stream="SQ_TRADING"), handle, source="risk")
    task = asyncio.create_task(runner.run())
    await eventually(lambda: len(handled) == 1 and runner.stats.dead_lettered == 2, message="good one handled")
    runner.stop()
    await task

    letters = await _dead_letters(bus)
    assert [letter.source for letter in letters] == ["risk", "risk"]
    assert all(letter.subject == on_wire("sq.ord.intent.ACC1") for letter in letters)     # where they arrived
    assert "malformed" in letters[0].reason and letters[0].payload_encoding == "base64"
    assert "quantity -2 must be greater than 0" in letters[1].reason
    assert [letter.stream_seq for letter in letters] == [1, 2]


async def test_transient_handler_error_is_retried_then_succeeds(bus: Bus) -> None:
    attempts: list[int] = []

    async def flaky(event: AnyEvent, delivery: Delivery) -> None:
        attempts.append(delivery.delivered)
        if delivery.delivered < 3:
            raise TransientError("dependency warming up")

    await bus.publish(_trades(1)[0])
    runner = ConsumerRunner(bus, _spec("flaky", "sq.md.>", backoff_s=(0.01, 0.01, 0.01, 0.01)), flaky,
                            source="test")
    task = asyncio.create_task(runner.run())
    await eventually(lambda: runner.stats.processed == 1, message="processed after retries")
    runner.stop()
    await task
    assert attempts == [1, 2, 3]
    assert runner.stats.retried == 2 and runner.stats.dead_lettered == 0


async def test_handler_that_always_fails_is_dead_lettered_after_max_deliver_not_retried_forever(bus: Bus) -> None:
    later: list[str] = []

    async def poison_first(event: AnyEvent, delivery: Delivery) -> None:
        assert isinstance(event, Trade)
        if event.trade_id == "0":
            raise RuntimeError("core bug on this event")
        later.append(event.trade_id or "")

    await bus.publish_batch(_trades(3))
    runner = ConsumerRunner(bus, _spec("poison", "sq.md.>", max_deliver=3, backoff_s=(0.01, 0.01, 0.01)),
                            poison_first, source="test")
    task = asyncio.create_task(runner.run())
    await eventually(lambda: runner.stats.dead_lettered == 1, message="poison message dead-lettered")
    runner.stop()
    await task
    assert later == ["1", "2"]
    letters = await _dead_letters(bus)
    assert len(letters) == 1 and "handler failed 3 times" in letters[0].reason


async def test_fetch_does_not_stall_across_bursts_and_idle_gaps(bus: Bus) -> None:
    """Guards against nats-py pull-fetch stalls (nats.py #933, #986): bursts after idle periods all arrive."""
    received: list[str] = []

    async def handle(event: AnyEvent, delivery: Delivery) -> None:
        received.append(event.id)

    runner = ConsumerRunner(bus, _spec("stall", "sq.md.>", batch=64), handle, source="test")
    task = asyncio.create_task(runner.run())
    await runner.wait_ready()
    total = 0
    for burst, size in enumerate((1, 500, 63, 64, 65, 1000, 1)):
        await bus.publish_batch(_trades(size, symbol=f"S{burst}"))
        total += size
        await eventually(lambda expected=total: len(received) == expected, timeout=10,
                         message=f"burst {burst} delivered")
        # An idle gap longer than the fetch timeout, so the next burst starts a fresh pull.
        await asyncio.sleep(0.3)
    runner.stop()
    await task
    assert len(set(received)) == total
