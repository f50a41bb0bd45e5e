"""The venue credential store and session cache: sealed at rest, masked everywhere, renewed on expiry."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from processors.connector.credentials import (
    IST,
    BinanceCredentials,
    CredentialError,
    CredentialStore,
    KiteCredentials,
    SessionCache,
    kite_session_expiry,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-VALUE-never-shown"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQ_MASTER_KEY", raising=False)


def test_set_then_get_returns_typed_credentials_and_file_holds_no_plaintext(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.set("binance", "api_key", "KEY-abc")
    store.set("binance", "api_secret", SECRET)
    creds = CredentialStore(tmp_path).get("binance")
    assert creds == BinanceCredentials(api_key="KEY-abc", api_secret=SECRET)
    blob = (tmp_path / "secrets" / "venues.sealed").read_bytes()
    assert SECRET.encode() not in blob and b"KEY-abc" not in blob
    assert (tmp_path / "secrets" / "venues.sealed").stat().st_mode & 0o077 == 0


def test_credentials_str_repr_and_logging_never_contain_the_secret(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    creds = KiteCredentials(user_id=SECRET, password=SECRET, totp_seed=SECRET, api_key=SECRET, api_secret=SECRET)
    assert SECRET not in repr(creds) and SECRET not in str(creds) and SECRET not in f"{creds}"
    assert SECRET not in repr([creds]) and SECRET not in repr({"c": creds})
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("creds %s %r", creds, creds, extra={"creds": creds})
    assert SECRET not in caplog.text
    assert all(SECRET not in repr(r.__dict__) for r in caplog.records)
    assert "password=***" in repr(creds)


def test_get_when_fields_missing_then_error_names_fields_not_values(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.set("kite", "password", SECRET)
    with pytest.raises(CredentialError) as info:
        store.get("kite")
    assert info.value.venue == "kite" and "user_id" in str(info.value) and "totp_seed" in str(info.value)
    assert SECRET not in str(info.value)


def test_set_when_unknown_field_or_venue_then_error_names_it(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    with pytest.raises(CredentialError, match="passwd is not a field of kite"):
        store.set("kite", "passwd", "x")
    with pytest.raises(CredentialError, match="ftx is not a known venue"):
        store.set("ftx", "api_key", "x")


def test_listing_shows_which_fields_are_set_and_delete_forgets(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.set("kite", "user_id", "AB1234")
    assert store.listing()["kite"] == {"user_id": True, "password": False, "totp_seed": False, "api_key": False,
                                       "api_secret": False}
    assert store.delete("kite") is True
    assert store.delete("kite") is False
    assert store.listing()["kite"]["user_id"] is False


def _sq(tmp_path: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SQ_MASTER_KEY"}
    return subprocess.run([sys.executable, "-m", "processors.connector.credentials", *argv,
                           "--data-dir", str(tmp_path)], input=stdin, capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=30)


def test_cli_set_reads_stdin_and_list_never_prints_values(tmp_path: Path) -> None:
    done = _sq(tmp_path, "set", "binance", "--field", "api_secret", stdin=SECRET + "\n")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    listed = _sq(tmp_path, "list")
    assert listed.returncode == 0
    assert "binance: api_key=missing api_secret=set" in listed.stdout
    assert SECRET not in listed.stdout + listed.stderr
    assert CredentialStore(tmp_path)._file.read()["binance"]["api_secret"] == SECRET
    gone = _sq(tmp_path, "delete", "binance")
    assert gone.returncode == 0 and "deleted" in gone.stdout


def test_cli_set_when_empty_value_then_exit_2_naming_field(tmp_path: Path) -> None:
    done = _sq(tmp_path, "set", "kite", "--field", "password", stdin="\n")
    assert done.returncode == 2 and "kite.password is empty" in done.stderr


def test_kite_expiry_is_next_0600_ist_capped_at_12h() -> None:
    evening = datetime(2026, 3, 2, 20, 0, tzinfo=IST)
    assert kite_session_expiry(evening) == datetime(2026, 3, 3, 6, 0, tzinfo=IST)
    morning = datetime(2026, 3, 2, 9, 15, tzinfo=IST)
    assert kite_session_expiry(morning) == morning + timedelta(hours=12)
    early = datetime(2026, 3, 2, 5, 0, tzinfo=IST)
    assert kite_session_expiry(early) == datetime(2026, 3, 2, 6, 0, tzinfo=IST)


async def test_session_cache_reuses_until_expiry_then_logs_in_again(tmp_path: Path) -> None:
    now = [datetime(2026, 3, 2, 14, 30, tzinfo=UTC)]
    cache = SessionCache(tmp_path, clock=lambda: now[0])
    issued = iter(["tok-1", "tok-2"])

    async def login() -> tuple[str, datetime]:
        return next(issued), kite_session_expiry(now[0])

    assert await cache.token("kite", login) == "tok-1"
    assert await SessionCache(tmp_path, clock=lambda: now[0]).token("kite", login) == "tok-1"
    assert cache.logins == 1
    assert b"tok-1" not in (tmp_path / "secrets" / "sessions.sealed").read_bytes()
    now[0] += timedelta(hours=12)
    assert await cache.token("kite", login) == "tok-2"
    assert cache.logins == 2
    assert "tok-2" not in repr(cache.cached("kite"))
