"""What every processor process shares beyond any service (events.process): partitions, snapshots, the host loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from events._base import Event
from events.bus import Bus, resolve_url
from events.codec import AnyEvent
from events.logs import configure_logging
from events.process import add_service_arguments, start_service_http, stop_on_signals
from processors.host import ProcessorHost
from processors.partition import Partition
from processors.snapshots import Expected, SnapshotStore, state_digest
from store.follow import HistoryGone

log = logging.getLogger(__name__)


# Snapshot cadence: a restart folds in at most this tail (about 25k events: well under a second on a
# 2-core machine), and a snapshot of a busy core costs one pickle of its state per few seconds.
DEFAULT_SNAPSHOT_EVENTS = 25_000
DEFAULT_SNAPSHOT_S = 30.0


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a whole number above 0")
    return number


def add_common_arguments(parser: argparse.ArgumentParser, *, default_port: int, partitionable: bool = True,
                         snapshots: bool = True) -> None:
    """A service's options (events.process), then --partition and the snapshot cadence."""
    add_service_arguments(parser, default_port=default_port,
                          data_dir_help="data directory; the WAL is read from DATA_DIR/wal")
    if snapshots:
        parser.add_argument("--snapshot-every-events", type=_positive_int, default=DEFAULT_SNAPSHOT_EVENTS,
                            help="snapshot the core's state after this many events (default "
                                 f"{DEFAULT_SNAPSHOT_EVENTS:,}) ...")
        parser.add_argument("--snapshot-every-s", type=float, default=DEFAULT_SNAPSHOT_S,
                            help=f"... or this many seconds, whichever comes first (default {DEFAULT_SNAPSHOT_S:g}); "
                                 f"a restart folds in at most that much after the newest snapshot")
        parser.add_argument("--no-snapshots", action="store_true",
                            help="neither read nor write snapshots: every start rebuilds from the first record")
    if not partitionable:
        return
    parser.add_argument("--partition", default="0/1", type=Partition.parse,
                        help="K/N: handle the accounts hashing to K of N, so N instances share the work "
                             "(default 0/1: everything)")


def host_details(host: ProcessorHost[Any]) -> dict[str, Any]:
    """What a processor's /readyz adds: events applied and live events received but not yet applied."""
    # The live feed exists once the host has caught up from the WAL; before that the lag is unknown.
    return {"applied_events": host.applied, "lag_events": host.lag()}


async def run_core(name: str, args: argparse.Namespace, *, streams: Sequence[str], state: Any,
                   decide: Callable[[Any, AnyEvent], list[Event]], evolve: Callable[[Any, AnyEvent], Any],
                   state_version: int, subscriptions: Sequence[str], apply_outputs: bool = False,
                   companions: Sequence[Callable[[Bus, asyncio.Event], Coroutine[Any, Any, None]]] = (),
                   on_live: Callable[[Any, list[AnyEvent], list[Event]], None] | None = None) -> int:
    """Run a pure core as a service until SIGINT/SIGTERM: rebuild from the WAL, then follow JetStream.

    `companions` run beside the core with the same bus and stop event (the router's timer).
    `state_version` is the core's STATE_VERSION: a snapshot of another version is never restored.
    `subscriptions` are the core's SUBSCRIPTIONS: the broker delivers only those subjects.
    """
    configure_logging(name, args.log_level)
    bus = await Bus.connect(resolve_url(args.nats_url), name=name)
    await bus.ensure_streams()
    snapshots = None
    if not args.no_snapshots:
        expected = Expected(processor=name, partition=args.partition.label,
                            state_version=state_version, origin=state_digest(state))
        snapshots = await SnapshotStore(bus, expected).open()
    host = ProcessorHost(name=name, bus=bus, wal_root=Path(args.data_dir) / "wal", streams=streams, state=state,
                         decide=decide, evolve=evolve, subscriptions=subscriptions,
                         partition=args.partition,
                         apply_outputs=apply_outputs, on_live=on_live, snapshots=snapshots,
                         snapshot_every_events=args.snapshot_every_events,
                         snapshot_every_s=args.snapshot_every_s)
    http = await start_service_http(args.port, ready=host.caught_up.is_set, host=args.host,
                                    details=lambda: host_details(host))
    stop = stop_on_signals()
    log.info("started", extra={"processor": name, "streams": list(streams), "port": args.port})
    beside = [asyncio.create_task(companion(bus, stop)) for companion in companions]
    try:
        await host.run(stop)
    except HistoryGone as exc:
        log.error("cannot start: history is gone", extra={"processor": name, "stream": exc.stream,
                                                          "needed_from": exc.needed_from,
                                                          "first_held": exc.first_held})
        print(f"{name}: {exc}", file=sys.stderr)
        return 3
    finally:
        stop.set()
        await asyncio.gather(*beside)
        await http.cleanup()
        await bus.close()
    log.info("stopped", extra={"processor": name, "events": host.applied})
    return 0
