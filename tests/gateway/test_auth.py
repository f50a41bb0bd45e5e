"""Auth over a running gateway: password + TOTP → JWT, and every way a request must be refused."""

from __future__ import annotations

import time

import jwt

from events import AuditEvent, Bus, decode
from events.broker import Broker
from gateway.users import User
from tests.conftest import eventually
from tests.gateway.conftest import PASSWORD, Running

INTENT = {"account": "ACC1", "client_order_id": "auth-1", "symbol": "BTCUSDT", "side": "BUY",
          "quantity": "0.5", "limit_price": "100.5"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_with_password_and_totp_returns_a_twelve_hour_token_with_roles(running: Running) -> None:
    token = await running.login("alice")
    response = await running.client.get("/v1/auth/me", headers=_bearer(token))
    body = await response.json()
    assert response.status == 200
    assert body["username"] == "alice" and body["roles"] == ["trader"] and body["accounts"] == ["ACC1"]
    assert abs(body["expires_at"] - (time.time() + 12 * 3600)) < 60


async def test_wrong_password_is_refused_with_401_json(running: Running) -> None:
    code = running.gateway.users.totp_now("alice")
    response = await running.client.post("/v1/auth/login", json={"username": "alice", "password": "nope" * 4,
                                                                  "totp": code})
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"


async def test_wrong_totp_is_refused(running: Running) -> None:
    good = running.gateway.users.totp_now("alice")
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    response = await running.client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD,
                                                                  "totp": wrong})
    assert response.status == 401


async def test_replayed_totp_code_is_refused_within_its_window(running: Running) -> None:
    code = running.gateway.users.totp_now("alice")
    body = {"username": "alice", "password": PASSWORD, "totp": code}
    assert (await running.client.post("/v1/auth/login", json=body)).status == 200
    replay = await running.client.post("/v1/auth/login", json=body)
    assert replay.status == 401
    assert "already used" in (await replay.json())["detail"]


async def test_unknown_user_and_malformed_body_are_refused_naming_the_field(running: Running) -> None:
    unknown = await running.client.post("/v1/auth/login", json={"username": "mallory", "password": PASSWORD,
                                                                 "totp": "123456"})
    assert unknown.status == 401
    malformed = await running.client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD,
                                                                   "totp": "12ab"})
    assert malformed.status == 400 and "$.totp" in (await malformed.json())["detail"]


async def test_tampered_token_is_refused(running: Running) -> None:
    token = await running.login("alice")
    header, payload, signature = token.split(".")
    forged = jwt.utils.base64url_encode(b'{"sub":"alice","roles":["admin"],"accounts":["ACC1"],"jti":"x",'
                                        b'"iat":1,"exp":9999999999,"iss":"shrivenquant"}').decode()
    response = await running.client.get("/v1/auth/me", headers=_bearer(f"{header}.{forged}.{signature}"))
    assert response.status == 401


async def test_expired_token_is_refused(running: Running) -> None:
    token, _, _ = running.gateway.tokens.issue(User("alice", ("trader",), ("ACC1",)), int(time.time()) - 13 * 3600)
    response = await running.client.get("/v1/auth/me", headers=_bearer(token))
    assert response.status == 401 and "expired" in (await response.json())["detail"]


async def test_alg_none_token_is_refused(running: Running) -> None:
    unsigned = jwt.encode({"sub": "root", "roles": ["admin"], "accounts": [], "jti": "x", "iat": int(time.time()),
                           "exp": int(time.time()) + 60, "iss": "shrivenquant"}, key=None, algorithm="none")
    response = await running.client.get("/v1/auth/me", headers=_bearer(unsigned))
    assert response.status == 401


async def test_token_signed_with_another_key_is_refused(running: Running) -> None:
    other = jwt.encode({"sub": "root", "roles": ["admin"], "accounts": [], "jti": "x", "iat": int(time.time()),
                        "exp": int(time.time()) + 60, "iss": "shrivenquant"}, "k" * 40, algorithm="HS256")
    assert (await running.client.get("/v1/auth/me", headers=_bearer(other))).status == 401


async def test_missing_token_is_401_with_www_authenticate(running: Running) -> None:
    response = await running.client.post("/v1/orders", json=INTENT)
    assert response.status == 401 and "Bearer" in response.headers["WWW-Authenticate"]


