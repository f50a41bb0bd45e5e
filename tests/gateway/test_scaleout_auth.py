"""Two `sq gateway` processes on one broker share users, sessions, revocations, used TOTP steps and failed-login
throttles through JetStream key-value; a SIGKILLed gateway loses none of it; no secret is ever stored or logged."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiohttp
import nats.js.errors
import pyotp
import pytest

from events import Broker, Bus, free_port
from tests.conftest import REPO_ROOT, eventually

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"


@dataclass
class GatewayProcess:
    """One `sq gateway` process with its own data dir and port, logging to a file."""

    name: str
    data_dir: Path
    port: int
    env: dict[str, str]
    broker_url: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        """Its HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        """Its log file (every start appends)."""
        return self.data_dir.parent / f"{self.name}.log"

    def start(self) -> None:
        """Start (or restart) the process."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "gateway", "--nats-url", self.broker_url, "--data-dir",
                 str(self.data_dir), "--http-port", str(self.port), "--no-durable-ack"],
                cwd=REPO_ROOT, env=self.env, stdout=log, stderr=log)

    def kill(self) -> None:
        """SIGKILL and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 15 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Pair:
    """Two gateways, the environment they share (one master key), and every secret handed out, to scan for."""

    a: GatewayProcess
    b: GatewayProcess
    env: dict[str, str]
    seeds: dict[str, str] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    used_steps: dict[str, int] = field(default_factory=dict)

    def code(self, user: str) -> str | None:
        """A TOTP code of a step this user has not used yet (current or next; never an older one), or None."""
        totp = pyotp.TOTP(self.seeds[user])
        current = totp.timecode(time.time())
        for step in (current, current + 1):
            if step > self.used_steps.get(user, 0):
                self.used_steps[user] = step
                return totp.generate_otp(step)
        return None


