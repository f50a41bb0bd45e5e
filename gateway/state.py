"""The gateway's shared state: configuration, users, tokens, limits, the bus, and the app keys.

With a broker, users, sessions, revocations, used TOTP steps and failed-login counters live in
key-value buckets shared by every gateway (gateway.user_bucket, gateway.sessions); without one
(tests of single routes, `sq user` on a laptop) in the sealed file and memory of this process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from events.bus import Bus
from gateway.ratelimit import TokenBuckets
from gateway.sessions import SharedSessions, throttle_key
from gateway.tokens import Claims, Revocation, TokenIssuer, jwt_signing_key, jwt_verify_only_keys
from gateway.user_bucket import SharedUsers
from gateway.users import LoginFailure, User, UserStore, check_password, match_totp, user_of
from gateway.watermarks import Watermarks
from projections.service import Projections
from store.secrets import load_master_key

log = logging.getLogger(__name__)


Market = tuple[str, str]                 # (venue, symbol)


@dataclass(frozen=True)
class ReadinessConfig:
    """Markets and services the gateway waits for before it answers /readyz with 200 (empty: none);
    gateway.readiness says what each means."""

    books: tuple[Market, ...] = ()
    trades: tuple[Market, ...] = ()
    services: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway keeps its files and how strict it is."""

    data_dir: Path
    ip_rate_per_s: float = 200.0
    ip_burst: float = 400.0
    user_rate_per_s: float = 100.0
    user_burst: float = 200.0
    login_failures_burst: float = 5.0
    login_failures_refill_per_s: float = 1 / 30
    # Acknowledge an order only once the recorder reports it in the WAL (ARCHITECTURE.md, principle 5).
    durable_ack: bool = True
    durable_timeout_s: float = 5.0
    # /readyz fails while more live events than this wait to be folded into the projections.
    max_ready_lag: int = 10_000
    # Markets that must be tradable and services that must be ready before /readyz says 200 (sq up).
    readiness: ReadinessConfig = field(default_factory=ReadinessConfig)

    @property
    def secrets_dir(self) -> Path:
        """Where users, the master key and token revocations live."""
        return self.data_dir / "secrets"


@dataclass
class Gateway:
    """Everything the handlers share; one per application."""

    config: GatewayConfig
    users: UserStore
    tokens: TokenIssuer
    bus: Bus | None
    projections: Projections | None = None
    watermarks: Watermarks = field(default_factory=Watermarks)
    ip_limits: TokenBuckets = field(init=False)
    user_limits: TokenBuckets = field(init=False)
    login_failures: TokenBuckets = field(init=False)
    master_key: bytes = field(default=b"", repr=False)
    shared_users: SharedUsers | None = None
    sessions: SharedSessions | None = None

    def __post_init__(self) -> None:
        self.ip_limits = TokenBuckets(self.config.ip_rate_per_s, self.config.ip_burst)
        self.user_limits = TokenBuckets(self.config.user_rate_per_s, self.config.user_burst)
        self.login_failures = TokenBuckets(self.config.login_failures_refill_per_s, self.config.login_failures_burst)

    @classmethod
    def open(cls, config: GatewayConfig, bus: Bus | None, projections: Projections | None = None) -> Gateway:
        """Load (or create) the secrets under the data dir and build the shared state."""
        master = load_master_key(config.secrets_dir)
        # With a broker the sessions bucket keeps revocations; the file is for a gateway without one.
        revoked_file = None if bus is not None else config.secrets_dir / "revoked.json"
        tokens = TokenIssuer(jwt_signing_key(master), revoked_file, verify_only=jwt_verify_only_keys())
        return cls(config=config, users=UserStore(config.secrets_dir), tokens=tokens, bus=bus,
                   projections=projections, master_key=master)

    async def share(self) -> list[str]:
        """With a broker: open the users and sessions buckets, follow revocations, and move the local users
        the bucket lacks into it (returns their names). Before serving."""
        if self.bus is None:
            return []
        self.shared_users = await SharedUsers.open(self.bus, self.master_key)
        self.sessions = await SharedSessions.open(self.bus, self.tokens, token_ttl_s=self.tokens.ttl_s)
        moved = await self.shared_users.import_local(self.users)
        if moved:
            log.info("local users moved into the users bucket", extra={"users": moved})
        return moved

    async def unshare(self) -> None:
        """Stop following revocations."""
        if self.sessions is not None:
            await self.sessions.close()

    async def check_login(self, name: str, password: str, code: str, now: float) -> User | LoginFailure:
        """Password, then TOTP; a TOTP step is used once across every gateway; a disabled user is refused."""
        if self.shared_users is None or self.sessions is None:
            return self.users.authenticate(name, password, code, now)
        record, _ = await self.shared_users.record(name)
        if record is None and name in self.users.records():
            # Added to the local file (`sq user add` without --nats-url) while this gateway runs.
            await self.shared_users.import_local(self.users, only=name)
            record, _ = await self.shared_users.record(name)
        if not check_password(record, password) or record is None:
            return "unknown_user_or_password"
        step = match_totp(record, code, now)
        if step is None:
            return "bad_totp"
        if record.get("disabled"):
            return "user_disabled"
        if not await self.sessions.use_totp_step(name, step):
            return "replayed_totp"
        return user_of(name, record)

    async def login_wait(self, keys: list[tuple[str, str]], now: float) -> float:
        """Seconds before another failed login is allowed for any of `keys` (kind, value); 0.0 if allowed."""
        rate, burst = self.config.login_failures_refill_per_s, self.config.login_failures_burst
        if self.sessions is None:
            return max(self.login_failures.peek(f"{kind}:{value}", time.monotonic()) for kind, value in keys)
        return max([await self.sessions.failure_wait(throttle_key(kind, value), rate, burst, now)
                    for kind, value in keys])

    async def login_failed(self, keys: list[tuple[str, str]], now: float) -> float:
        """Count a failed login against each of `keys`; the longest wait now owed (0.0: none)."""
        rate, burst = self.config.login_failures_refill_per_s, self.config.login_failures_burst
        if self.sessions is None:
            return max(self.login_failures.take(f"{kind}:{value}", time.monotonic()) for kind, value in keys)
        return max([await self.sessions.record_failure(throttle_key(kind, value), rate, burst, now)
                    for kind, value in keys])

    async def issued(self, claims: Claims) -> None:
        """Record a session for a token just issued (with a broker; an admin may then list and revoke it)."""
        if self.sessions is not None:
            await self.sessions.record_session(claims.token_id, claims.subject, claims.issued_at, claims.expires_at)

    async def revoke(self, revocation: Revocation, expires_at: float) -> None:
        """Refuse the token(s) on every gateway until `expires_at`, and close their WebSockets."""
        if self.sessions is not None:
            await self.sessions.revoke(revocation, expires_at)
        else:
            self.tokens.revoke_locally(revocation, expires_at, time.time())


GATEWAY = web.AppKey("gateway", Gateway)
# Request key under which authenticate() leaves the caller's claims.
CLAIMS = web.RequestKey("claims", Claims)
