"""Bus throughput beside raw nats-py in the same run: batch publish, and publish→consume round trip."""

from __future__ import annotations

import asyncio
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig

from events import Bus, ConsumerRunner, ConsumerSpec, Trade, embedded_broker, encode, new_event_id
from events.bus import MSG_ID_HEADER
from tests.bench.harness import BenchResult, result

EVENTS = 20_000
ROUNDS = 3


def _trades(symbol: str) -> list[Trade]:
    return [Trade(id=new_event_id(), ts=1_700_000_000_000_000_000 + i, venue="SIM", symbol=symbol,
                  price=Decimal("43210.50"), quantity=Decimal("0.012"), trade_id=str(i)) for i in range(EVENTS)]


async def _bus_publish(bus: Bus, symbol: str) -> float:
    trades = _trades(symbol)
    start = time.perf_counter()
    await bus.publish_batch(trades)
    return EVENTS / (time.perf_counter() - start)


async def _raw_publish(url: str, symbol: str) -> float:
    payloads = [(f"sq.md.trade.SIM.{symbol}", encode(t), t.id) for t in _trades(symbol)]
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=4000)
    start = time.perf_counter()
    futures = [await js.publish_async(subject, data, headers={MSG_ID_HEADER: msg_id})
               for subject, data, msg_id in payloads]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    await nc.close()
    return EVENTS / elapsed


async def _bus_roundtrip(bus: Bus, symbol: str) -> float:
    trades = _trades(symbol)
    done = asyncio.Event()
    count = 0

    async def handle(event: object, delivery: object) -> None:
        nonlocal count
        count += 1
        if count == EVENTS:
            done.set()

    spec = ConsumerSpec(stream="SQ_MD", durable=f"bench-{symbol}", filter_subjects=(f"sq.md.trade.SIM.{symbol}",),
                        batch=512, fetch_timeout_s=0.5)
    runner = ConsumerRunner(bus, spec, handle, source="bench")
    task = asyncio.create_task(runner.run())
    await runner.wait_ready()
    start = time.perf_counter()
    await bus.publish_batch(trades)
    await done.wait()
    elapsed = time.perf_counter() - start
    runner.stop()
    await task
    return EVENTS / elapsed


async def _raw_roundtrip(url: str, symbol: str) -> float:
    payloads = [(f"sq.md.trade.SIM.{symbol}", encode(t), t.id) for t in _trades(symbol)]
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=4000)
    durable = f"raw-{symbol}"
    await js.add_consumer("SQ_MD", ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                                  filter_subject=f"sq.md.trade.SIM.{symbol}"))
    sub = await js.pull_subscribe_bind(durable=durable, stream="SQ_MD")

    async def consume() -> None:
        got = 0
        while got < EVENTS:
            try:
                messages = await sub.fetch(512, timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            for message in messages:
                await message.ack()
            got += len(messages)
        await nc.flush()

    consumer = asyncio.create_task(consume())
    start = time.perf_counter()
    futures = [await js.publish_async(subject, data, headers={MSG_ID_HEADER: msg_id})
               for subject, data, msg_id in payloads]
    await asyncio.gather(*futures)
    await consumer
    elapsed = time.perf_counter() - start
    await nc.close()
    return EVENTS / elapsed


async def _measure() -> list[BenchResult]:
    with tempfile.TemporaryDirectory() as store, embedded_broker(Path(store)) as broker:
        bus = await Bus.connect(broker.url, name="bench")
        await bus.ensure_streams()
        publish_bus, publish_raw, trip_bus, trip_raw = [], [], [], []
        # Interleaved rounds, best of each, so drift on a shared machine hits both sides alike.
        for round_no in range(ROUNDS):
            publish_raw.append(await _raw_publish(broker.url, f"RP{round_no}"))
            publish_bus.append(await _bus_publish(bus, f"BP{round_no}"))
            trip_raw.append(await _raw_roundtrip(broker.url, f"RR{round_no}"))
            trip_bus.append(await _bus_roundtrip(bus, f"BR{round_no}"))
        await bus.close()
    return [
        result("bus_publish", max(publish_bus), "events/s", baseline="raw nats-py publish_async, same bytes",
               baseline_value=max(publish_raw), better="higher"),
        result("bus_roundtrip", max(trip_bus), "events/s",
               baseline="raw nats-py publish_async + pull fetch/ack, no decode", baseline_value=max(trip_raw),
               better="higher"),
    ]


def run() -> list[BenchResult]:
    """Measure the bus beside raw nats-py on one embedded broker."""
    return asyncio.run(_measure())
