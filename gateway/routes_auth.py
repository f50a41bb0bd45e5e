"""Login (password + TOTP → JWT), logout (revocation), who-am-I, and the admin's users and sessions.

With a broker every route here acts on the shared buckets, so what one gateway does (enrol, disable,
revoke, a used TOTP code, a failed login) holds on every gateway at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from gateway.auth import audit, authenticate, client_address
from gateway.errors import bad_request, not_found, too_many_requests, unauthorized
from gateway.sessions import SharedSessions
from gateway.state import GATEWAY
from gateway.tokens import Revocation
from gateway.user_bucket import SharedUsers
from gateway.users import User, UserError, user_of


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
    now = time.time()
    throttle_keys = [("user", body.username), ("ip", client_address(request))]
    # Only failures spend from these buckets (shared by every gateway); a locked-out key is refused before hashing.
    wait = await gateway.login_wait(throttle_keys, now)
    if wait:
        raise too_many_requests(wait, "too many failed logins; wait before trying again")
    outcome = await gateway.check_login(body.username, body.password, body.totp, now)
    if not isinstance(outcome, User):
        wait = await gateway.login_failed(throttle_keys, now)
        await audit(request, "login", body.username, "login", "failure", outcome)
        if wait:
            raise too_many_requests(wait, "too many failed logins; wait before trying again")
        raise unauthorized("this TOTP code was already used; wait for the next one" if outcome == "replayed_totp"
                           else "wrong username, password or TOTP code")
    token, expires_in, claims = gateway.tokens.issue(outcome, int(time.time()))
    await gateway.issued(claims)
    await audit(request, "login", outcome.name, "login", "success")
    await audit(request, "token", outcome.name, "issue", "success", f"jti={claims.token_id} exp={claims.expires_at}")
    response = LoginResponse(token, "Bearer", expires_in, list(outcome.roles), list(outcome.accounts))
    return web.json_response(msgspec.to_builtins(response))


async def logout(request: web.Request) -> web.Response:
    """Revoke the caller's token on every gateway (and close its WebSockets)."""
    gateway = request.app[GATEWAY]
    claims = await authenticate(request)
    await gateway.revoke(Revocation(token_id=claims.token_id, user=claims.subject), claims.expires_at)
    await audit(request, "token", claims.subject, "revoke", "success", f"jti={claims.token_id}")
    return web.json_response({"revoked": True})


async def me(request: web.Request) -> web.Response:
    """The caller's name, roles, accounts and token expiry."""
    claims = await authenticate(request)
    return web.json_response({"username": claims.subject, "roles": list(claims.roles),
                              "accounts": list(claims.accounts), "expires_at": claims.expires_at})


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/auth/users (admin): enrol a user."""

    username: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    password: Annotated[str, msgspec.Meta(min_length=12, max_length=1024)]
    roles: Annotated[list[Literal["viewer", "trader", "risk", "admin"]], msgspec.Meta(min_length=1)]
    accounts: list[Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] = []


class RevokeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /v1/auth/revoke (admin): one token by id, or every token of a user."""

    token_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")] | None = None
    username: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None


class Enrolled(msgspec.Struct):
    """201 answer to POST /v1/auth/users: the provisioning URI carries the TOTP seed and is shown once."""

    username: str
    roles: list[str]
    accounts: list[str]
    provisioning_uri: str


class UserRow(msgspec.Struct):
    """One user as an admin sees it (no secrets)."""

    username: str
    roles: list[str]
    accounts: list[str]
    disabled: bool


class UserList(msgspec.Struct):
    """GET /v1/auth/users."""

    users: list[UserRow]


class SessionRow(msgspec.Struct):
    """One live token: its id (what POST /v1/auth/revoke takes), holder, issue and expiry times (s since epoch)."""

    token_id: str
    username: str
    issued_at: int
    expires_at: int


class SessionList(msgspec.Struct):
    """GET /v1/auth/sessions."""

    sessions: list[SessionRow]


class Disabled(msgspec.Struct):
    """POST /v1/auth/users/{name}/disable."""

    username: str
    disabled: bool


_new_user_decoder = msgspec.json.Decoder(NewUser)
_revoke_decoder = msgspec.json.Decoder(RevokeRequest)


def _shared(request: web.Request) -> tuple[SharedUsers, SharedSessions]:
    """The shared users and sessions; 400 on a gateway without a broker."""
    gateway = request.app[GATEWAY]
    if gateway.shared_users is None or gateway.sessions is None:
        raise bad_request("user administration over HTTP needs the broker; use `sq user` on the data dir")
    return gateway.shared_users, gateway.sessions


