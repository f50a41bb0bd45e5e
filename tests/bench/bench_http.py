"""Gateway over HTTP and WebSocket, each beside a bare baseline in the same run, load from a second process.

- http_positions: GET /v1/positions requests/s (populated projection: 20 accounts x 10 symbols), beside a
  bare aiohttp handler answering the same JSON bytes; both served from this process, loaded by one
  subprocess with CONCURRENCY keep-alive connections for SECONDS.
- http_positions_p99: the same runs' 99th percentile latency in ms (lower is better).
- ws_fanout: events/s delivered to 100 WebSocket clients (in a subprocess) of events published on core
  NATS, beside raw core-NATS fan-out of the same events to 100 subscriptions in that subprocess.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import nats
from aiohttp import web

from events import Bus, ExecutionReport, Trade, embedded_broker, encode, new_event_id
from gateway.app import create_app
from projections.service import Projections
from store.follow import Envelope
from tests.bench.harness import BenchResult, result, unthrottled_gateway

CONCURRENCY = 32
SECONDS = 4.0
WS_CLIENTS = 100
WS_EVENTS = 2_000  # below the per-client queue bound (4096), so no client is dropped for being slow
ACCOUNTS = [f"ACC{i}" for i in range(20)]
SYMBOLS = [f"SYM{i}" for i in range(10)]

# The load generator and the WebSocket/NATS receivers, run in a second process (stdout: one JSON line).
_CLIENT = r'''
import asyncio, json, sys, time
import aiohttp, nats

async def http(url, token, concurrency, seconds):
    latencies, errors = [], 0
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker(until, record):
            nonlocal errors
            while time.perf_counter() < until:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                if record:
                    latencies.append(time.perf_counter() - started)
        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
        begin = time.perf_counter()
        await asyncio.gather(*(worker(begin + seconds, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - begin
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "errors": errors}

async def receive(expected, subscribe_all):
    got, first, last = 0, None, None
    done = asyncio.Event()
    def count():
        nonlocal got, first, last
        now = time.perf_counter()
        first = first or now
        last = now
        got += 1
        if got == expected:
            done.set()
    closers = await subscribe_all(count)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 60)
    except TimeoutError:
        pass
    for close in closers:
        await close()
    return {"delivered": got, "seconds": (last - first) if first and last else 0.0}

async def ws(url, token, clients, events):
    session = aiohttp.ClientSession()
    async def subscribe_all(count):
        sockets = []
        for _ in range(clients):
            socket = await session.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
            await socket.send_json({"subscribe": ["sq.md.trade.BENCH.*"]})
            await socket.receive()
            sockets.append(socket)
        async def pump(socket):
            async for message in socket:
                count()
        tasks = [asyncio.create_task(pump(s)) for s in sockets]
        async def close():
            for s in sockets:
                await s.close()
            for t in tasks:
                t.cancel()
            await session.close()
        return [close]
    return await receive(clients * events, subscribe_all)

async def raw(url, clients, events):
    async def subscribe_all(count):
        nc = await nats.connect(url)
        async def on_message(msg):
            count()
        for _ in range(clients):
            await nc.subscribe("sq.md.trade.BENCH.*", cb=on_message)
        await nc.flush()
        return [nc.close]
    return await receive(clients * events, subscribe_all)

mode, *args = sys.argv[1:]
if mode == "http":
    out = asyncio.run(http(args[0], args[1], int(args[2]), float(args[3])))
elif mode == "ws":
    out = asyncio.run(ws(args[0], args[1], int(args[2]), int(args[3])))
else:
    out = asyncio.run(raw(args[0], int(args[1]), int(args[2])))
print(json.dumps(out), flush=True)
'''


def _envelopes() -> list[Envelope]:
    """Fills and marks for every account and symbol: a populated positions projection."""
    envelopes, seq, ts = [], 0, 1_700_000_000_000_000_000
    for account in ACCOUNTS:
        for index, symbol in enumerate(SYMBOLS):
            for side, quantity in (("BUY", "3.5"), ("SELL", "1.25")):
                seq += 1
                report = ExecutionReport(id=new_event_id(), ts=ts + seq, order_id=new_event_id(),
                                         child_id=new_event_id(), account=account, venue="SIM", symbol=symbol,
                                         side=side, status="FILLED", last_quantity=Decimal(quantity),  # type: ignore[arg-type]
                                         last_price=Decimal(100 + index) + Decimal("0.25"),
                                         cum_quantity=Decimal(quantity), fee=Decimal("0.01"))
                envelopes.append(Envelope(report, "SQ_TRADING", seq, f"sq.exec.report.SIM.{account}", ts + seq, True))
    for index, symbol in enumerate(SYMBOLS):
        seq += 1
        trade = Trade(id=new_event_id(), ts=ts + seq, venue="SIM", symbol=symbol, price=Decimal(101 + index),
                      quantity=Decimal(1))
        envelopes.append(Envelope(trade, "SQ_MD", seq, f"sq.md.trade.SIM.{symbol}", ts + seq, True))
    return envelopes


async def _client(*args: str, publish: tuple[str, int] | None = None) -> dict[str, float]:
    """Run the client script; for ws/raw modes publish `publish=(url, events)` once it says ready."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", _CLIENT, *args,
                                                   stdout=subprocess.PIPE)
    assert process.stdout is not None
    if publish is not None:
        assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"ready"
        await _publish(*publish)
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    await process.wait()
    parsed: dict[str, float] = json.loads(line)
    return parsed