@pytest.fixture
def pair(broker: Broker, tmp_path: Path) -> Iterator[Pair]:
    """Gateways A and B (started by the test) sharing a master key over the test's broker."""
    env = {**os.environ, "SQ_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()}
    env.pop("SQ_JWT_SECRET", None)
    env.pop("SQ_NATS_URL", None)
    a = GatewayProcess("gw-a", tmp_path / "a", free_port(), env, broker.url)
    b = GatewayProcess("gw-b", tmp_path / "b", free_port(), env, broker.url)
    yield Pair(a, b, env)
    a.stop()
    b.stop()


def _seed(provisioning_uri: str) -> str:
    return parse_qs(urlparse(provisioning_uri).query)["secret"][0]


async def _up(session: aiohttp.ClientSession, gateway: GatewayProcess) -> None:
    async def answering() -> bool:
        try:
            async with session.get(f"{gateway.base}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    # The port opens only after the buckets are open and the revocations caught up.
    await eventually(answering, timeout=60, message=f"{gateway.name} answering")


async def _login(session: aiohttp.ClientSession, pair: Pair, gateway: GatewayProcess, user: str) -> str:
    """Log in with a fresh TOTP step (waiting for one if both usable steps were used) and return the token."""
    codes: list[str] = []

    def fresh() -> bool:
        code = pair.code(user)
        if code is not None:
            codes.append(code)
        return code is not None

    await eventually(fresh, timeout=40, interval=0.2, message=f"an unused TOTP step for {user}")
    async with session.post(f"{gateway.base}/v1/auth/login",
                            json={"username": user, "password": PASSWORD, "totp": codes[0]}) as response:
        body = await response.json()
        assert response.status == 200, body
    pair.tokens.append(body["access_token"])
    return str(body["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(session: aiohttp.ClientSession, url: str, token: str) -> int:
    async with session.get(url, headers=_bearer(token)) as response:
        return response.status


async def _enrol(session: aiohttp.ClientSession, pair: Pair, via: GatewayProcess, admin: str, user: str,
                 roles: list[str]) -> None:
    async with session.post(f"{via.base}/v1/auth/users", headers=_bearer(admin),
                            json={"username": user, "password": PASSWORD, "roles": roles, "accounts": ["ACC1"]}) as r:
        body = await r.json()
        assert r.status == 201, body
    pair.seeds[user] = _seed(body["provisioning_uri"])


async def _kv_values(bus: Bus) -> list[bytes]:
    """Every message still stored in the users and sessions buckets (older revisions included)."""
    values = []
    for stream in ("KV_sq-users", "KV_sq-sessions"):
        info = await bus.js.stream_info(stream)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                message = await bus.js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue        # expired by its TTL
            values.append(message.data or b"")
    return values


async def _audit_events(bus: Bus) -> list[bytes]:
    info = await bus.js.stream_info("SQ_AUDIT")
    return [(await bus.js.get_msg("SQ_AUDIT", seq)).data or b""
            for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages]


@pytest.mark.timeout(300)
async def test_two_gateways_share_users_sessions_revocations_totp_steps_and_throttles(
        pair: Pair, bus: Bus, broker: Broker) -> None:
    a, b = pair.a, pair.b
    # The first admin is enrolled with the command line straight into the broker's bucket.
    added = subprocess.run([sys.executable, "-m", "gateway.cli", "user", "add", "root", "--role", "admin",
                            "--password-stdin", "--nats-url", broker.url, "--data-dir", str(a.data_dir)],
                           input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO_ROOT, env=pair.env,
                           check=False)
    assert added.returncode == 0, added.stderr
    pair.seeds["root"] = _seed(added.stdout.strip().splitlines()[-1])
    a.start()
    b.start()
    errors: list[str] = []
    async with aiohttp.ClientSession() as session:
        await _up(session, a)
        await _up(session, b)
        root = await _login(session, pair, a, "root")
        for user in ("alice", "bob", "carol", "erin"):
            await _enrol(session, pair, a, root, user, ["trader"])

        # A user enrolled through A logs in on B.
        alice = await _login(session, pair, b, "alice")
        assert await _status(session, f"{a.base}/v1/auth/me", alice) == 200

        # A token revoked (logout) on A is refused by B within 1 s.
        async with session.post(f"{a.base}/v1/auth/logout", headers=_bearer(alice)) as response:
            assert response.status == 200
        await eventually(lambda: _refused(session, f"{b.base}/v1/auth/me", alice), timeout=1.0,
                         interval=0.01, message="B refusing the token logged out on A")

        # A WebSocket open on B closes within 1 s of the logout on A, with a code and a reason.
        bob = await _login(session, pair, a, "bob")
        async with session.ws_connect(f"{b.base}/v1/ws", headers=_bearer(bob)) as ws:
            await ws.send_json({"subscribe": ["sq.exec.>"]})
            assert (await ws.receive_json(timeout=10))["subscribed"] == ["sq.exec.>"]
            async with session.post(f"{a.base}/v1/auth/logout", headers=_bearer(bob)) as response:
                assert response.status == 200
            closing = await ws.receive(timeout=1.0)
            assert (closing.type, closing.data, closing.extra) == (aiohttp.WSMsgType.CLOSE, 4002, "token revoked")

        # A TOTP code used on A is refused on B.
        code = None
        while code is None:
            code = pair.code("carol")
        login = {"username": "carol", "password": PASSWORD, "totp": code}
        async with session.post(f"{a.base}/v1/auth/login", json=login) as response:
            assert response.status == 200
            carol = (await response.json())["access_token"]
            pair.tokens.append(carol)
        async with session.post(f"{b.base}/v1/auth/login", json=login) as response:
            replay = await response.json()
            errors.append(str(replay))
            assert response.status == 401 and "already used" in replay["detail"], replay

        # A disable on B refuses the user's token on A, and SIGKILL of A right after loses nothing.
        erin = await _login(session, pair, a, "erin")
        async with session.post(f"{b.base}/v1/auth/users/erin/disable", headers=_bearer(root)) as response:
            assert response.status == 200
        await eventually(lambda: _refused(session, f"{a.base}/v1/auth/me", erin), timeout=1.0, interval=0.01,
                         message="A refusing the token of the user disabled on B")
        for victim in (a, b):
            victim.kill()
            victim.start()
            await _up(session, victim)
            for token in (alice, bob, erin):
                assert await _status(session, f"{victim.base}/v1/auth/me", token) == 401
            assert await _status(session, f"{victim.base}/v1/auth/me", carol) == 200
            async with session.get(f"{victim.base}/v1/auth/users", headers=_bearer(root)) as response:
                listing = {u["username"]: u["disabled"] for u in (await response.json())["users"]}
            assert listing == {"root": False, "alice": False, "bob": False, "carol": False, "erin": True}

        # An admin revoke on B of every token of a user is refused on A within 1 s.
        async with session.post(f"{b.base}/v1/auth/revoke", headers=_bearer(root),
                                json={"username": "carol"}) as response:
            assert response.status == 200
        await eventually(lambda: _refused(session, f"{a.base}/v1/auth/me", carol), timeout=1.0, interval=0.01,
                         message="A refusing the tokens an admin revoked on B")

        # Failed logins alternate between A and B: the shared throttle answers 429 on both well before either
        # gateway alone has seen its burst of 5 (with per-gateway counters that would take 9 attempts).
        attempts = 0
        status = 401
        while status == 401 and attempts < 9:
            target = (a, b)[attempts % 2]
            async with session.post(f"{target.base}/v1/auth/login",
                                    json={"username": "mallory", "password": WRONG, "totp": "123456"}) as response:
                status = response.status
                errors.append(await response.text())
            attempts += 1
        assert status == 429 and attempts <= 6, (status, attempts)
        for target in (a, b):
            async with session.post(f"{target.base}/v1/auth/login",
                                    json={"username": "mallory", "password": WRONG, "totp": "123456"}) as response:
                assert response.status == 429 and "Retry-After" in response.headers
                errors.append(await response.text())

    # No password, TOTP seed or token in any KV value, audit event, log line or error body.
    a.stop()
    b.stop()
    secrets = [PASSWORD, WRONG, *pair.seeds.values(), *pair.tokens]
    stored = await _kv_values(bus)
    assert len(stored) >= 5
    haystacks = {"kv": b"\n".join(stored), "audit": b"\n".join(await _audit_events(bus)),
                 "logs": a.log.read_bytes() + b.log.read_bytes(), "errors": "\n".join(errors).encode()}
    for where, haystack in haystacks.items():
        for secret in secrets:
            assert secret.encode() not in haystack, f"a secret in clear in {where}"
        assert b"$argon2id" not in haystack, f"a password hash in clear in {where}"


async def _refused(session: aiohttp.ClientSession, url: str, token: str) -> bool:
    return await _status(session, url, token) == 401
