"""Real crashes: SIGKILLed writer processes, simulated power loss, a full disk, a crash mid-roll."""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import select
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from store import WalFatalError, WalReader, WalWriter
from tests.store._helpers import PowerLoss, PowerLossDisk, assert_survivors, entries_for, read_all


def run_child(body: Callable[[int], None]) -> tuple[int, int]:
    """Fork a child running `body(write_fd)`; return (pid, read_fd). The child never returns to pytest."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        code = 0
        try:
            body(write_fd)
        except BaseException:  # noqa: BLE001 - a child must never unwind into pytest; its exit code reports it
            code = 70
        os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def writer_child(directory: Path, seed: int) -> Callable[[int], None]:
    """A writer that appends random batches forever, reporting each durable last sequence on the pipe."""
    def body(fd: int) -> None:
        rng = random.Random(seed)
        with WalWriter.open(directory, contiguous=True, segment_size=8192) as writer:
            seq = (writer.last_seq or 0) + 1
            while True:
                count = rng.randint(1, 40)
                writer.append_batch(entries_for(range(seq, seq + count)))
                seq += count
                os.write(fd, b"%d\n" % (seq - 1))
    return body


def read_acks(fd: int, want: int, timeout: float) -> list[int]:
    """Read acknowledged sequences until `want` of them arrived or `timeout` passed (bounded poll)."""
    acks: list[int] = []
    buffer = b""
    while len(acks) < want:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        acks += [int(line) for line in lines]
    return acks


def drain(fd: int) -> list[int]:
    """Everything left in the pipe after the child died: acknowledgements sent before the kill."""
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return [int(line) for line in data.split(b"\n") if line.strip()]


def kill_trials(directory: Path, trials: int, seed: int) -> int:
    """SIGKILL a writer at random moments, `trials` times on one log; check survivors after each."""
    rng = random.Random(seed)
    acked = 0
    for trial in range(trials):
        pid, fd = run_child(writer_child(directory, rng.randrange(1 << 30)))
        acks = read_acks(fd, rng.randint(0, 6), timeout=10)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"trial {trial}: the writer died on its own ({status})"
        acks += drain(fd)
        acked = max([acked, *acks])
        assert_survivors(directory, acked)
    return acked


def test_sigkilled_writer_keeps_every_acknowledged_record_over_200_trials(tmp_path: Path) -> None:
    acked = 0
    for log in range(4):
        acked += kill_trials(tmp_path / f"log{log}", 50, seed=log)
    assert acked > 0
    assert WalReader(tmp_path / "log0").verify().records >= 1


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sigkilled_writer_keeps_every_acknowledged_record_over_thousands_of_trials(tmp_path: Path) -> None:
    acked = sum(kill_trials(tmp_path / f"log{log}", 300, seed=1000 + log) for log in range(10))
    assert acked > 0, "some appends were acknowledged before the kills (each survivor checked in kill_trials)"


def power_loss_trials(tmp_path: Path, trials: int, seed: int) -> int:
    """Run a writer on the power-loss shim, cut the power at a random operation, check acked ⇒ durable.

    Returns how many trials had acknowledged records to check.
    """
    rng = random.Random(seed)
    checked = 0
    for trial in range(trials):
        directory = tmp_path / f"trial{trial}"
        acked = 0
        for _power_cycle in range(3):
            disk = PowerLossDisk(rng, crash_after=rng.randint(1, 40))
            writer = WalWriter.open(directory, contiguous=True, segment_size=2048, opener=disk.opener)
            seq = (writer.last_seq or 0) + 1
            try:
                while True:
                    count = rng.randint(1, 12)
                    writer.append_batch(entries_for(range(seq, seq + count)))
                    seq += count
                    acked = seq - 1
            except PowerLoss:
                pass  # the power failed: exactly what this test is about
            try:
                writer.close()
            except PowerLoss:
                pass  # close() tried to sync on a dead disk; the lock is released regardless
            disk.crash()
            assert_survivors(directory, acked)
        checked += acked > 0
    return checked


def test_power_loss_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    assert power_loss_trials(tmp_path, 200, seed=7) > 100, "most trials acknowledged records before the cut"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_power_loss_keeps_every_acknowledged_record_soak(tmp_path: Path) -> None:
    assert power_loss_trials(tmp_path, 2000, seed=8) > 1000, "most trials acknowledged records before the cut"


def test_full_disk_gives_no_acknowledgement_a_clear_error_and_a_log_that_reopens(tmp_path: Path) -> None:
    def body(fd: int) -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so write() fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        writer = WalWriter.open(tmp_path, contiguous=True, segment_size=1 << 20)
        acked = 0
        try:
            for start in range(1, 10_000, 13):
                writer.append_batch(entries_for(range(start, start + 13)))
                acked = start + 12
        except WalFatalError as exc:
            refused_again = False
            try:
                writer.append_batch(entries_for([acked + 1]))
            except WalFatalError:
                refused_again = True
            message = {"acked": acked, "operation": exc.operation, "errno": exc.errno,
                       "durable": exc.durable_seq, "sticky": refused_again}
            os.write(fd, json.dumps(message).encode())
            writer.close()

    pid, fd = run_child(body)
    _, status = os.waitpid(pid, 0)
    report = json.loads(b"".join(iter(lambda: os.read(fd, 65536), b"")))
    os.close(fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert report["operation"] == "write" and report["errno"] == errno.EFBIG and report["sticky"]
    assert report["durable"] == report["acked"] > 0
    with WalWriter.open(tmp_path) as writer:
        # Whole records of the refused batch may have reached the disk; they were never acknowledged.
        last = writer.last_seq
        assert last is not None and last >= report["acked"]
        writer.append_batch(entries_for([last + 1]))
    assert_survivors(tmp_path, last + 1)


@pytest.mark.parametrize("aftermath", ["as_left", "rename_lost", "header_lost"])
def test_crash_between_segment_creation_and_directory_fsync_loses_nothing_and_keeps_no_orphan(
        tmp_path: Path, aftermath: str) -> None:
    def body(fd: int) -> None:
        import store.writer

        calls = []

        def crash_on_roll(directory: Path) -> None:
            calls.append(directory)
            if len(calls) == 2:  # the first call created segment 1; the second is the first roll
                os.kill(os.getpid(), signal.SIGKILL)

        store.writer.fsync_dir = crash_on_roll
        with WalWriter.open(tmp_path, contiguous=True, segment_size=1024) as writer:
            for seq in range(1, 1000):
                writer.append_batch(entries_for([seq]))
                os.write(fd, b"%d\n" % seq)

    pid, fd = run_child(body)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    acked = max(drain(fd))
    orphan = sorted(tmp_path.glob("*.wal"))[-1]
    assert orphan.stat().st_size == 80 and int(orphan.name[:20]) == acked + 1
    if aftermath == "rename_lost":
        orphan.unlink()
    elif aftermath == "header_lost":
        orphan.write_bytes(b"")
    with WalWriter.open(tmp_path) as writer:
        assert writer.last_seq == acked and not orphan.exists()
        writer.append_batch(entries_for([acked + 1]))
    assert_survivors(tmp_path, acked + 1)
    assert len(read_all(tmp_path)) == acked + 1