async def test_viewer_placing_an_order_is_forbidden(running: Running) -> None:
    token = await running.login("vic")
    response = await running.client.post("/v1/orders", json=INTENT, headers=_bearer(token))
    assert response.status == 403 and "trader" in (await response.json())["detail"]


async def test_order_for_another_account_is_forbidden(running: Running) -> None:
    token = await running.login("alice")
    response = await running.client.post("/v1/orders", json={**INTENT, "account": "ACC2"}, headers=_bearer(token))
    assert response.status == 403 and "ACC2" in (await response.json())["detail"]


async def test_trader_cannot_engage_the_kill_switch_but_risk_can(running: Running) -> None:
    body = {"engaged": True, "reason": "drill"}
    trader = await running.client.post("/v1/risk/killswitch", json=body, headers=_bearer(await running.login("alice")))
    assert trader.status == 403
    risk = await running.client.post("/v1/risk/killswitch", json=body, headers=_bearer(await running.login("rita")))
    assert risk.status == 202 and (await risk.json())["engaged"] is True


async def test_revoked_token_is_refused_after_logout(running: Running) -> None:
    token = await running.login("alice")
    assert (await running.client.post("/v1/auth/logout", headers=_bearer(token))).status == 200
    assert (await running.client.get("/v1/auth/me", headers=_bearer(token))).status == 401


async def test_repeated_failed_logins_are_throttled_with_retry_after(running: Running) -> None:
    statuses = []
    for _ in range(7):
        response = await running.client.post("/v1/auth/login", json={"username": "alice", "password": "wrong" * 3,
                                                                      "totp": "000000"})
        statuses.append(response.status)
    assert statuses[:4] == [401] * 4
    assert statuses[-1] == 429
    assert int(response.headers["Retry-After"]) >= 1
    # Even the right password is refused while throttled.
    code = running.gateway.users.totp_now("alice")
    right = await running.client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD, "totp": code})
    assert right.status == 429


async def test_login_while_the_broker_is_down_is_a_503_to_retry_and_works_once_it_is_back(
        running: Running, broker: Broker, bus: Bus) -> None:
    broker.kill()                   # the session record (a KV write) cannot be stored
    code = running.gateway.users.totp_now("alice")
    response = await running.client.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD,
                                                                  "totp": code})
    assert response.status == 503, await response.text()
    assert response.headers["Retry-After"] == "1"
    assert (await response.json()) == {"error": "unavailable", "detail": "the event bus did not answer in time; try again"}
    broker.start()
    await eventually(lambda: bus.nc.is_connected, timeout=30, message="the gateway's bus reconnected")
    assert await running.login("alice", at=time.time() + 30)   # the next step's code: the first may be spent


async def test_audit_events_record_logins_and_denials_without_secrets(running: Running, bus: Bus) -> None:
    token = await running.login("alice")
    await running.client.post("/v1/orders", json={**INTENT, "account": "ACC2"}, headers=_bearer(token))
    info = await bus.js.stream_info("SQ_AUDIT")
    events = []
    for seq in range(1, info.state.last_seq + 1):
        message = await bus.js.get_msg("SQ_AUDIT", seq)
        raw = message.data or b""
        assert PASSWORD.encode() not in raw and token.encode() not in raw
        events.append(decode(raw))
    kinds = [(e.kind, e.outcome) for e in events if isinstance(e, AuditEvent)]
    assert ("login", "success") in kinds and ("token", "success") in kinds and ("denial", "denied") in kinds


def test_sq_user_add_prints_the_otpauth_uri_once_and_the_user_can_log_in(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from gateway.users import UserStore
    from tests.conftest import REPO_ROOT

    command = [sys.executable, "-m", "gateway.cli", "user", "add", "bob", "--role", "trader", "--account", "ACC7",
               "--password-stdin", "--data-dir", str(tmp_path)]
    done = subprocess.run(command, input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert "otpauth://totp/ShrivenQuant:bob?secret=" in done.stdout
    again = subprocess.run(command, input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr and "otpauth" not in again.stdout
    store = UserStore(tmp_path / "secrets")
    assert isinstance(store.authenticate("bob", PASSWORD, store.totp_now("bob"), time.time()), User)
    short = subprocess.run([*command[:5], "carol", *command[6:]], input="short\n", capture_output=True, text=True,
                           cwd=REPO_ROOT, check=False)
    assert short.returncode == 2 and "password" in short.stderr
