"""GET /v1/ws: live bus events over a WebSocket, filtered by the client's subject patterns and the user's accounts.

Protocol (JSON text frames both ways):

- Connect with ``Authorization: Bearer <access_token>``, or with ``?token=<access_token>`` because
  browsers cannot set headers on a WebSocket (the query string may reach proxy access logs,
  so use the header where you can). No valid token: 401 JSON before the upgrade.
- ``{"subscribe": ["sq.exec.report.>", "sq.md.trade.BINANCE.*"]}`` adds NATS wildcard patterns
  under ``sq.md.``, ``sq.ord.``, ``sq.risk.``, ``sq.exec.``, ``sq.pf.``, ``sq.ctl.`` or ``sq.rpt.``; the
  server answers ``{"subscribed": [every current pattern]}`` once the broker has the interest.
  ``{"unsubscribe": [...]}`` removes patterns; ``{"ping": x}`` is answered ``{"pong": x}``
  (browsers cannot send protocol pings; the server itself pings every 20 s).
- The server pushes ``{"subject": ..., "event": {...}}``. Users without the risk or admin role
  see order-path events and trade reports (``sq.ord/risk/exec/pf/rpt``, account = last subject token) and
  account-scoped control events (``sq.ctl.killswitch|state|limits.<account>``) only for their
  own accounts; market data and global control events are visible to everyone.
- A bad message gets ``{"error", "detail"}`` and the connection stays open.
- Each client has a bounded queue. When it is full the client is closed with code 4008 (slow
  consumer), or, if it subscribed with ``"overflow": "drop_oldest"``, the oldest frame is
  dropped; both are counted in ``sq_gateway_ws_overflow_total``. At token expiry the server
  closes with 4001; when the token is revoked (a logout, an admin revoke or a disable, on any gateway
  sharing the broker) with 4002 "token revoked", within a second.

Fan-out: per gateway process, one core-NATS subscription per kind of subject some client's
patterns name (``sq.exec.>``, ``sq.ctl.>``, ...), taken when the first client asks for that kind
and dropped when the last one stops; so a dashboard watching execution reports does not make the
gateway receive every market data tick. Each message is validated and framed once, then offered to
every client whose patterns and accounts match. Kinds are disjoint, so no message arrives twice;
messages of different kinds arrive in no particular order relative to each other.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from typing import Any, Literal

import msgspec
from aiohttp import WSMsgType, web
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Gauge

from events.bus import Bus
from events.partitions import plain
from events.subjects import ALL_ACCOUNTS
from gateway.auth import authenticate
from gateway.routes_query import visible_accounts
from gateway.state import GATEWAY
from gateway.tokens import Claims, Revocation

log = logging.getLogger(__name__)

ALLOWED_KINDS = frozenset({"md", "ord", "risk", "exec", "pf", "ctl", "rpt"})
ACCOUNT_SCOPED = frozenset({"ord", "risk", "exec", "pf", "rpt"})
SCOPED_CONTROL = frozenset({"killswitch", "state", "limits"})
MAX_PATTERNS = 64
DEFAULT_QUEUE_SIZE = 4096
HEARTBEAT_S = 20.0
CLOSE_SLOW_CONSUMER = 4008
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_TOKEN_REVOKED = 4002
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_READERS = ("viewer", "trader", "risk", "admin")

CLIENTS = Gauge("sq_gateway_ws_clients", "Connected WebSocket clients")
SENT = Counter("sq_gateway_ws_frames_sent_total", "Frames written to WebSocket clients")
OVERFLOW = Counter("sq_gateway_ws_overflow_total", "Slow WebSocket clients: frames dropped or clients closed",
                   ["action"])
UNDECODABLE = Counter("sq_gateway_ws_undecodable_total", "Bus messages not forwarded because they are not JSON")

Pattern = tuple[str, ...]
Overflow = Literal["disconnect", "drop_oldest"]


class ClientMessage(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One message from a WebSocket client; any combination of the fields."""

    subscribe: list[str] | None = None
    unsubscribe: list[str] | None = None
    ping: Any = None
    overflow: Overflow | None = None


