"""Venue credentials and venue session tokens, sealed at rest (AES-GCM via store.secrets), and `sq creds`.

Secrets live in `<data_dir>/secrets/venues.sealed` (purpose "venues"); session tokens in
`<data_dir>/secrets/sessions.sealed` (purpose "sessions"), each with its expiry. Values never
reach argv, logs, events, errors or reprs: the credential Structs mask every field in `__repr__`,
and errors name the venue and field, never the value.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

from events.commands import run_subcommands
from store.secrets import SealedFile, SecretError, load_master_key

IST = timezone(timedelta(hours=5, minutes=30))
MAX_SESSION = timedelta(hours=12)
VENUE_FIELDS: dict[str, tuple[str, ...]] = {
    "binance": ("api_key", "api_secret"),
    "kite": ("user_id", "password", "totp_seed", "api_key", "api_secret"),
}
MAX_SECRET_LENGTH = 4096


class CredentialError(ValueError):
    """A credential is unknown, missing or malformed; `venue`, `field` and `reason` say which (never the value)."""

    def __init__(self, venue: str, field: str | None, reason: str) -> None:
        super().__init__(f"{venue}{'.' + field if field else ''} {reason}")
        self.venue = venue
        self.field = field
        self.reason = reason


class _Masked(msgspec.Struct, frozen=True, kw_only=True):
    """Base for credential sets whose repr shows field names only."""

    def __repr__(self) -> str:
        names = ", ".join(f"{name}=***" for name in self.__struct_fields__)
        return f"{type(self).__name__}({names})"

    __str__ = __repr__

    def __rich_repr__(self) -> Any:
        """Rich's pretty printer gets masks too."""
        for name in self.__struct_fields__:
            yield name, "***"


class BinanceCredentials(_Masked, frozen=True, kw_only=True):
    """A Binance API key and its HMAC secret."""

    api_key: str
    api_secret: str


class KiteCredentials(_Masked, frozen=True, kw_only=True):
    """What the Kite login needs: user id, password, TOTP seed, and the app's API key and secret."""

    user_id: str
    password: str
    totp_seed: str
    api_key: str
    api_secret: str


_TYPES: dict[str, type[_Masked]] = {"binance": BinanceCredentials, "kite": KiteCredentials}


def _check_field(venue: str, field: str | None = None) -> None:
    if venue not in VENUE_FIELDS:
        raise CredentialError(venue, None, f"is not a known venue; known: {', '.join(sorted(VENUE_FIELDS))}")
    if field is not None and field not in VENUE_FIELDS[venue]:
        raise CredentialError(venue, field, f"is not a field of {venue}; fields: {', '.join(VENUE_FIELDS[venue])}")


class CredentialStore:
    """Venue secrets in one sealed file: set, read as a typed Struct, list (names only), delete."""

    def __init__(self, data_dir: Path | str) -> None:
        secrets_dir = Path(data_dir) / "secrets"
        self._file = SealedFile(secrets_dir / "venues.sealed", load_master_key(secrets_dir), "venues")

    def set(self, venue: str, field: str, value: str) -> None:
        """Store one field of one venue (replacing its previous value)."""
        _check_field(venue, field)
        if not value:
            raise CredentialError(venue, field, "is empty")
        if len(value) > MAX_SECRET_LENGTH:
            raise CredentialError(venue, field, f"is {len(value)} characters, above the limit {MAX_SECRET_LENGTH}")
        document = self._file.read()
        document.setdefault(venue, {})[field] = value
        self._file.write(document)

    def get(self, venue: str) -> BinanceCredentials | KiteCredentials:
        """The venue's complete credentials; raises CredentialError naming every missing field."""
        _check_field(venue)
        stored = self._file.read().get(venue, {})
        missing = [name for name in VENUE_FIELDS[venue] if not stored.get(name)]
        if missing:
            raise CredentialError(venue, ",".join(missing), "not set (use `sq creds set "
                                                             f"{venue} --field NAME`)")
        return _TYPES[venue](**{name: stored[name] for name in VENUE_FIELDS[venue]})  # type: ignore[return-value]

    def listing(self) -> dict[str, dict[str, bool]]:
        """For every known venue, which fields are set (never the values)."""
        document = self._file.read()
        return {venue: {name: bool(document.get(venue, {}).get(name)) for name in fields}
                for venue, fields in VENUE_FIELDS.items()}

    def delete(self, venue: str) -> bool:
        """Forget a venue's credentials; True if there were any."""
        _check_field(venue)
        document = self._file.read()
        existed = document.pop(venue, None) is not None
        if existed:
            self._file.write(document)
        return existed


