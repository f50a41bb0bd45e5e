"""Who is calling: bearer-token verification, role and account checks, per-user limits, and audit events."""

from __future__ import annotations

import logging
import time
from typing import Literal

from aiohttp import web

from events.audit import AuditEvent
from events.bus import PublishError
from events.ids import new_event_id
from gateway.errors import forbidden, too_many_requests, unauthorized
from gateway.state import CLAIMS, GATEWAY
from gateway.tokens import Claims, TokenError

log = logging.getLogger(__name__)


def client_address(request: web.Request) -> str:
    """The peer address (no proxy headers are trusted: a deployment behind a proxy sets them itself)."""
    return request.remote or "unknown"


async def audit(request: web.Request, kind: str, actor: str, action: str,
                outcome: Literal["success", "failure", "denied"], detail: str = "") -> None:
    """Publish an `sq.audit.<kind>` event (never with a secret); logged if the bus cannot take it."""
    event = AuditEvent(id=new_event_id(), ts=time.time_ns(), kind=kind, actor=actor, action=action,
                       outcome=outcome, detail=detail, remote=client_address(request))
    bus = request.app[GATEWAY].bus
    log.info("audit", extra={"kind": kind, "actor": actor, "action": action, "outcome": outcome, "detail": detail})
    if bus is None:
        return
    try:
        await bus.publish(event, timeout=2.0, budget_s=2.0)
    except PublishError as exc:
        log.error("audit event not published", extra={"kind": kind, "actor": actor, "error": str(exc)})


async def authenticate(request: web.Request, *roles: str) -> Claims:
    """The caller's verified claims; 401 without a valid token, 403 without one of `roles`, 429 over limit."""
    gateway = request.app[GATEWAY]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("send Authorization: Bearer <access_token> from POST /v1/auth/login")
    try:
        claims = gateway.tokens.verify(token.strip(), int(time.time()))
    except TokenError as exc:
        raise unauthorized(exc.reason) from exc
    wait = gateway.user_limits.take(claims.subject, time.monotonic())
    if wait:
        raise too_many_requests(wait, f"too many requests for user {claims.subject}")
    if roles and not set(roles) & set(claims.roles):
        await audit(request, "denial", claims.subject, request.path, "denied", f"needs role {' or '.join(roles)}")
        raise forbidden(f"this needs role {' or '.join(roles)}; you have {', '.join(claims.roles) or 'none'}")
    request[CLAIMS] = claims
    return claims


async def require_account(request: web.Request, claims: Claims, account: str) -> None:
    """403 unless the caller may act on `account` (admins may act on any)."""
    if "admin" in claims.roles or account in claims.accounts:
        return
    await audit(request, "denial", claims.subject, request.path, "denied", f"account {account} not granted")
    raise forbidden(f"account {account} is not one of yours")