class StreamedEvent(msgspec.Struct):
    """One pushed frame: the subject and the event exactly as published."""

    subject: str
    event: dict[str, Any]


_client_decoder = msgspec.json.Decoder(ClientMessage)
_json = msgspec.json.Encoder()


class PatternError(ValueError):
    """A subscription pattern was refused; `pattern` is the offending one."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(f"pattern {pattern!r}: {reason}")
        self.pattern = pattern


def parse_pattern(pattern: str) -> Pattern:
    """Validate a NATS wildcard pattern under the streamable prefixes; return its tokens."""
    tokens = tuple(pattern.split("."))
    if len(pattern) > 256 or len(tokens) < 3 or tokens[0] != "sq" or tokens[1] not in ALLOWED_KINDS:
        raise PatternError(pattern, "must start with one of " + ", ".join(f"sq.{k}." for k in sorted(ALLOWED_KINDS)))
    for index, part in enumerate(tokens[2:], start=2):
        if part == ">" and index != len(tokens) - 1:
            raise PatternError(pattern, "'>' may only be the last token")
        if part not in ("*", ">") and not _TOKEN.match(part):
            raise PatternError(pattern, f"token {part!r} is not *, > or 1-64 of [A-Za-z0-9_-]")
    return tokens


def matches(pattern: Pattern, subject: tuple[str, ...]) -> bool:
    """NATS matching on pre-split tokens: `*` is one token, a trailing `>` one or more."""
    for index, part in enumerate(pattern):
        if part == ">":
            return len(subject) > index
        if index >= len(subject) or (part != "*" and part != subject[index]):
            return False
    return len(pattern) == len(subject)


def account_of(subject: tuple[str, ...]) -> str | None:
    """The account an event belongs to (the last token), or None when every user may see it."""
    if subject[1] in ACCOUNT_SCOPED:
        return subject[-1]
    if subject[1] == "ctl" and len(subject) >= 4 and subject[2] in SCOPED_CONTROL and subject[-1] != ALL_ACCOUNTS:
        return subject[-1]
    return None


def error_frame(error: str, detail: str) -> bytes:
    """The `{error, detail}` frame sent for a bad client message."""
    return _json.encode({"error": error, "detail": detail})


class WsClient:
    """One connected client: its patterns, what it may see, a bounded outgoing queue and its writer."""

    def __init__(self, ws: web.WebSocketResponse, claims: Claims, queue_size: int) -> None:
        self.ws = ws
        self.claims = claims
        self.user = claims.subject
        self.accounts = visible_accounts(claims)
        self.patterns: set[Pattern] = set()
        self.overflow: Overflow = "disconnect"
        self.queue_size = queue_size
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._closing: tuple[int, str] | None = None

    def may_see(self, account: str | None) -> bool:
        """Whether this user may receive an event of `account` (None: a shared event)."""
        return account is None or self.accounts is None or account in self.accounts

    def offer(self, frame: bytes) -> None:
        """Queue a frame without blocking; a full queue drops the oldest frame or closes the client."""
        if self._closing is not None:
            return
        if len(self._queue) >= self.queue_size:
            if self.overflow == "drop_oldest":
                self._queue.popleft()
                OVERFLOW.labels("drop_oldest").inc()
            else:
                OVERFLOW.labels("disconnect").inc()
                log.warning("closing slow websocket client", extra={"user": self.user, "queued": len(self._queue)})
                self.close_soon(CLOSE_SLOW_CONSUMER, f"slow consumer: {self.queue_size} frames queued")
                return
        self._queue.append(frame)
        self._wake.set()

    def close_soon(self, code: int, reason: str) -> None:
        """Ask the writer to drop what is queued and close with `code`."""
        if self._closing is None:
            self._closing = (code, reason)
            self._queue.clear()
            self._wake.set()

    async def write_loop(self) -> None:
        """Send queued frames in order until closed; the only task that writes to the socket."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._closing is not None:
                    code, reason = self._closing
                    await self.ws.close(code=code, message=reason.encode()[:120])
                    return
                sent = 0
                while self._queue and self._closing is None:
                    await self.ws.send_frame(self._queue.popleft(), WSMsgType.TEXT)
                    sent += 1
                SENT.inc(sent)
        except ConnectionError as exc:
            # The peer went away mid-write; the reader side sees the close and cleans up.
            log.info("websocket peer gone while writing", extra={"user": self.user, "error": repr(exc)})


