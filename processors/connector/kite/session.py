"""Kite Connect v3 login: password, automated TOTP, the request_token redirect, and the checksummed session token.

Flow (Kite Connect v3 docs and the official clients): POST `{login}/api/login` (user_id,
password) gives a `request_id`; POST `{login}/api/twofa` (user_id, request_id, twofa_value,
twofa_type=totp) sets the web session cookie; GET `{connect}/connect/login?v=3&api_key=..`
redirects, eventually to the app's redirect URL carrying `request_token`; POST
`{api}/session/token` (api_key, request_token, checksum = sha256(api_key + request_token +
api_secret)) returns the `access_token`. API calls then send `X-Kite-Version: 3` and
`Authorization: token api_key:access_token`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import pyotp

from processors.connector.credentials import KiteCredentials, SessionCache, kite_session_expiry

KITE_VERSION = "3"
MAX_REDIRECTS = 10


@dataclass(frozen=True)
class KiteUrls:
    """Base URLs of the Kite web login, the Connect login redirect, the REST API and the ticker."""

    login: str = "https://kite.zerodha.com"
    connect: str = "https://kite.trade"
    api: str = "https://api.kite.trade"
    ws: str = "wss://ws.kite.trade"


class KiteError(RuntimeError):
    """Kite refused a request: `step`, HTTP `status`, Kite's `error_type` and message (never a secret)."""

    def __init__(self, step: str, status: int, error_type: str | None, message: str) -> None:
        super().__init__(f"kite {step} failed: HTTP {status} {error_type or ''} {message}".strip())
        self.step = step
        self.status = status
        self.error_type = error_type
        self.message = message

    @property
    def session_expired(self) -> bool:
        """True when the access token is no longer valid and a fresh login is the cure."""
        return self.error_type == "TokenException" or self.status == 403


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    """The session-token checksum: hex SHA-256 of api_key + request_token + api_secret."""
    return hashlib.sha256(f"{api_key}{request_token}{api_secret}".encode()).hexdigest()


def auth_headers(api_key: str, access_token: str) -> dict[str, str]:
    """Headers every authenticated Kite Connect v3 call carries."""
    return {"X-Kite-Version": KITE_VERSION, "Authorization": f"token {api_key}:{access_token}"}


async def kite_json(response: aiohttp.ClientResponse, step: str) -> dict[str, Any]:
    """The `data` of a Kite JSON envelope, or KiteError with Kite's error_type and message."""
    try:
        body = await response.json(content_type=None)
    except ValueError as exc:
        raise KiteError(step, response.status, None, f"response is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise KiteError(step, response.status, None, f"response is a {type(body).__name__}, not an object")
    if response.status >= 400 or body.get("status") != "success":
        raise KiteError(step, response.status, body.get("error_type"), str(body.get("message", "")))
    data = body.get("data")
    return data if isinstance(data, dict) else {"value": data}


async def request_token(creds: KiteCredentials, urls: KiteUrls, *, totp_at: datetime | None = None) -> str:
    """Log in with password and a TOTP generated from the stored seed; return the redirect's request_token."""
    # A session of its own: the web-login cookies must not ride along on API calls. `unsafe`
    # lets the jar keep cookies from an IP-address host (a stand-in or a proxy on 127.0.0.1).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        return await _request_token(http, creds, urls, totp_at)


async def _request_token(http: aiohttp.ClientSession, creds: KiteCredentials, urls: KiteUrls,
                         totp_at: datetime | None) -> str:
    async with http.post(f"{urls.login}/api/login",
                         data={"user_id": creds.user_id, "password": creds.password}) as response:
        request_id = (await kite_json(response, "login")).get("request_id")
    if not request_id:
        raise KiteError("login", 200, None, "response has no request_id")
    totp = pyotp.TOTP(creds.totp_seed)
    code = totp.at(totp_at) if totp_at is not None else totp.now()
    async with http.post(f"{urls.login}/api/twofa", data={"user_id": creds.user_id, "request_id": request_id,
                                                          "twofa_value": code, "twofa_type": "totp"}) as response:
        await kite_json(response, "twofa")
    url = f"{urls.connect}/connect/login?v={KITE_VERSION}&api_key={creds.api_key}"
    # Follow redirects by hand: the last hop is the app's redirect URL, which need not be reachable.
    for _ in range(MAX_REDIRECTS):
        async with http.get(url, allow_redirects=False) as response:
            location = response.headers.get("Location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                raise KiteError("connect", response.status, None, "login did not redirect with a request_token")
        url = urljoin(url, location)
        query = parse_qs(urlsplit(url).query)
        if "request_token" in query:
            if query.get("status", ["success"])[0] != "success":
                raise KiteError("connect", 302, None, f"redirect status {query['status'][0]}")
            return query["request_token"][0]
    raise KiteError("connect", 302, None, f"more than {MAX_REDIRECTS} redirects without a request_token")


async def access_token(http: aiohttp.ClientSession, creds: KiteCredentials, urls: KiteUrls, token: str) -> str:
    """Exchange a request_token for an access_token with the checksum."""
    form = {"api_key": creds.api_key, "request_token": token,
            "checksum": checksum(creds.api_key, token, creds.api_secret)}
    async with http.post(f"{urls.api}/session/token", data=form,
                         headers={"X-Kite-Version": KITE_VERSION}) as response:
        data = await kite_json(response, "session/token")
    value = data.get("access_token")
    if not isinstance(value, str) or not value:
        raise KiteError("session/token", 200, None, "response has no access_token")
    return value


async def login(http: aiohttp.ClientSession, creds: KiteCredentials, urls: KiteUrls,
                *, now: datetime | None = None) -> str:
    """The whole login flow: password, TOTP, request_token, checksum, access_token."""
    return await access_token(http, creds, urls, await request_token(creds, urls, totp_at=now))


class KiteSession:
    """An access token kept in the sealed session cache and renewed with a fresh login when it expires."""

    def __init__(self, http: aiohttp.ClientSession, creds: KiteCredentials, urls: KiteUrls,
                 cache: SessionCache) -> None:
        self.http = http
        self.creds = creds
        self.urls = urls
        self.cache = cache

    async def token(self) -> str:
        """A valid access token, logging in (with a fresh TOTP) only when the cached one is gone or expired."""
        async def fresh() -> tuple[str, datetime]:
            now = self.cache.now()  # the TOTP is generated for the (injectable) session clock's time
            return await login(self.http, self.creds, self.urls, now=now), kite_session_expiry(now)

        return await self.cache.token("kite", fresh)

    async def headers(self) -> dict[str, str]:
        """Authenticated headers with a valid token."""
        return auth_headers(self.creds.api_key, await self.token())

    def expire(self) -> None:
        """Forget the token after Kite refused it, so the next call logs in again."""
        self.cache.invalidate("kite")

    def renewal_due(self) -> datetime | None:
        """When the current session must be replaced (06:00 IST, when Kite voids every token), or None if none."""
        cached = self.cache.cached("kite")
        return None if cached is None else datetime.fromtimestamp(cached.expires_ns / 1e9, UTC)

    async def renew_if_due(self) -> bool:
        """Log in afresh (a new TOTP for the clock's time) once the session's renewal time has come."""
        due = self.renewal_due()
        if due is not None and self.cache.now() < due:
            return False
        self.expire()
        await self.token()
        return True


__all__ = ["KITE_VERSION", "KiteError", "KiteSession", "KiteUrls", "access_token", "auth_headers", "checksum",
           "kite_json", "login", "request_token"]
