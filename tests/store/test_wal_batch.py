"""The column-wise batch framing writes exactly the bytes of the one-record reference encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Entry, WalReader, WalRecordError, WalSequenceError, WalWriter
from store._format import HEADER_SIZE, encode_record
from store._segments import mapped


def test_batch_bytes_equal_the_reference_encoding_for_mixed_names_schemas_and_payload_kinds(tmp_path: Path) -> None:
    entries = [Entry(b'{"a":%d}' % i if i % 3 else bytearray(b"x" * i), 1_700_000_000 + i,
                     f"sq.md.trade.V.S{i % 4}", ["Trade", "Bar", ""][i % 3], None, i % 5) for i in range(50)]
    with WalWriter.open(tmp_path, contiguous=True) as writer:
        writer.append_batch(entries)
        writer.append_batch([Entry(memoryview(b"view payload"), 7, "s", "T")])  # the record-by-record path
        salt = writer._tail.header.salt  # type: ignore[union-attr]
    expected = bytearray()
    for seq, (payload, ts, subject, type_name, _seq, schema) in enumerate(
            [*entries, Entry(b"view payload", 7, "s", "T")], start=1):
        names = subject.encode() + type_name.encode()
        expected += encode_record(rtype=1, seq=seq, ts=ts, salt=salt, sync_back=0 if seq == 51 else len(expected),
                                  subject_type=names, subject_len=len(subject.encode()),
                                  type_len=len(type_name.encode()), payload=bytes(payload), schema=schema)
    with mapped(tmp_path / "00000000000000000001.wal") as view:
        written = bytes(view[HEADER_SIZE:])
    assert written == bytes(expected)
    assert [bytes(r.payload) for r in WalReader(tmp_path).records()][-1] == b"view payload"


@pytest.mark.parametrize(("entry", "error"), [
    (Entry(b"x", 1.5, "s", "T"), WalRecordError),  # type: ignore[arg-type]
    (Entry(b"x", 1, "s", "T", seq=True), WalRecordError),  # type: ignore[arg-type]
    (Entry(b"x", 1, "s", "T", schema=70_000), WalRecordError),
    (Entry(b"x", 1, "s", "T", seq=2), WalSequenceError),
    (Entry("text", 1, "s", "T"), WalRecordError),  # type: ignore[arg-type]
])
def test_a_bad_entry_in_a_batch_is_named_by_index_and_nothing_is_written(tmp_path: Path, entry: Entry,
                                                                         error: type[Exception]) -> None:
    with WalWriter.open(tmp_path, contiguous=True) as writer:
        writer.append_batch([Entry(b"ok", 1)])
        with pytest.raises(error) as caught:
            writer.append_batch([Entry(b"fine", 2), Entry(b"fine", 3), entry])
        assert caught.value.index == 2 and writer.last_seq == 1  # type: ignore[attr-defined]