class Fanout:
    """The gateway's bus subscriptions (one per kind its clients want), dispatching each message to the matching clients."""

    def __init__(self, bus: Bus | None, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.bus = bus
        self.queue_size = queue_size
        self.clients: set[WsClient] = set()               # clients with patterns (fan-out targets)
        self.connected: set[WsClient] = set()             # every open client (closed on revocation)
        self.subscriptions: dict[str, Subscription] = {}     # kind -> the bus subscription to sq.<kind>.>
        self._lock = asyncio.Lock()

    async def watch(self, client: WsClient) -> None:
        """After `client`'s patterns changed: hold the bus subscriptions they need (the broker has them
        when this returns, so the client may be told it is subscribed) and drop those no client needs."""
        self.clients.add(client)
        await self._follow_patterns()

    async def forget(self, client: WsClient) -> None:
        """Remove a client, dropping the bus subscriptions only it needed."""
        self.clients.discard(client)
        await self._follow_patterns()

    async def _follow_patterns(self) -> None:
        async with self._lock:
            if self.bus is None:
                return
            wanted = {pattern[1] for client in self.clients for pattern in client.patterns}
            missing = sorted(wanted - self.subscriptions.keys())
            for kind in missing:
                # Pending limits bound what nats-py buffers for us; beyond them it drops and reports a slow consumer.
                self.subscriptions[kind] = await self.bus.nc.subscribe(f"sq.{kind}.>", cb=self._on_message,
                                                                       pending_msgs_limit=65_536,
                                                                       pending_bytes_limit=64 * 1024 * 1024)
            for kind in sorted(self.subscriptions.keys() - wanted):
                subscription = self.subscriptions.pop(kind)
                if not self.bus.nc.is_closed:
                    await subscription.unsubscribe()
            if missing:
                await self.bus.nc.flush()

    async def _on_message(self, msg: Msg) -> None:
        self.dispatch(msg.subject, msg.data)

    def dispatch(self, subject: str, data: bytes) -> int:
        """Frame one bus message once and offer it to every client that wants it; returns how many."""
        subject = plain(subject)       # clients see and match the subjects as published, without the bucket token
        tokens = tuple(subject.split("."))
        if len(tokens) < 3 or tokens[1] not in ALLOWED_KINDS or not self.clients:
            return 0
        account = account_of(tokens)
        # Many clients share patterns: each distinct pattern is matched once per message.
        decided: dict[Pattern, bool] = {}
        targets = []
        for client in self.clients:
            if not client.may_see(account):
                continue
            for pattern in client.patterns:
                hit = decided.get(pattern)
                if hit is None:
                    hit = decided[pattern] = matches(pattern, tokens)
                if hit:
                    targets.append(client)
                    break
        if not targets:
            return 0
        # Validated only when someone wants it, and once for all of them: a client must never get broken JSON.
        try:
            msgspec.json.decode(data)
        except msgspec.DecodeError:
            UNDECODABLE.inc()
            log.warning("bus message is not JSON; not streamed", extra={"subject": subject})
            return 0
        frame = b'{"subject":' + _json.encode(subject) + b',"event":' + data + b"}"
        for client in targets:
            client.offer(frame)
        return len(targets)

    def revoked(self, revocation: Revocation) -> None:
        """Close the clients whose token was just revoked (a TokenIssuer listener)."""
        for client in list(self.connected):
            if revocation.covers(client.claims):
                log.info("closing websocket of a revoked token", extra={"user": client.user})
                client.close_soon(CLOSE_TOKEN_REVOKED, "token revoked")

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every client (on shutdown)."""
        for client in list(self.connected):
            client.close_soon(code, reason)


FANOUT = web.AppKey("ws_fanout", Fanout)


async def _authenticate(request: web.Request) -> Claims:
    """The caller's claims from the Authorization header or, for browsers, the `token` query parameter."""
    query_token = request.query.get("token")
    if "Authorization" not in request.headers and query_token:
        request = request.clone(headers={**request.headers, "Authorization": f"Bearer {query_token}"})
    return await authenticate(request, *_READERS)


def _handle(client: WsClient, raw: str) -> ClientMessage | None:
    """Validate and apply one client message; None after answering it with an error frame."""
    try:
        message = _client_decoder.decode(raw)
        added = [parse_pattern(p) for p in message.subscribe or []]
    except msgspec.DecodeError as exc:
        client.offer(error_frame("invalid_message", str(exc)))
        return None
    except PatternError as exc:
        client.offer(error_frame("invalid_pattern", str(exc)))
        return None
    removed = {tuple(p.split(".")) for p in message.unsubscribe or []}
    patterns = (client.patterns - removed) | set(added)
    if len(patterns) > MAX_PATTERNS:
        client.offer(error_frame("too_many_patterns", f"{len(patterns)} patterns; at most {MAX_PATTERNS} "
                                 "per connection"))
        return None
    client.patterns = patterns
    if message.overflow is not None:
        client.overflow = message.overflow
    if message.ping is not None:
        client.offer(_json.encode({"pong": message.ping}))
    return message


async def stream(request: web.Request) -> web.WebSocketResponse:
    """GET /v1/ws: authenticate, upgrade, then stream matching events until either side closes."""
    claims = await _authenticate(request)
    fanout = request.app[FANOUT]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=64 * 1024)
    await ws.prepare(request)
    client = WsClient(ws, claims, fanout.queue_size)
    writer = asyncio.create_task(client.write_loop())
    expiry = asyncio.get_running_loop().call_later(max(0.0, claims.expires_at - time.time()), client.close_soon,
                                                   CLOSE_TOKEN_EXPIRED, "token expired")
    CLIENTS.inc()
    fanout.connected.add(client)
    if request.app[GATEWAY].tokens.is_revoked(claims):
        client.close_soon(CLOSE_TOKEN_REVOKED, "token revoked")    # revoked while the upgrade was under way
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                handled = _handle(client, message.data)
                if handled is None or (handled.subscribe is None and handled.unsubscribe is None):
                    continue
                # Acknowledged only once the broker has the interest, so nothing published after is missed.
                await fanout.watch(client)
                client.offer(_json.encode({"subscribed": sorted(".".join(p) for p in client.patterns)}))
            elif message.type == WSMsgType.BINARY:
                client.offer(error_frame("invalid_message", "send JSON text frames, not binary"))
    finally:
        expiry.cancel()
        CLIENTS.dec()
        fanout.connected.discard(client)
        await fanout.forget(client)
        if not writer.done():
            client.close_soon(1000, "closed")
            try:
                await asyncio.wait_for(writer, 5.0)
            except TimeoutError:
                log.info("websocket close did not finish in 5 s", extra={"user": client.user})
    return ws


def register(app: web.Application, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
    """Add /v1/ws and the fan-out its clients share (clients closed on shutdown, bus interest dropped after)."""
    gateway = app[GATEWAY]
    app[FANOUT] = fanout = Fanout(gateway.bus, queue_size=queue_size)
    app.router.add_get("/v1/ws", stream)
    gateway.tokens.listeners.append(fanout.revoked)

    async def close_clients(_app: web.Application) -> None:
        await fanout.close_all()

    async def stop_listening(_app: web.Application) -> None:
        gateway.tokens.listeners.remove(fanout.revoked)

    app.on_shutdown.append(close_clients)
    app.on_cleanup.append(stop_listening)