def kite_session_expiry(now: datetime) -> datetime:
    """When a Kite session made at `now` should be renewed: the next 06:00 IST, but at most 12 h away."""
    local = now.astimezone(IST)
    six = local.replace(hour=6, minute=0, second=0, microsecond=0)
    if six <= local:
        six += timedelta(days=1)
    return min(six, local + MAX_SESSION).astimezone(UTC)


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """A venue session token and when it stops being usable (UTC, ns since the epoch)."""

    token: str
    expires_ns: int

    def __repr__(self) -> str:
        return f"Session(token=***, expires_ns={self.expires_ns})"

    __str__ = __repr__


Login = Callable[[], Awaitable[tuple[str, datetime]]]


class SessionCache:
    """Venue session tokens sealed on disk, reused until they expire and renewed by a login callback."""

    def __init__(self, data_dir: Path | str, *, clock: Callable[[], datetime] | None = None) -> None:
        secrets_dir = Path(data_dir) / "secrets"
        self._file = SealedFile(secrets_dir / "sessions.sealed", load_master_key(secrets_dir), "sessions")
        self._clock = clock or (lambda: datetime.now(UTC))
        self.logins = 0

    def now(self) -> datetime:
        """The cache's clock (a test may pass its own)."""
        return self._clock()

    def _now_ns(self) -> int:
        return int(self._clock().timestamp() * 1e9)

    def cached(self, venue: str) -> Session | None:
        """The stored session if it is still valid now, else None."""
        entry = self._file.read().get(venue)
        if entry is None:
            return None
        session = msgspec.convert(entry, Session)
        return session if session.expires_ns > self._now_ns() else None

    def store(self, venue: str, token: str, expires: datetime) -> Session:
        """Seal a new session token with its expiry."""
        session = Session(token=token, expires_ns=int(expires.timestamp() * 1e9))
        document = self._file.read()
        document[venue] = msgspec.to_builtins(session)
        self._file.write(document)
        return session

    def invalidate(self, venue: str) -> None:
        """Drop a session the venue refused (e.g. Kite's TokenException), so the next use logs in again."""
        document = self._file.read()
        if document.pop(venue, None) is not None:
            self._file.write(document)

    async def token(self, venue: str, login: Login) -> str:
        """A valid token for `venue`: the cached one, or a fresh one from `login()` (which also says its expiry)."""
        session = self.cached(venue)
        if session is not None:
            return session.token
        token, expires = await login()
        self.logins += 1
        return self.store(venue, token, expires).token


# ----------------------------------------------------------------------------------------- `sq creds`


def _read_secret(venue: str, field: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"{venue}.{field}: ")
    # Only the trailing newline goes: a secret may legitimately contain spaces.
    return sys.stdin.readline().rstrip("\r\n")


def _cmd_set(args: argparse.Namespace) -> int:
    CredentialStore(args.data_dir).set(args.venue, args.field, _read_secret(args.venue, args.field))
    print(f"{args.venue}.{args.field} stored")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    for venue, fields in CredentialStore(args.data_dir).listing().items():
        shown = " ".join(f"{name}={'set' if present else 'missing'}" for name, present in fields.items())
        print(f"{venue}: {shown}")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    existed = CredentialStore(args.data_dir).delete(args.venue)
    print(f"{args.venue} {'deleted' if existed else 'had no credentials'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.creds_func(args))
    except (CredentialError, SecretError) as exc:
        print(f"sq creds: {exc}", file=sys.stderr)
        return 2


def register(subparsers: Any) -> None:
    """Add `creds set|list|delete` to an argparse subparsers object."""
    creds = subparsers.add_parser("creds", help="venue credentials, encrypted at rest")
    sub = creds.add_subparsers(dest="creds_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default="var", help="data directory (secrets live in DATA_DIR/secrets)")
    setter = sub.add_parser("set", parents=[common], help="store one field; the value is read from stdin")
    setter.add_argument("venue", choices=sorted(VENUE_FIELDS))
    setter.add_argument("--field", required=True, help="field name (binance: api_key, api_secret; kite: "
                                                       "user_id, password, totp_seed, api_key, api_secret)")
    setter.set_defaults(func=_run, creds_func=_cmd_set)
    sub.add_parser("list", parents=[common], help="which fields are set, never values").set_defaults(
        func=_run, creds_func=_cmd_list)
    deleter = sub.add_parser("delete", parents=[common], help="forget a venue's credentials")
    deleter.add_argument("venue", choices=sorted(VENUE_FIELDS))
    deleter.set_defaults(func=_run, creds_func=_cmd_delete)


def main(argv: list[str] | None = None) -> int:
    """Run `creds ...` on its own (python -m processors.connector.credentials set kite --field password)."""
    return run_subcommands(register, ["creds", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["BinanceCredentials", "CredentialError", "CredentialStore", "KiteCredentials", "Session",
           "SessionCache", "kite_session_expiry", "main", "register"]
