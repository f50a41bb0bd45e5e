"""Sessions, revocations, used TOTP steps and failed-login buckets in the `sq-sessions` key-value bucket,
shared by every gateway on the broker.

Keys (no value holds a password, a TOTP seed or a token; user names and token ids are not secrets):

- ``session.<jti>``        a token issued at login: ``{"user", "iat", "exp"}``
- ``revoked.token.<jti>``  a revoked token: ``{"user", "exp"}``
- ``revoked.user.<name>``  every token of the user issued before ``before`` is refused (logout everywhere,
  disable): ``{"before"}``
- ``totp.<name>``          the last TOTP time step used: ``{"step"}``; a code of that step or an older one is
  refused on every gateway
- ``fail.<digest>``        a failed-login token bucket (user or client address, hashed): ``{"tokens", "stamp"}``

Each value carries its own TTL (``Nats-TTL``; nats-server 2.11+ with ``allow_msg_ttl``, which nats-py
sets on KV buckets): the token's remaining life for sessions and revocations, three TOTP steps for
``totp.``, the time to refill for ``fail.``. The bucket's max age (the token lifetime plus a minute)
bounds anything left behind. On a bucket without per-message TTL (made by nats-server 2.10, which the
compose file and the Kubernetes manifests still run) values are written without one: every value
also carries its own expiry or time stamp (``exp``, ``before``, ``stamp``, a TOTP step), which is
what readers compare, so the bucket's max age alone keeps it bounded. Every gateway watches ``revoked.>`` and applies each revocation to its
TokenIssuer, which tells the open WebSockets.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from events.bus import Bus
from gateway.tokens import Claims, Revocation, TokenIssuer

log = logging.getLogger(__name__)

BUCKET = "sq-sessions"
# Used TOTP steps are remembered for three 30 s steps: by then the used step is outside the ±1 window.
TOTP_MEMORY_S = 120
# Compare-and-set retries when gateways race on one key (a failed-login bucket, a TOTP step).
CAS_ATTEMPTS = 20
_WRONG_LAST_SEQUENCE = (10071, 10164)
_MSG_TTL_DISABLED = 10166


@dataclass(frozen=True)
class Session:
    """A token issued at login and not yet expired (what an admin may revoke)."""

    token_id: str
    user: str
    issued_at: int
    expires_at: int

    def claims(self) -> Claims:
        """The claims a revocation check needs (roles and accounts are not kept here)."""
        return Claims(self.user, (), (), self.token_id, self.expires_at, self.issued_at)


def throttle_key(kind: str, value: str) -> str:
    """The bucket key of a failed-login counter; hashed so any user name or address is a valid key."""
    return "fail." + hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32]


class SharedSessions:
    """The sessions bucket: writes with per-key TTL and compare-and-set, and a watcher of revocations."""

    def __init__(self, bus: Bus, kv: KeyValue, tokens: TokenIssuer | None) -> None:
        self._bus = bus
        self._kv = kv
        self._tokens = tokens
        self._watch_task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()
        # False once the bucket refused a per-message TTL (made before nats-server 2.11): values then
        # expire by the bucket's max age, and readers by the expiry inside them.
        self.per_key_ttl = True

    @classmethod
    async def open(cls, bus: Bus, tokens: TokenIssuer | None, *, token_ttl_s: int) -> SharedSessions:
        """Open (or create) the bucket; with `tokens`, follow every revocation into it (returns once caught up)."""
        kv = await bus.key_value(BUCKET, max_age_s=token_ttl_s + 60,
                                 description="ShrivenQuant sessions, revocations, used TOTP steps, login throttles")
        sessions = cls(bus, kv, tokens)
        if tokens is not None:
            watcher = await kv.watch("revoked.>")
            sessions._watch_task = asyncio.create_task(sessions._follow(watcher, tokens))
            await asyncio.wait_for(sessions.loaded.wait(), 30)
        return sessions

    @property
    def following(self) -> bool:
        """Whether revocations are being followed (False if the watcher stopped: /readyz then fails)."""
        return self._watch_task is None or not self._watch_task.done()

    async def close(self) -> None:
        """Stop following revocations."""
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except asyncio.CancelledError:
                pass

    async def _follow(self, watcher: KeyValue.KeyWatcher, tokens: TokenIssuer) -> None:
        try:
            async for entry in watcher:
                if entry is None:                       # the end of what was stored when the watch began
                    self.loaded.set()
                    continue
                if entry.operation is not None or not entry.value:
                    continue                            # a delete or expiry marker: expiry is kept in memory
                now = _now()
                try:
                    revocation, expires_at = _parse_revocation(entry.key, entry.value, tokens.ttl_s)
                except (ValueError, KeyError, TypeError) as exc:
                    # Not one of ours: say which key, never its value, and keep following.
                    log.error("unreadable revocation in the sessions bucket", extra={"key": entry.key,
                                                                                      "error": type(exc).__name__})
                    continue
                if expires_at > now:
                    tokens.apply(revocation, expires_at, now)
        finally:
            if not self._bus.nc.is_closed:
                await watcher.stop()

    async def _write(self, key: str, document: dict[str, object], ttl_s: float, last: int | None = None) -> bool:
        """Put a value that expires after `ttl_s`; with `last`, only if the key's revision is still `last`
        (0: absent). False when another writer got there first."""
        while True:
            # A new dict each try: nats-py adds its Nats-TTL header to the one it is given.
            headers = {} if last is None else {"Nats-Expected-Last-Subject-Sequence": str(last)}
            try:
                await self._bus.js.publish(f"$KV.{BUCKET}.{key}", json.dumps(document).encode(), headers=headers,
                                           msg_ttl=max(1, math.ceil(ttl_s)) if self.per_key_ttl else None,
                                           timeout=5.0)
            except nats.js.errors.APIError as exc:
                if exc.err_code in _WRONG_LAST_SEQUENCE:
                    return False
                if exc.err_code == _MSG_TTL_DISABLED and self.per_key_ttl:
                    log.warning("sessions bucket has no per-message TTL; values expire with the bucket's max age",
                                extra={"bucket": BUCKET})
                    self.per_key_ttl = False
                    continue
                raise
            return True

    async def _read(self, key: str) -> tuple[dict[str, object] | None, int]:
        """A key's document and revision, or (None, 0) when absent or expired."""
        try:
            entry = await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        document: dict[str, object] = json.loads(entry.value)
        return document, entry.revision or 0

    async def record_session(self, token_id: str, user: str, issued_at: int, expires_at: int) -> None:
        """Remember a token issued at login, until it expires."""
        await self._write(f"session.{token_id}", {"user": user, "iat": issued_at, "exp": expires_at},
                          expires_at - _now())

    async def sessions(self) -> list[Session]:
        """Every recorded session not yet expired (revoked ones included; the caller filters)."""
        try:
            keys = await self._kv.keys(filters=["session."])
        except nats.js.errors.NoKeysError:
            return []
        found = []
        for key in keys:
            document, _ = await self._read(key)
            if document is not None and int(document["exp"]) > _now():  # type: ignore[call-overload]
                found.append(Session(key.removeprefix("session."), str(document["user"]),
                                     int(document["iat"]), int(document["exp"])))  # type: ignore[call-overload]
        return sorted(found, key=lambda s: (s.user, s.issued_at))

    async def revoke(self, revocation: Revocation, expires_at: float) -> None:
        """Record a revocation until `expires_at`; every gateway (this one at once) applies it."""
        now = _now()
        if revocation.token_id is not None:
            key = f"revoked.token.{revocation.token_id}"
            document: dict[str, object] = {"user": revocation.user, "exp": int(expires_at)}
        else:
            key = f"revoked.user.{revocation.user}"
            document = {"before": revocation.before}
        await self._write(key, document, expires_at - now + 1)
        if self._tokens is not None:
            self._tokens.apply(revocation, expires_at, now)

    async def use_totp_step(self, user: str, step: int) -> bool:
        """Claim a TOTP time step for `user`: False if it, or a later one, was used on any gateway."""
        for _ in range(CAS_ATTEMPTS):
            document, revision = await self._read(f"totp.{user}")
            if document is not None and step <= int(document["step"]):  # type: ignore[call-overload]
                return False
            if await self._write(f"totp.{user}", {"step": step}, TOTP_MEMORY_S, last=revision):
                return True
        raise RuntimeError(f"totp.{user}: {CAS_ATTEMPTS} conflicting writes in a row")

    async def failure_wait(self, key: str, rate: float, capacity: float, now: float) -> float:
        """Seconds until one more failed login is allowed for `key` (0.0: allowed now); spends nothing."""
        document, _ = await self._read(key)
        tokens = _refilled(document, rate, capacity, now)
        return 0.0 if tokens >= 1 else (1 - tokens) / rate

    async def record_failure(self, key: str, rate: float, capacity: float, now: float) -> float:
        """Spend one failed login from `key`'s bucket: 0.0 if there was one left, else the seconds to wait."""
        for _ in range(CAS_ATTEMPTS):
            document, revision = await self._read(key)
            tokens = _refilled(document, rate, capacity, now)
            left = tokens - 1 if tokens >= 1 else tokens
            if await self._write(key, {"tokens": left, "stamp": now}, (capacity - left) / rate + 1, last=revision):
                return 0.0 if tokens >= 1 else (1 - tokens) / rate
        raise RuntimeError(f"{key}: {CAS_ATTEMPTS} conflicting writes in a row")


def _refilled(document: dict[str, object] | None, rate: float, capacity: float, now: float) -> float:
    if document is None:
        return capacity
    elapsed = max(0.0, now - float(document["stamp"]))  # type: ignore[arg-type]
    return min(capacity, float(document["tokens"]) + elapsed * rate)  # type: ignore[arg-type]


def _parse_revocation(key: str, value: bytes, token_ttl_s: int) -> tuple[Revocation, float]:
    """A watched `revoked.*` entry as a Revocation and the time it may be forgotten."""
    document = json.loads(value)
    if key.startswith("revoked.token."):
        token_id = key.removeprefix("revoked.token.")
        return Revocation(token_id=token_id, user=document.get("user")), float(document["exp"])
    before = float(document["before"])
    return Revocation(user=key.removeprefix("revoked.user."), before=before), before + token_ttl_s


def _now() -> float:
    return time.time()
