"""`sq up`: one command that runs the stack on an embedded broker for a newcomer, until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from events.broker import Broker, BrokerNotFound, BrokerStartError, embedded_broker
from events.bus import Bus, resolve_url
from events.logs import configure_logging
from events.subjects import STREAMS

log = logging.getLogger("sq.up")


async def run_stack(*, data_dir: Path, http_port: int, nats_url: str | None) -> int:
    """Start the broker (unless a URL is given), create the streams, and run until SIGINT/SIGTERM."""
    configure_logging("up")
    data_dir.mkdir(parents=True, exist_ok=True)
    broker: Broker | None = None
    if nats_url is None:
        broker = embedded_broker(data_dir / "nats", port=4222, monitor_port=8222)
        try:
            broker.start()
        except (BrokerNotFound, BrokerStartError) as exc:
            print(f"sq up: could not start the embedded broker: {exc}")
            return 2
        url = broker.url
    else:
        url = resolve_url(nats_url)
    bus = await Bus.connect(url, name="sq-up")
    try:
        await bus.ensure_streams()
        _print_banner(url, data_dir, http_port)
        await _until_signalled()
    finally:
        await bus.close()
        if broker is not None:
            broker.stop()
    print("ShrivenQuant stopped cleanly.", flush=True)
    return 0


def _print_banner(url: str, data_dir: Path, http_port: int) -> None:
    streams = ", ".join(f"{spec.name} ({' '.join(spec.subjects)})" for spec in STREAMS)
    print(f"""
ShrivenQuant is up.
  broker    {url}  (JetStream store under {data_dir / 'nats'})
  streams   {streams}

Try it (with the nats CLI, or any NATS client), publishing an order intent:
  nats --server {url} pub sq.ord.intent.ACC1 \\
    '{{"account":"ACC1","client_order_id":"demo-1","symbol":"BTCUSDT","side":"BUY","quantity":"0.25","limit_price":"43210.50"}}'
  nats --server {url} stream ls

Stage note: this build runs the broker and the event streams; the recorder, processors and the
HTTP gateway on :{http_port} join `sq up` as they land (see README, "Status").
Ctrl-C stops everything cleanly.
""", flush=True)


async def _until_signalled() -> None:
    """Wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