async def _publish(url: str, events: int) -> None:
    """Publish `events` trades on core NATS (no stream captures them in this run: pure fan-out)."""
    nc = await nats.connect(url)
    for i in range(events):
        trade = Trade(id=new_event_id(), ts=time.time_ns(), venue="BENCH", symbol="BTCUSDT",
                      price=Decimal("43210.5"), quantity=Decimal("0.012"), trade_id=str(i))
        await nc.publish("sq.md.trade.BENCH.BTCUSDT", encode(trade))
    await nc.flush()
    await nc.close()


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def _run() -> list[BenchResult]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        broker = embedded_broker(root / "nats")
        broker.start()
        bus = await Bus.connect(broker.url, name="bench-http")
        try:
            projections = Projections(root / "wal", root / "checkpoints")
            projections.apply_all(_envelopes())
            gateway, token = unthrottled_gateway(root / "gw", bus, projections)
            gateway_runner, gateway_port = await _serve(create_app(gateway))
            body = await _fetch(f"http://127.0.0.1:{gateway_port}/v1/positions", token)
            assert body.count(b'"account"') == len(ACCOUNTS) * len(SYMBOLS)

            async def bare_positions(_request: web.Request) -> web.Response:
                return web.Response(body=body, content_type="application/json")

            bare = web.Application()
            bare.router.add_get("/v1/positions", bare_positions)
            bare_runner, bare_port = await _serve(bare)
            load = (str(CONCURRENCY), str(SECONDS))
            ours = await _client("http", f"http://127.0.0.1:{gateway_port}/v1/positions", token, *load)
            baseline = await _client("http", f"http://127.0.0.1:{bare_port}/v1/positions", token, *load)
            assert ours["errors"] == 0 and baseline["errors"] == 0, (ours, baseline)
            fanned = await _client("ws", f"http://127.0.0.1:{gateway_port}/v1/ws", token, str(WS_CLIENTS),
                                   str(WS_EVENTS), publish=(broker.url, WS_EVENTS))
            raw = await _client("raw", broker.url, str(WS_CLIENTS), str(WS_EVENTS), publish=(broker.url, WS_EVENTS))
            await bare_runner.cleanup()
            await gateway_runner.cleanup()
        finally:
            await bus.close()
            broker.stop()
    expected = WS_CLIENTS * WS_EVENTS
    assert fanned["delivered"] == expected and raw["delivered"] == expected, (fanned, raw)
    return [
        result("http_positions", ours["rps"], "req/s", baseline="bare aiohttp handler, same body",
               baseline_value=baseline["rps"], better="higher"),
        result("http_positions_p99", ours["p99_ms"], "ms", baseline="bare aiohttp handler, same body",
               baseline_value=baseline["p99_ms"], better="lower"),
        result("ws_fanout", expected / fanned["seconds"], "events/s",
               baseline=f"raw core NATS to {WS_CLIENTS} subscriptions", baseline_value=expected / raw["seconds"],
               better="higher"),
    ]


async def _fetch(url: str, token: str) -> bytes:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return await r.read()


def run() -> list[BenchResult]:
    """Measure http_positions, http_positions_p99 and ws_fanout, each beside its same-run baseline."""
    return asyncio.run(_run())
