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
from gateway.secrets import SealedFile, load_master_key

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


LoginFailure = Literal["unknown_user_or_password", "bad_totp", "replayed_totp"]


class UserStore:
    """Users in `<data_dir>/secrets/users.sealed`; re-read when the file changes (so `sq user add` is live)."""

    def __init__(self, secrets_dir: Path) -> None:
        self._file = SealedFile(secrets_dir / "users.sealed", load_master_key(secrets_dir), "users")
        self._cache: dict[str, dict[str, object]] = {}
        self._mtime: float | None = None

    def _load(self) -> dict[str, dict[str, object]]:
        path = self._file.path
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime != self._mtime:
            self._cache = self._file.read()  # type: ignore[assignment]
            self._mtime = mtime
        return self._cache

    def _save(self, users: dict[str, dict[str, object]]) -> None:
        self._file.write(users)  # type: ignore[arg-type]
        self._cache = users
        self._mtime = self._file.path.stat().st_mtime

    def add(self, name: str, password: str, roles: list[str], accounts: list[str]) -> Enrolment:
        """Create a user and return the provisioning URI to enrol their authenticator app."""
        users = dict(self._load())
        token("username", name)
        if name in users:
            raise UserError("username", f"{name} already exists")
        if len(password) < 12:
            raise UserError("password", "must be at least 12 characters")
        unknown = [role for role in roles if role not in ROLES]
        if unknown or not roles:
            raise UserError("role", f"{unknown or 'none given'}: choose from {', '.join(ROLES)}")
        for account in accounts:
            token("account", account)
        seed = pyotp.random_base32()
        users[name] = {"password_hash": _hasher.hash(password), "totp_seed": seed, "roles": sorted(set(roles)),
                       "accounts": sorted(set(accounts)), "last_totp_step": 0, "created": int(time.time())}
        self._save(users)
        user = User(name, tuple(sorted(set(roles))), tuple(sorted(set(accounts))))
        return Enrolment(user, pyotp.TOTP(seed).provisioning_uri(name=name, issuer_name=TOTP_ISSUER))

    def get(self, name: str) -> User | None:
        """The user's roles and accounts, or None."""
        record = self._load().get(name)
        if record is None:
            return None
        return User(name, tuple(record["roles"]), tuple(record["accounts"]))  # type: ignore[arg-type]

    def names(self) -> list[str]:
        """Every user name."""
        return sorted(self._load())

    def totp_now(self, name: str, for_time: float | None = None) -> str:
        """The current TOTP code for a user (for the demo banner and tests, never logged)."""
        seed = str(self._load()[name]["totp_seed"])
        return pyotp.TOTP(seed).at(for_time if for_time is not None else time.time())

    def authenticate(self, name: str, password: str, code: str, now: float) -> User | LoginFailure:
        """Check password then TOTP (RFC 6238, ±1 step); a code's time step is accepted once only."""
        record = self._load().get(name)
        try:
            _hasher.verify(str(record["password_hash"]) if record else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return "unknown_user_or_password"
        if record is None:
            return "unknown_user_or_password"
        totp = pyotp.TOTP(str(record["totp_seed"]))
        current = totp.timecode(now)
        matched = next((step for step in (current, current - 1, current + 1)
                        if hmac.compare_digest(totp.generate_otp(step), code.strip())), None)
        if matched is None:
            return "bad_totp"
        last_step = int(record.get("last_totp_step", 0))  # type: ignore[call-overload]
        if matched <= last_step:
            return "replayed_totp"
        users = dict(self._load())
        users[name] = {**record, "last_totp_step": matched}
        self._save(users)
        return User(name, tuple(record["roles"]), tuple(record["accounts"]))  # type: ignore[arg-type]
