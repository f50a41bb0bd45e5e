"""The `sq` command line: broker, schema, bench, up, and the subcommands each part registers
(`sq user`: gateway.user_cli, `sq report`: gateway.report_cli)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Arrow picks its allocator once, as pyarrow loads, so this comes before every import that loads it:
# the C allocator gives back what Arrow frees (projections.memory), mimalloc keeps it.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

from events.broker import BrokerNotFound, BrokerStartError, embedded_broker  # noqa: E402
from events.process import fix_mmap_threshold  # noqa: E402
from events.schema import write_schemas  # noqa: E402


def _cmd_broker(args: argparse.Namespace) -> int:
    """Run an embedded JetStream broker in the foreground until SIGINT or SIGTERM."""
    broker = embedded_broker(Path(args.store_dir), port=args.port, monitor_port=args.monitor_port)
    try:
        broker.start()
    except (BrokerNotFound, BrokerStartError) as exc:
        print(f"sq broker: {exc}", file=sys.stderr)
        return 2
    print(f"nats-server with JetStream listening on {broker.url} "
          f"(monitoring http://127.0.0.1:{broker.monitor_port}, store {broker.store_dir}); Ctrl-C stops it",
          flush=True)
    _wait_for_signal()
    broker.stop()
    print("broker stopped", flush=True)
    return 0


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM arrives."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not received:
            signal.pause()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _cmd_schema(args: argparse.Namespace) -> int:
    """Write the JSON Schema of every event type."""
    for path in write_schemas(Path(args.out)):
        print(path)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run one benchmark (or all) and print JSON or a table."""
    from gateway.bench import run_benchmarks

    return run_benchmarks(args.name, as_json=args.json, table=args.table, out_dir=Path(args.out))


def _cmd_up(args: argparse.Namespace) -> int:
    """Run the whole stack on an embedded broker until Ctrl-C."""
    from gateway.up import run_stack

    return asyncio.run(run_stack(data_dir=Path(args.data_dir), http_port=args.http_port, nats_url=args.nats_url,
                                 venue=args.venue, venue_markets=args.venue_markets, venue_options=args.venue_option))


# `sq processor NAME`: each module offers add_arguments(parser) and main(args) -> exit code.
PROCESSORS: dict[str, tuple[str, str]] = {
    "portfolio": ("processors.portfolio.runner", "rebalancing, attribution and reconciliation of target weights"),
    "reporting": ("processors.reporting.runner", "a real-time trade report per fill on sq.rpt.trade.<account>"),
    "recorder": ("processors.recorder.runner", "JetStream to WAL, one log per stream, with durable watermarks"),
    "aggregator": ("processors.aggregator.runner", "bars, L2 books and book tops from trades and depth updates"),
    "binance": ("processors.connector.binance.runner", "Binance spot market data (and, with --trade, orders)"),
    "connector": ("processors.connector.runner", "replay recordings onto the bus (once, or looping shifted to now)"),
    "kite": ("processors.connector.kite.runner", "Zerodha Kite market data (and, with --trade, orders and postbacks)"),
    "risk": ("processors.risk.runner", "pre-trade risk checks, circuit breakers, kill switch"),
    "router": ("processors.router.runner", "parent orders to child orders (MARKET, LIMIT, TWAP, VWAP, POV), TCA"),
    "venue-sim": ("processors.venue_sim.runner", "simulated venues filling child orders against the market"),
}


def _cmd_processor(args: argparse.Namespace) -> int:
    """Run one processor as its own process."""
    import importlib

    module = importlib.import_module(PROCESSORS[args.processor][0])
    code: int = module.main(args)
    return code


Registrar = Callable[[argparse._SubParsersAction], None]  # type: ignore[type-arg]


def _part_registrars() -> list[Registrar]:
    """Subcommands that live with the part they operate (store's `wal`, market data's `md`, …)."""
    from gateway.report_cli import register as register_report
    from gateway.user_cli import register as register_user
    from processors.connector.credentials import register as register_creds
    from processors.marketdata_cli import register as register_md
    from processors.portfolio.cli import register as register_portfolio
    from store.cli import register as register_store

    return [register_store, register_md, register_creds, register_report, register_portfolio, register_user]


def build_parser() -> argparse.ArgumentParser:
    """The full `sq` argument parser."""
    parser = argparse.ArgumentParser(prog="sq", description="ShrivenQuant: event-sourced trading back end")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = sub.add_parser("broker", help="run an embedded nats-server with JetStream in the foreground")
    broker.add_argument("--port", type=int, default=4222, help="client port (default 4222)")
    broker.add_argument("--monitor-port", type=int, default=8222, help="monitoring port (default 8222)")
    broker.add_argument("--store-dir", default="var/nats", help="JetStream storage directory (default var/nats)")
    broker.set_defaults(func=_cmd_broker)

    schema = sub.add_parser("schema", help="write the JSON Schema of every event type")
    schema.add_argument("--out", default="schemas", help="output directory (default ./schemas)")
    schema.set_defaults(func=_cmd_schema)

    bench = sub.add_parser("bench", help="run a benchmark beside its in-run baseline")
    bench.add_argument("name", help="benchmark name (bus, wal, replay, …) or 'all'")
    bench.add_argument("--json", action="store_true", help="print one JSON object per benchmark")
    bench.add_argument("--table", action="store_true", help="print a Markdown table of every result")
    bench.add_argument("--out", default="bench-results", help="where JSON results are written")
    bench.set_defaults(func=_cmd_bench)

    up = sub.add_parser("up", help="run the whole stack on an embedded broker until Ctrl-C")
    up.add_argument("--data-dir", default="var", help="data directory (default ./var)")
    up.add_argument("--http-port", type=int, default=8080, help="gateway HTTP port (default 8080)")
    up.add_argument("--nats-url", default=None,
                    help="use a running NATS server instead of starting one (also $SQ_NATS_URL)")
    up.add_argument("--venue", choices=("binance", "kite"), default=None,
                    help="run this live venue (credentials from `sq creds`) instead of the simulated one")
    up.add_argument("--venue-markets", default=None,
                    help="with --venue: Binance symbols (BTCUSDT,...) or Kite instruments (NSE:INFY,...)")
    up.add_argument("--venue-option", action="append", default=[], metavar="NAME=VALUE",
                    help="with --venue: pass --NAME VALUE to the live runner (e.g. rest-url=https://testnet...)")
    up.set_defaults(func=_cmd_up)

    processor = sub.add_parser("processor", help="run one processor as its own process (see ARCHITECTURE.md)")
    processor_sub = processor.add_subparsers(dest="processor", required=True, metavar="NAME")
    for name, (module_name, summary) in PROCESSORS.items():
        import importlib

        module = importlib.import_module(module_name)
        parser_for = processor_sub.add_parser(name, help=summary, description=module.__doc__)
        module.add_arguments(parser_for)
        parser_for.set_defaults(func=_cmd_processor)

    gateway_parser = sub.add_parser("gateway", help="serve the HTTP/WebSocket API with its projections")
    from gateway import server

    server.add_arguments(gateway_parser)
    gateway_parser.set_defaults(func=server.main)

    for register in _part_registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sq` console script."""
    args = build_parser().parse_args(argv)
    # Every long-running `sq` process pickles snapshots or writes checkpoints: big buffers that must go
    # back to the OS when freed, or memory creeps up with each one (events.process.fix_mmap_threshold).
    fix_mmap_threshold()
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
