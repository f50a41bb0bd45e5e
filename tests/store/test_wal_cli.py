"""The `wal` operator commands, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from store import WalReader
from store._format import HEADER_SIZE

ROOT = Path(__file__).resolve().parents[2]


def sq(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run `python -m store.cli ...` from the repository root."""
    return subprocess.run([sys.executable, "-m", "store.cli", *args], input=stdin, cwd=ROOT, capture_output=True,
                          timeout=60, check=False)


def test_append_prints_each_durable_sequence_and_cat_prints_json_lines(tmp_path: Path) -> None:
    lines = b'{"qty":"1.5"}\nnot json\n\n{"a":[1,2]}\n'
    done = sq("wal", "append", str(tmp_path), "--subject", "sq.ord.intent.ACC1", "--type", "OrderIntent", stdin=lines)
    assert done.returncode == 0 and done.stdout.split() == [b"1", b"2", b"3", b"4"]
    assert [bytes(r.payload) for r in WalReader(tmp_path).records()] == [b'{"qty":"1.5"}', b"not json", b"", b'{"a":[1,2]}']
    shown = sq("wal", "cat", str(tmp_path), "--from", "2", "--to", "4", "--type", "OrderIntent", "--subject", "sq.ord.>")
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert shown.returncode == 0 and [row["seq"] for row in rows] == [2, 3, 4]
    assert rows[0]["payload"] == "not json" and rows[2]["payload"] == {"a": [1, 2]}
    assert rows[0]["subject"] == "sq.ord.intent.ACC1" and rows[0]["type"] == "OrderIntent"
    again = sq("wal", "append", str(tmp_path), stdin=b"x\n")
    assert again.stdout.split() == [b"5"]


def test_verify_names_segment_and_offset_of_the_first_bad_record_and_repair_fixes_it(tmp_path: Path) -> None:
    for chunk in range(3):
        sq("wal", "append", str(tmp_path), stdin=b"".join(b'{"n":%d}\n' % (chunk * 10 + i) for i in range(10)))
    clean = sq("wal", "verify", str(tmp_path))
    assert clean.returncode == 0 and json.loads(clean.stdout)["records"] == 30
    segment = sorted(tmp_path.glob("*.wal"))[0]
    bad_offset = [r.offset for r in WalReader(tmp_path).records()][12]
    data = bytearray(segment.read_bytes())
    data[bad_offset + 50] ^= 0x20
    segment.write_bytes(bytes(data))
    failed = sq("wal", "verify", str(tmp_path))
    report = json.loads(failed.stdout)
    assert failed.returncode == 1 and (report["segment"], report["offset"]) == (segment.name, bad_offset)
    fixed = sq("wal", "repair", str(tmp_path))
    assert fixed.returncode == 0 and json.loads(fixed.stdout)["kept_records"] == 12
    assert sq("wal", "verify", str(tmp_path)).returncode == 0
    assert bad_offset > HEADER_SIZE
