"""Login (password + TOTP → JWT), logout (revocation) and who-am-I."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from aiohttp import web

from gateway.auth import audit, authenticate, client_address
from gateway.errors import bad_request, too_many_requests, unauthorized
from gateway.state import GATEWAY
from gateway.users import User


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/auth/login."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    totp: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]


class LoginResponse(msgspec.Struct):
    """Answer to a successful login."""

    access_token: str
    token_type: str
    expires_in: int
    roles: list[str]
    accounts: list[str]


_login_decoder = msgspec.json.Decoder(LoginRequest)


async def read_json(request: web.Request, decoder: msgspec.json.Decoder) -> object:  # type: ignore[type-arg]
    """Decode a request body with `decoder`; 400 naming the field on any error."""
    body = await request.read()
    if not body:
        raise bad_request("the request body is empty; send JSON")
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, ValueError, ArithmeticError) as exc:
        raise bad_request(str(exc) or type(exc).__name__) from exc


async def login(request: web.Request) -> web.Response:
    """Exchange username, password and a fresh TOTP code for a 12 h access token."""
    gateway = request.app[GATEWAY]
    body = await read_json(request, _login_decoder)
    assert isinstance(body, LoginRequest)
    now = time.monotonic()
    throttle_keys = (f"user:{body.username}", f"ip:{client_address(request)}")
    # Only failures spend from these buckets; a locked-out key is refused before any hashing.
    for key in throttle_keys:
        wait = gateway.login_failures.peek(key, now)
        if wait:
            raise too_many_requests(wait, "too many failed logins; wait before trying again")
    outcome = gateway.users.authenticate(body.username, body.password, body.totp, time.time())
    if not isinstance(outcome, User):
        waits = [gateway.login_failures.take(key, now) for key in throttle_keys]
        await audit(request, "login", body.username, "login", "failure", outcome)
        if any(waits):
            raise too_many_requests(max(waits), "too many failed logins; wait before trying again")
        raise unauthorized("wrong username, password or TOTP code" if outcome != "replayed_totp"
                           else "this TOTP code was already used; wait for the next one")
    token, expires_in, claims = gateway.tokens.issue(outcome, int(time.time()))
    await audit(request, "login", outcome.name, "login", "success")
    await audit(request, "token", outcome.name, "issue", "success", f"jti={claims.token_id} exp={claims.expires_at}")
    response = LoginResponse(token, "Bearer", expires_in, list(outcome.roles), list(outcome.accounts))
    return web.json_response(msgspec.to_builtins(response))


async def logout(request: web.Request) -> web.Response:
    """Revoke the caller's token."""
    gateway = request.app[GATEWAY]
    claims = await authenticate(request)
    gateway.tokens.revoke(claims, int(time.time()))
    await audit(request, "token", claims.subject, "revoke", "success", f"jti={claims.token_id}")
    return web.json_response({"revoked": True})


async def me(request: web.Request) -> web.Response:
    """The caller's name, roles, accounts and token expiry."""
    claims = await authenticate(request)
    return web.json_response({"username": claims.subject, "roles": list(claims.roles),
                              "accounts": list(claims.accounts), "expires_at": claims.expires_at})


def register(app: web.Application) -> None:
    """Add the auth routes."""
    app.router.add_post("/v1/auth/login", login)
    app.router.add_post("/v1/auth/logout", logout)
    app.router.add_get("/v1/auth/me", me)
