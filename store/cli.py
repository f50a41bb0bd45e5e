"""`sq wal` (append, cat, verify, repair one log, like Kafka's dump-log), `sq replay` and `sq store`.

`sq replay` and `sq store` work on a WAL root: one log per JetStream stream at ROOT/<STREAM>/.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from events.commands import run_subcommands
from store.errors import WalCorruptionError, WalError
from store.reader import WalReader
from store.recovery import repair
from store.writer import Entry, WalWriter

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()
_END = object()
MAX_LINES_PER_BATCH = 4096


def register(subparsers: Any) -> None:
    """Add the `wal` command and its subcommands to an argparse subparsers object."""
    wal = subparsers.add_parser("wal", help="inspect and operate a write-ahead log directory")
    commands = wal.add_subparsers(dest="wal_command", required=True)

    append = commands.add_parser("append", help="append each stdin line as a record; print each durable sequence")
    append.add_argument("dir", type=Path)
    append.add_argument("--subject", default="", help="NATS subject stored with every record")
    append.add_argument("--type", default="", dest="event_type", help="event type name stored with every record")
    append.set_defaults(func=cmd_append)

    cat = commands.add_parser("cat", help="print records as JSON lines")
    cat.add_argument("dir", type=Path)
    cat.add_argument("--from", dest="start", type=int, default=None, help="first sequence (inclusive)")
    cat.add_argument("--to", dest="end", type=int, default=None, help="last sequence (inclusive)")
    cat.add_argument("--type", dest="types", action="append", default=None, help="event type (repeatable)")
    cat.add_argument("--subject", default=None, help="NATS subject pattern (* and > wildcards)")
    cat.set_defaults(func=cmd_cat)

    verify = commands.add_parser("verify", help="check every CRC, seal and the hash chain")
    verify.add_argument("dir", type=Path)
    verify.set_defaults(func=cmd_verify)

    fix = commands.add_parser("repair", help="keep the good prefix, move damaged bytes to .broken files")
    fix.add_argument("dir", type=Path)
    fix.add_argument("--truncate-sealed", action="store_true",
                     help="also cut at damage inside a sealed segment (later segments move to .broken)")
    fix.set_defaults(func=cmd_repair)

    from store._cli_ops import register_replay, register_store

    register_replay(subparsers)
    register_store(subparsers)


def _read_lines(source: Any, lines: queue.Queue[object]) -> None:
    """Feed stdin lines to the writer loop, so lines arriving during an fsync join the next batch."""
    for line in source:
        lines.put(line[:-1] if line.endswith(b"\n") else line)
    lines.put(_END)


def cmd_append(args: argparse.Namespace) -> int:
    """Append stdin lines with group commit; print each sequence once durable."""
    lines: queue.Queue[object] = queue.Queue(maxsize=4 * MAX_LINES_PER_BATCH)
    reader = threading.Thread(target=_read_lines, args=(sys.stdin.buffer, lines), daemon=True)
    reader.start()
    out = sys.stdout
    try:
        with WalWriter.open(args.dir, contiguous=True) as writer:
            done = False
            while not done:
                batch = [lines.get()]
                while len(batch) < MAX_LINES_PER_BATCH and not lines.empty():
                    batch.append(lines.get_nowait())
                if batch[-1] is _END:
                    batch.pop()
                    done = True
                if not batch:
                    continue
                now = time.time_ns()
                entries = [Entry(line, now, args.subject, args.event_type) for line in batch]  # type: ignore[arg-type]
                seqs = writer.append_batch(entries)
                out.write("".join(f"{seq}\n" for seq in seqs))
                out.flush()
    except WalError as exc:
        print(f"sq wal append: {exc}", file=sys.stderr)
        return 1
    return 0


def _payload_json(payload: memoryview) -> Any:
    """The payload as JSON if it parses, else as text."""
    try:
        return _decode.decode(payload)
    except msgspec.DecodeError:
        return bytes(payload).decode("utf-8", "backslashreplace")


def cmd_cat(args: argparse.Namespace) -> int:
    """Print records in sequence order as JSON lines."""
    reader = WalReader(args.dir, persist_index=False)
    out = sys.stdout.buffer
    try:
        for record in reader.records(start_seq=args.start, end_seq=args.end, types=args.types, subject=args.subject):
            line = {"seq": record.seq, "ts": record.ts, "subject": record.subject, "type": record.type,
                    "payload": _payload_json(record.payload)}
            out.write(_json.encode(line) + b"\n")
            record.payload.release()
    except WalError as exc:
        out.flush()
        print(f"sq wal cat: {exc}", file=sys.stderr)
        return 1
    out.flush()
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify the whole log; print one JSON object; exit 1 naming the first bad segment and offset."""
    try:
        report = WalReader(args.dir, persist_index=False).verify()
    except WalCorruptionError as exc:
        _print_json({"ok": False, "segment": exc.segment.name, "offset": exc.offset, "reason": exc.reason})
        print(f"sq wal verify: {exc}", file=sys.stderr)
        return 1
    torn = None
    if report.torn_tail is not None:
        segment, offset, size = report.torn_tail
        torn = {"segment": segment.name, "offset": offset, "bytes": size}
    _print_json({"ok": True, "segments": report.segments, "sealed": report.sealed, "records": report.records,
                 "last_seq": report.last_seq, "chain_hash": report.chain_hash.hex() if report.chain_hash else None,
                 "torn_tail": torn})
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """Repair the log; print what moved where as one JSON object."""
    try:
        report = repair(args.dir, truncate_sealed=args.truncate_sealed)
    except WalError as exc:
        print(f"sq wal repair: {exc}", file=sys.stderr)
        return 1
    _print_json({
        "moved": [{"segment": seg.name, "side_file": side.name, "offset": offset} for seg, side, offset in report.moved],
        "kept_records": report.kept_records,
        "quarantined_valid_records": report.quarantined_valid_records,
        "truncated": [{"segment": seg.name, "offset": offset, "bytes": size}
                      for seg, offset, size, _valid in report.recovery.truncated],
        "removed": [path.name for path in report.recovery.removed],
    })
    return 0


def _print_json(value: object) -> None:
    """One JSON object on stdout."""
    sys.stdout.write(_json.encode(value).decode() + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Run `wal ...` without the full `sq` command (tests and operators without the gateway installed)."""
    return run_subcommands(register, argv)



if __name__ == "__main__":
    sys.exit(main())
