"""`sq processor recorder`: the recorder (store.recorder) as a service, JetStream → WAL for every stream."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from events.logs import configure_logging
from events.process import add_service_arguments, connect_bus, start_service_http, stop_on_signals
from events.subjects import STREAMS
from store.recorder import DEFAULT_SEAL_EVERY_S, StreamRecorder, record

log = logging.getLogger(__name__)

DEFAULT_PORT = 50059


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sq processor recorder`."""
    # The recorder is the single writer of each stream's WAL: it is never partitioned.
    add_service_arguments(parser, default_port=DEFAULT_PORT,
                          data_dir_help="data directory; the WAL is written under DATA_DIR/wal")
    parser.add_argument("--streams", default=",".join(spec.name for spec in STREAMS),
                        help="comma-separated streams to record (default: all)")
    parser.add_argument("--seal-every-s", type=float, default=DEFAULT_SEAL_EVERY_S,
                        help="seal the open segment this often when records arrived, so backups include them "
                             f"(default {DEFAULT_SEAL_EVERY_S:.0f})")


def main(args: argparse.Namespace) -> int:
    """Record until SIGINT/SIGTERM; exit 1 if the WAL failed (nothing after the failure was acknowledged)."""
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    configure_logging("recorder", args.log_level)
    bus = await connect_bus(args, "recorder")
    stop = stop_on_signals()
    recorders: list[StreamRecorder] = []

    def problems() -> list[str]:
        return [problem for recorder in recorders for problem in recorder.problems()]

    http = await start_service_http(args.port, ready=lambda: not stop.is_set() and not problems(),
                                    details=lambda: {"problems": problems()}, host=args.host)
    try:
        await record(bus, Path(args.data_dir) / "wal", [s for s in args.streams.split(",") if s], stop,
                     seal_every_s=args.seal_every_s, recorders=recorders)
    except Exception:  # noqa: BLE001 - logged with its cause; the exit code tells the supervisor
        log.exception("recorder failed")
        return 1
    finally:
        await http.cleanup()
        await bus.close()
    return 0
