"""Gateway users: roles and accounts, argon2id password hashes, TOTP seeds, kept in a sealed file."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from events.subjects import token
from store.secrets import SealedFile, load_master_key

Role = Literal["viewer", "trader", "risk", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
TOTP_ISSUER = "ShrivenQuant"
# argon2id with RFC 9106's second recommended profile (64 MiB, 3 passes): memory-hard, ~50 ms here.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)
# A well-formed hash of a random password, verified when the user does not exist, so a login
# for an unknown name costs the same time as one for a known name.
_DUMMY_HASH = _hasher.hash("not-a-user-password")


class UserError(ValueError):
    """A user could not be added or changed; `field` names what was wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class User:
    """A gateway user as the rest of the gateway sees it (no secrets)."""

    name: str
    roles: tuple[str, ...]
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class Enrolment:
    """What `sq user add` prints once: the TOTP provisioning URI (it carries the seed)."""

    user: User
    provisioning_uri: str


LoginFailure = Literal["unknown_user_or_password", "bad_totp", "replayed_totp", "user_disabled"]
Record = dict[str, object]


def new_record(name: str, password: str, roles: list[str], accounts: list[str], now: int) -> Record:
    """A validated user record with a fresh argon2id hash and TOTP seed (the store decides where it lives)."""
    token("username", name)
    if len(password) < 12:
        raise UserError("password", "must be at least 12 characters")
    unknown = [role for role in roles if role not in ROLES]
    if unknown or not roles:
        raise UserError("role", f"{unknown or 'none given'}: choose from {', '.join(ROLES)}")
    for account in accounts:
        token("account", account)
    return {"password_hash": _hasher.hash(password), "totp_seed": pyotp.random_base32(), "roles": sorted(set(roles)),
            "accounts": sorted(set(accounts)), "last_totp_step": 0, "created": now, "disabled": False}


def user_of(name: str, record: Record) -> User:
    """The secret-free view of a record."""
    return User(name, tuple(record["roles"]), tuple(record["accounts"]))  # type: ignore[arg-type]


def enrolment_of(name: str, record: Record) -> Enrolment:
    """The one-time enrolment answer for a record (its provisioning URI carries the seed)."""
    uri = pyotp.TOTP(str(record["totp_seed"])).provisioning_uri(name=name, issuer_name=TOTP_ISSUER)
    return Enrolment(user_of(name, record), uri)


def check_password(record: Record | None, password: str) -> bool:
    """argon2id check; an unknown user is checked against a dummy hash so it costs the same time."""
    try:
        _hasher.verify(str(record["password_hash"]) if record else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return record is not None


def match_totp(record: Record, code: str, now: float) -> int | None:
    """The TOTP time step (RFC 6238, ±1 step) that `code` is valid for, or None."""
    totp = pyotp.TOTP(str(record["totp_seed"]))
    current = totp.timecode(now)
    return next((step for step in (current, current - 1, current + 1)
                 if hmac.compare_digest(totp.generate_otp(step), code.strip())), None)


def totp_code(record: Record, for_time: float | None = None) -> str:
    """The TOTP code of a record at a time (for the demo banner and tests, never logged)."""
    return pyotp.TOTP(str(record["totp_seed"])).at(for_time if for_time is not None else time.time())


def with_new_seed(record: Record) -> Record:
    """The record with a fresh TOTP seed (the old authenticator stops working)."""
    return {**record, "totp_seed": pyotp.random_base32(), "last_totp_step": 0}


class UserStore:
    """Users in `<data_dir>/secrets/users.sealed` (the store without a broker, and what `sq up` moves into the bucket)."""

    def __init__(self, secrets_dir: Path) -> None:
        self._file = SealedFile(secrets_dir / "users.sealed", load_master_key(secrets_dir), "users")
        self._cache: dict[str, Record] = {}
        self._mtime: float | None = None

    @property
    def path(self) -> Path:
        """The sealed file."""
        return self._file.path

    def records(self) -> dict[str, Record]:
        """Every user's record (secrets included: only for moving them into the bucket), re-read when the file changed."""
        path = self._file.path
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime != self._mtime:
            self._cache = self._file.read()
            self._mtime = mtime
        return self._cache

    def _save(self, users: dict[str, Record]) -> None:
        self._file.write(users)
        self._cache = users
        self._mtime = self._file.path.stat().st_mtime

    def _existing(self, name: str) -> Record:
        record = self.records().get(name)
        if record is None:
            raise UserError("username", f"no user {name!r}")
        return record

    def add(self, name: str, password: str, roles: list[str], accounts: list[str]) -> Enrolment:
        """Create a user and return the provisioning URI to enrol their authenticator app."""
        token("username", name)
        if name in self.records():
            raise UserError("username", f"{name} already exists")
        record = new_record(name, password, roles, accounts, int(time.time()))
        self._save({**self.records(), name: record})
        return enrolment_of(name, record)

    def disable(self, name: str) -> User:
        """Refuse the user's logins from now on."""
        record = {**self._existing(name), "disabled": True}
        self._save({**self.records(), name: record})
        return user_of(name, record)

    def reset_totp(self, name: str) -> Enrolment:
        """Give the user a new TOTP seed and return its provisioning URI."""
        record = with_new_seed(self._existing(name))
        self._save({**self.records(), name: record})
        return enrolment_of(name, record)

    def get(self, name: str) -> User | None:
        """The user's roles and accounts, or None."""
        record = self.records().get(name)
        return None if record is None else user_of(name, record)

    def is_disabled(self, name: str) -> bool:
        """Whether the user exists and is disabled."""
        return bool(self.records().get(name, {}).get("disabled", False))

    def names(self) -> list[str]:
        """Every user name."""
        return sorted(self.records())

    def totp_now(self, name: str, for_time: float | None = None) -> str:
        """The current TOTP code for a user (for the demo banner and tests, never logged)."""
        return totp_code(self.records()[name], for_time)

    def authenticate(self, name: str, password: str, code: str, now: float) -> User | LoginFailure:
        """Check password then TOTP; a code's time step is accepted once only, and never an older one."""
        record = self.records().get(name)
        if not check_password(record, password) or record is None:
            return "unknown_user_or_password"
        matched = match_totp(record, code, now)
        if matched is None:
            return "bad_totp"
        if matched <= int(record.get("last_totp_step", 0)):  # type: ignore[call-overload]
            return "replayed_totp"
        if record.get("disabled"):
            return "user_disabled"
        self._save({**self.records(), name: {**record, "last_totp_step": matched}})
        return user_of(name, record)
