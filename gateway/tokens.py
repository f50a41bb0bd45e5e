"""JWT access tokens: HS256 pinned, 12 h lifetime, a `kid` per signing key, roles and accounts as claims,
revocation by token id or by user.

Revocations arrive from this gateway (logout, admin revoke, disable) or, with a broker, from every
gateway through the sessions bucket (gateway.sessions); listeners (open WebSockets) hear of each one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt

from gateway.users import User
from store.secrets import SecretError, derive_key, write_private

ALGORITHM = "HS256"
ACCESS_TOKEN_TTL_S = 12 * 3600
ISSUER = "shrivenquant"
JWT_SECRET_ENV = "SQ_JWT_SECRET"
JWT_VERIFY_SECRETS_ENV = "SQ_JWT_VERIFY_SECRETS"


def jwt_signing_key(master: bytes) -> bytes:
    """The HS256 key that signs new access tokens: $SQ_JWT_SECRET if set, else derived from the master key."""
    explicit = os.environ.get(JWT_SECRET_ENV)
    if explicit:
        return _jwt_secret(JWT_SECRET_ENV, explicit)
    return derive_key(master, "jwt")


def jwt_verify_only_keys() -> list[bytes]:
    """Keys that verify but never sign ($SQ_JWT_VERIFY_SECRETS, separated by commas): the next key before a
    rotation, the retired one until its last token expires (deploy/README.md, "Rotating the JWT key")."""
    raw = os.environ.get(JWT_VERIFY_SECRETS_ENV, "")
    return [_jwt_secret(JWT_VERIFY_SECRETS_ENV, part.strip()) for part in raw.split(",") if part.strip()]


def _jwt_secret(variable: str, value: str) -> bytes:
    if len(value) < 32:
        raise SecretError(f"{variable}: each key must be at least 32 characters")
    return value.encode()


def key_id(key: bytes) -> str:
    """A public name for a signing key (the JWT `kid`): a keyed digest that reveals nothing about the key."""
    return hashlib.sha256(b"sq-jwt-kid:" + key).hexdigest()[:16]


class TokenError(ValueError):
    """A bearer token was refused; `reason` is safe to show (it never echoes the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """What a verified token says about its holder."""

    subject: str
    roles: tuple[str, ...]
    accounts: tuple[str, ...]
    token_id: str
    expires_at: int
    issued_at: int = 0


@dataclass(frozen=True)
class Revocation:
    """One token (`token_id`) or every token of `user` issued before `before` (wall-clock seconds)."""

    token_id: str | None = None
    user: str | None = None
    before: float = 0.0

    def covers(self, claims: Claims) -> bool:
        """Whether this revocation refuses the token with these claims."""
        if self.token_id is not None:
            return self.token_id == claims.token_id
        return self.user == claims.subject and claims.issued_at < self.before


RevocationListener = Callable[[Revocation], None]


class TokenIssuer:
    """Issues and verifies access tokens and knows every revocation still in force.

    Without a broker (`revocations` is a file) revocations are kept in that file; with one, the
    sessions bucket is the record and this holds what its watcher delivered.
    """

    def __init__(self, key: bytes, revocations: Path | None, ttl_s: int = ACCESS_TOKEN_TTL_S, *,
                 verify_only: Sequence[bytes] = ()) -> None:
        self._signing_kid = key_id(key)
        self._keys = {key_id(extra): extra for extra in verify_only} | {self._signing_kid: key}
        self._ttl_s = ttl_s
        self._file = revocations
        self._revoked: dict[str, int] = {}            # token id -> its expiry (kept until then)
        self._users_revoked: dict[str, float] = {}    # user -> tokens issued before this time are refused
        self.listeners: list[RevocationListener] = []
        if revocations is not None and revocations.exists():
            stored = json.loads(revocations.read_text())
            # Before user revocations the file was a plain {token id: expiry} map.
            self._revoked = stored.get("tokens", {}) if "tokens" in stored else stored
            self._users_revoked = stored.get("users", {})

    @property
    def ttl_s(self) -> int:
        """Lifetime of a new token in seconds."""
        return self._ttl_s

    @property
    def key_ids(self) -> list[str]:
        """The `kid` of every key that verifies, the signing one first."""
        return [self._signing_kid, *sorted(set(self._keys) - {self._signing_kid})]

    def issue(self, user: User, now: int) -> tuple[str, int, Claims]:
        """A signed token for `user`, its lifetime in seconds, and its claims."""
        claims = Claims(user.name, user.roles, user.accounts, secrets.token_hex(16), now + self._ttl_s, now)
        payload = {"sub": user.name, "roles": list(user.roles), "accounts": list(user.accounts),
                   "jti": claims.token_id, "iat": now, "nbf": now, "exp": claims.expires_at, "iss": ISSUER}
        token = jwt.encode(payload, self._keys[self._signing_kid], algorithm=ALGORITHM,
                           headers={"kid": self._signing_kid})
        return token, self._ttl_s, claims

    def verify(self, token: str, now: int) -> Claims:
        """Check signature (HS256 only, by `kid`), expiry, issuer, revocation."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {type(exc).__name__}") from exc
        # Tokens from before key ids carry none: they were signed with the key that signs today.
        key = self._keys.get(str(kid) if kid is not None else self._signing_kid)
        if key is None:
            raise TokenError("invalid token: signed with a key this gateway no longer accepts")
        try:
            payload = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=ISSUER,
                                 options={"require": ["exp", "iat", "sub", "jti"], "verify_exp": False})
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {type(exc).__name__}") from exc
        if int(payload["exp"]) <= now:
            raise TokenError("token expired")
        claims = Claims(str(payload["sub"]), tuple(payload.get("roles", ())), tuple(payload.get("accounts", ())),
                        str(payload["jti"]), int(payload["exp"]), int(payload["iat"]))
        if self.is_revoked(claims):
            raise TokenError("token revoked")
        return claims

    def is_revoked(self, claims: Claims) -> bool:
        """Whether the token was revoked, alone or with every token of its user."""
        if claims.token_id in self._revoked:
            return True
        return claims.issued_at < self._users_revoked.get(claims.subject, 0.0)

    def apply(self, revocation: Revocation, expires_at: float, now: float) -> None:
        """Hold a revocation until `expires_at` (when every token it covers has expired) and tell the listeners."""
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp > now}
        self._users_revoked = {user: before for user, before in self._users_revoked.items()
                               if before + self._ttl_s > now}
        if revocation.token_id is not None:
            self._revoked[revocation.token_id] = int(expires_at)
        elif revocation.user is not None:
            self._users_revoked[revocation.user] = max(revocation.before,
                                                       self._users_revoked.get(revocation.user, 0.0))
        for listener in list(self.listeners):
            listener(revocation)

    def revoke_locally(self, revocation: Revocation, expires_at: float, now: float) -> None:
        """Without a broker: apply the revocation and keep it in the revocations file."""
        self.apply(revocation, expires_at, now)
        if self._file is not None:
            write_private(self._file, json.dumps({"tokens": self._revoked, "users": self._users_revoked}).encode())
