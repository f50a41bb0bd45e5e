"""JWT access tokens: HS256 pinned, 12 h lifetime, roles and accounts as claims, revocation by id."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import jwt

from gateway.secrets import write_private
from gateway.users import User

ALGORITHM = "HS256"
ACCESS_TOKEN_TTL_S = 12 * 3600
ISSUER = "shrivenquant"


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


class TokenIssuer:
    """Issues and verifies access tokens; revoked token ids are kept (until they expire) in a file."""

    def __init__(self, key: bytes, revocations: Path, ttl_s: int = ACCESS_TOKEN_TTL_S) -> None:
        self._key = key
        self._ttl_s = ttl_s
        self._revocations = revocations
        self._revoked: dict[str, int] = (json.loads(revocations.read_text()) if revocations.exists() else {})

    def issue(self, user: User, now: int) -> tuple[str, int, Claims]:
        """A signed token for `user`, its lifetime in seconds, and its claims."""
        claims = Claims(user.name, user.roles, user.accounts, secrets.token_hex(16), now + self._ttl_s)
        payload = {"sub": user.name, "roles": list(user.roles), "accounts": list(user.accounts),
                   "jti": claims.token_id, "iat": now, "nbf": now, "exp": claims.expires_at, "iss": ISSUER}
        return jwt.encode(payload, self._key, algorithm=ALGORITHM), self._ttl_s, claims

    def verify(self, token: str, now: int) -> Claims:
        """Check signature (HS256 only: `alg: none` and algorithm swaps fail), expiry, issuer, revocation."""
        try:
            payload = jwt.decode(token, self._key, algorithms=[ALGORITHM], issuer=ISSUER,
                                 options={"require": ["exp", "iat", "sub", "jti"], "verify_exp": False})
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {type(exc).__name__}") from exc
        if int(payload["exp"]) <= now:
            raise TokenError("token expired")
        if payload["jti"] in self._revoked:
            raise TokenError("token revoked")
        return Claims(str(payload["sub"]), tuple(payload.get("roles", ())), tuple(payload.get("accounts", ())),
                      str(payload["jti"]), int(payload["exp"]))

    def revoke(self, claims: Claims, now: int) -> None:
        """Refuse this token from now on; expired revocations are dropped from the file."""
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp > now}
        self._revoked[claims.token_id] = claims.expires_at
        write_private(self._revocations, json.dumps(self._revoked).encode())
