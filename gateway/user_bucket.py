"""Gateway users in the `sq-users` key-value bucket, shared by every gateway and by `sq user --nats-url`.

One key per user name; each value is the user's record (argon2id hash, TOTP seed, roles, accounts,
disabled) sealed with AES-GCM under a key derived from the master key and bound to the user's name,
so the bucket is unreadable without $SQ_MASTER_KEY. The bucket is replicated like the streams
($SQ_STREAM_REPLICAS) and keeps a few revisions of each user. Changes use compare-and-set on the
revision, so two admins editing one user at once cannot lose either change silently.
"""

from __future__ import annotations

import time

import nats.js.errors
from nats.js.kv import KeyValue

from events.bus import Bus
from events.subjects import InvalidSubjectToken, token
from gateway.users import (
    Enrolment,
    Record,
    User,
    UserError,
    UserStore,
    enrolment_of,
    new_record,
    totp_code,
    user_of,
    with_new_seed,
)
from store.secrets import SealedValues

BUCKET = "sq-users"
HISTORY = 5


class SharedUsers:
    """The users bucket: add, disable, reset TOTP, read; every read goes to the bucket (no stale copy)."""

    def __init__(self, kv: KeyValue, sealer: SealedValues) -> None:
        self._kv = kv
        self._sealer = sealer

    @classmethod
    async def open(cls, bus: Bus, master: bytes) -> SharedUsers:
        """Open (or create) the bucket; `master` opens its values."""
        kv = await bus.key_value(BUCKET, history=HISTORY, description="ShrivenQuant gateway users (sealed)")
        return cls(kv, SealedValues(master, "users-kv"))

    async def record(self, name: str) -> tuple[Record | None, int]:
        """A user's record (secrets included, for authentication) and its revision; (None, 0) if absent."""
        try:
            token("username", name)
        except InvalidSubjectToken:
            return None, 0          # no user can have this name (a login then costs a dummy hash, as for any unknown)
        try:
            entry = await self._kv.get(name)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        return self._sealer.open(name, entry.value), entry.revision or 0

    async def get(self, name: str) -> User | None:
        """The user's roles and accounts, or None."""
        record, _ = await self.record(name)
        return None if record is None else user_of(name, record)

    async def is_disabled(self, name: str) -> bool:
        """Whether the user exists and is disabled."""
        record, _ = await self.record(name)
        return bool(record and record.get("disabled"))

    async def names(self) -> list[str]:
        """Every user name."""
        try:
            return sorted(await self._kv.keys())
        except nats.js.errors.NoKeysError:
            return []

    async def totp_now(self, name: str, for_time: float | None = None) -> str:
        """The current TOTP code of a user (for `sq user code` and tests, never logged)."""
        record, _ = await self.record(name)
        if record is None:
            raise UserError("username", f"no user {name!r}")
        return totp_code(record, for_time)

    async def _create(self, name: str, record: Record) -> bool:
        try:
            await self._kv.create(name, self._sealer.seal(name, record))
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def add(self, name: str, password: str, roles: list[str], accounts: list[str]) -> Enrolment:
        """Create a user (refused if the name exists) and return the provisioning URI to enrol their app."""
        token("username", name)
        record = new_record(name, password, roles, accounts, int(time.time()))
        if not await self._create(name, record):
            raise UserError("username", f"{name} already exists")
        return enrolment_of(name, record)

    async def _change(self, name: str, *, disable: bool) -> Record:
        """Disable a user or give them a new TOTP seed, with compare-and-set (retried if another writer came first)."""
        for _ in range(10):
            record, revision = await self.record(name)
            if record is None:
                raise UserError("username", f"no user {name!r}")
            changed = {**record, "disabled": True} if disable else with_new_seed(record)
            try:
                await self._kv.update(name, self._sealer.seal(name, changed), last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            return changed
        raise UserError("username", f"{name} changed 10 times while this change was tried; try again")

    async def disable(self, name: str) -> User:
        """Refuse the user's logins from now on (the caller revokes their tokens)."""
        return user_of(name, await self._change(name, disable=True))

    async def reset_totp(self, name: str) -> Enrolment:
        """Give the user a new TOTP seed and return its provisioning URI (the old app stops working)."""
        return enrolment_of(name, await self._change(name, disable=False))

    async def import_local(self, store: UserStore, only: str | None = None) -> list[str]:
        """Move users of the local sealed file that the bucket lacks into it (the first start with a broker;
        a user added to the file later, while the gateway runs, is moved at their first login)."""
        moved = []
        for name, record in sorted(store.records().items()):
            if only is not None and name != only:
                continue
            if await self._create(name, {**record, "last_totp_step": 0}):
                moved.append(name)
        return moved