async def add_user(request: web.Request) -> web.Response:
    """Enrol a user (admin); the answer carries the TOTP provisioning URI once."""
    claims = await authenticate(request, "admin")
    users, _ = _shared(request)
    body = await read_json(request, _new_user_decoder)
    assert isinstance(body, NewUser)
    try:
        enrolment = await users.add(body.username, body.password, list(body.roles), body.accounts)
    except UserError as exc:
        raise bad_request(str(exc)) from exc
    await audit(request, "user", claims.subject, "add", "success", f"user={body.username} roles={','.join(body.roles)}")
    user = enrolment.user
    answer = Enrolled(user.name, list(user.roles), list(user.accounts), enrolment.provisioning_uri)
    return web.json_response(msgspec.to_builtins(answer), status=201)


async def list_users(request: web.Request) -> web.Response:
    """Every user with roles, accounts and whether disabled (admin; no secrets)."""
    await authenticate(request, "admin")
    users, _ = _shared(request)
    listing = []
    for name in await users.names():
        record, _revision = await users.record(name)
        if record is not None:
            user = user_of(name, record)
            listing.append(UserRow(name, list(user.roles), list(user.accounts), bool(record.get("disabled"))))
    return web.json_response(msgspec.to_builtins(UserList(listing)))


async def disable_user(request: web.Request) -> web.Response:
    """Disable a user (admin): their logins are refused and every token they hold is revoked everywhere."""
    claims = await authenticate(request, "admin")
    users, _ = _shared(request)
    name = request.match_info["name"]
    try:
        await users.disable(name)
    except UserError as exc:
        raise not_found(str(exc)) from exc
    gateway = request.app[GATEWAY]
    now = time.time()
    await gateway.revoke(Revocation(user=name, before=now), now + gateway.tokens.ttl_s)
    await audit(request, "user", claims.subject, "disable", "success", f"user={name}")
    return web.json_response(msgspec.to_builtins(Disabled(name, True)))


async def revoke(request: web.Request) -> web.Response:
    """Revoke one token by id, or every current token of a user (admin), on every gateway."""
    claims = await authenticate(request, "admin")
    _shared(request)
    body = await read_json(request, _revoke_decoder)
    assert isinstance(body, RevokeRequest)
    if (body.token_id is None) == (body.username is None):
        raise bad_request("give exactly one of token_id or username")
    gateway = request.app[GATEWAY]
    now = time.time()
    if body.token_id is not None:
        revocation = Revocation(token_id=body.token_id)
        # The expiry of an unknown id is not known: hold it for a whole token lifetime.
        await gateway.revoke(revocation, now + gateway.tokens.ttl_s)
        detail = f"jti={body.token_id}"
    else:
        await gateway.revoke(Revocation(user=body.username, before=now), now + gateway.tokens.ttl_s)
        detail = f"user={body.username}"
    await audit(request, "token", claims.subject, "revoke", "success", detail)
    return web.json_response({"revoked": True})


async def list_sessions(request: web.Request) -> web.Response:
    """Tokens issued and neither expired nor revoked (admin): id, user, issued and expiry times."""
    await authenticate(request, "admin")
    _, sessions = _shared(request)
    gateway = request.app[GATEWAY]
    live = [SessionRow(session.token_id, session.user, session.issued_at, session.expires_at)
            for session in await sessions.sessions() if not gateway.tokens.is_revoked(session.claims())]
    return web.json_response(msgspec.to_builtins(SessionList(live)))


async def _shared_state(app: web.Application) -> AsyncIterator[None]:
    """With a broker: open the shared buckets and catch up on revocations before the first request."""
    gateway = app[GATEWAY]
    await gateway.share()
    yield
    await gateway.unshare()


def register(app: web.Application) -> None:
    """Add the auth routes, and the shared users and sessions (opened as the app starts)."""
    app.router.add_post("/v1/auth/login", login)
    app.router.add_post("/v1/auth/logout", logout)
    app.router.add_get("/v1/auth/me", me)
    app.router.add_get("/v1/auth/users", list_users)
    app.router.add_post("/v1/auth/users", add_user)
    app.router.add_post("/v1/auth/users/{name}/disable", disable_user)
    app.router.add_post("/v1/auth/revoke", revoke)
    app.router.add_get("/v1/auth/sessions", list_sessions)
    app.cleanup_ctx.append(_shared_state)
