"""`sq replay` and `sq store export|backup|restore|verify`: operating on a whole WAL root."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import msgspec

from events._base import iso_instant_ns
from store._progress import Progress
from store.errors import WalCorruptionError, WalError

DEFAULT_WAL_ROOT = Path("var/wal")
_json = msgspec.json.Encoder()


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from an integer (ns) or an ISO 8601 time (UTC unless it has an offset)."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return iso_instant_ns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"time {text!r} is neither integer nanoseconds nor ISO 8601") from exc


def _progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", action="store_true",
                        help="print a progress line on stderr even when it is not a terminal")


def _progress(args: argparse.Namespace, label: str, total: int | None = None) -> Progress:
    return Progress(label, enabled=bool(args.progress) or sys.stderr.isatty(), total=total)


def register_replay(subparsers: Any) -> None:
    """Add `replay`."""
    replay = subparsers.add_parser("replay", help="read recorded history with filters, or republish it to JetStream")
    replay.add_argument("--wal-root", type=Path, default=DEFAULT_WAL_ROOT, help="WAL root (default var/wal)")
    replay.add_argument("--stream", dest="streams", action="append", default=None,
                        help="stream to read (repeatable; default every recorded stream)")
    replay.add_argument("--from-ts", type=parse_time, default=None,
                        help="first record time, inclusive (ns or ISO 8601, e.g. 2024-03-01T09:15:00Z)")
    replay.add_argument("--to-ts", type=parse_time, default=None, help="end record time, exclusive")
    replay.add_argument("--subject", default=None, help="NATS subject pattern (* and > wildcards)")
    replay.add_argument("--type", dest="types", action="append", default=None, help="event type (repeatable)")
    replay.add_argument("--correlation-id", default=None,
                        help="only events of this order/session: its correlation_id, or its own id")
    replay.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    replay.add_argument("--out", default="-", help="output file, or - for stdout (default)")
    replay.add_argument("--republish", action="store_true",
                        help="restore wiped JetStream streams from the WAL instead of writing a file")
    replay.add_argument("--nats-url", default=None, help="broker for --republish (default $SQ_NATS_URL or local)")
    _progress_flag(replay)
    replay.set_defaults(func=cmd_replay)


def register_store(subparsers: Any) -> None:
    """Add `store` and its subcommands."""
    store = subparsers.add_parser("store", help="export, back up, restore and verify a whole WAL root")
    commands = store.add_subparsers(dest="store_command", required=True)

    export = commands.add_parser("export", help="sealed segments to Parquet, partitioned by day and event type")
    export.add_argument("wal_root", type=Path)
    export.add_argument("out_dir", type=Path)
    export.add_argument("--stream", dest="streams", action="append", default=None)
    _progress_flag(export)
    export.set_defaults(func=cmd_export)

    backup = commands.add_parser("backup", help="copy sealed segments, hash-verified, incrementally, to DEST")
    backup.add_argument("wal_root", type=Path)
    backup.add_argument("dest", type=Path)
    backup.add_argument("--stream", dest="streams", action="append", default=None)
    _progress_flag(backup)
    backup.set_defaults(func=cmd_backup)

    restore = commands.add_parser("restore", help="verify a backup, copy it into WAL_ROOT, verify the result")
    restore.add_argument("src", type=Path)
    restore.add_argument("wal_root", type=Path)
    restore.add_argument("--stream", dest="streams", action="append", default=None)
    restore.add_argument("--force", action="store_true",
                         help="move existing segments aside (to WAL_ROOT/.pre-restore/) instead of refusing")
    _progress_flag(restore)
    restore.set_defaults(func=cmd_restore)

    verify = commands.add_parser("verify", help="verify every stream's log under a WAL root or a backup directory")
    verify.add_argument("root", type=Path)
    verify.set_defaults(func=cmd_verify_root)


def _print(value: object) -> None:
    sys.stdout.write(_json.encode(value).decode() + "\n")
    sys.stdout.flush()


def _fail(command: str, exc: BaseException) -> int:
    print(f"sq {command}: {exc}", file=sys.stderr)
    return 1


def cmd_replay(args: argparse.Namespace) -> int:
    """Write matching records as JSONL or Parquet, or republish whole streams."""
    from store.replay import ReplayFilter, recorded_streams, replay, run_republish, write_jsonl, write_parquet

    if args.republish:
        if any(value is not None for value in (args.from_ts, args.to_ts, args.subject, args.types,
                                               args.correlation_id)):
            return _fail("replay", ValueError("--republish restores whole streams; it takes no filters"))
        try:
            for stream in args.streams or recorded_streams(args.wal_root):
                progress = _progress(args, f"republish {stream}")
                report = run_republish(args.wal_root, stream, args.nats_url, progress=progress)
                progress.done()
                _print(dataclasses.asdict(report))
        except (WalError, RuntimeError, OSError) as exc:
            return _fail("replay --republish", exc)
        return 0
    where = ReplayFilter(args.from_ts, args.to_ts, args.subject,
                         frozenset(args.types) if args.types else None, args.correlation_id)
    progress = _progress(args, "replay")
    try:
        records = replay(args.wal_root, streams=args.streams, where=where)
        if args.format == "jsonl":
            if args.out == "-":
                write_jsonl(records, sys.stdout.buffer, progress=progress)
            else:
                with open(args.out, "wb") as out:
                    write_jsonl(records, out, progress=progress)
        else:
            write_parquet(records, sys.stdout.buffer if args.out == "-" else args.out, progress=progress)
    except (WalError, FileNotFoundError) as exc:
        return _fail("replay", exc)
    except BrokenPipeError:  # `sq replay | head`: the reader has what it wanted
        return 0
    progress.done()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export sealed segments; print what was done as one JSON object."""
    from store.export import export

    progress = _progress(args, "export")
    try:
        report = export(args.wal_root, args.out_dir, streams=args.streams, progress=progress)
    except WalError as exc:
        return _fail("store export", exc)
    progress.done()
    _print({"exported": report.exported, "skipped": report.skipped, "files": report.files,
            "records": report.records, "unsealed": report.unsealed})
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """Back up sealed segments; print what was copied and skipped."""
    from store.backup import backup

    progress = _progress(args, "backup")
    try:
        report = backup(args.wal_root, args.dest, streams=args.streams, progress=progress)
    except WalError as exc:
        return _fail("store backup", exc)
    progress.done()
    _print({"copied": report.copied, "skipped": report.skipped, "unsealed": report.unsealed,
            "bytes_copied": report.bytes_copied})
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore from a backup; exit 1 (naming the file) when the backup is not whole or the target is in use."""
    from store.backup import restore

    progress = _progress(args, "restore")
    try:
        report = restore(args.src, args.wal_root, streams=args.streams, force=args.force, progress=progress)
    except WalError as exc:
        _print({"ok": False, "error": str(exc)})
        return _fail("store restore", exc)
    progress.done()
    _print({"ok": True, "chain_hashes": report.streams, "files": report.files, "records": report.records,
            "moved_aside": report.moved_aside})
    return 0


def cmd_verify_root(args: argparse.Namespace) -> int:
    """Verify every stream's log (and, for a backup, every file against its manifest); exit 1 on the first damage."""
    from store.backup import MANIFEST, BackupError, verify_backup
    from store.reader import WalReader
    from store.replay import recorded_streams

    root: Path = args.root
    results: dict[str, object] = {}
    try:
        if (root / MANIFEST).exists():
            for stream, chain in verify_backup(root).items():
                results[stream] = {"ok": True, "chain_hash": chain}
        else:
            for stream in recorded_streams(root):
                report = WalReader(root / stream, persist_index=False).verify()
                results[stream] = {"ok": True, "segments": report.segments, "records": report.records,
                                   "last_seq": report.last_seq,
                                   "chain_hash": report.chain_hash.hex() if report.chain_hash else None}
    except BackupError as exc:
        _print({"ok": False, "file": str(exc.path), "reason": exc.reason})
        return _fail("store verify", exc)
    except WalCorruptionError as exc:
        _print({"ok": False, "segment": str(exc.segment), "offset": exc.offset, "reason": exc.reason})
        return _fail("store verify", exc)
    _print({"ok": True, "streams": results})
    return 0
