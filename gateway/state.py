"""The gateway's shared state: configuration, users, tokens, limits, the bus, and the app keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from events.bus import Bus
from gateway.ratelimit import TokenBuckets
from gateway.readiness import ReadinessConfig
from gateway.secrets import jwt_signing_key, load_master_key
from gateway.tokens import Claims, TokenIssuer
from gateway.users import UserStore
from gateway.watermarks import Watermarks
from projections.service import Projections


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

    def __post_init__(self) -> None:
        self.ip_limits = TokenBuckets(self.config.ip_rate_per_s, self.config.ip_burst)
        self.user_limits = TokenBuckets(self.config.user_rate_per_s, self.config.user_burst)
        self.login_failures = TokenBuckets(self.config.login_failures_refill_per_s, self.config.login_failures_burst)

    @classmethod
    def open(cls, config: GatewayConfig, bus: Bus | None, projections: Projections | None = None) -> Gateway:
        """Load (or create) the secrets under the data dir and build the shared state."""
        master = load_master_key(config.secrets_dir)
        tokens = TokenIssuer(jwt_signing_key(master), config.secrets_dir / "revoked.json")
        return cls(config=config, users=UserStore(config.secrets_dir), tokens=tokens, bus=bus,
                   projections=projections)


GATEWAY = web.AppKey("gateway", Gateway)
# Request key under which authenticate() leaves the caller's claims.
CLAIMS = web.RequestKey("claims", Claims)
