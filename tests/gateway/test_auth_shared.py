"""Users and sessions in the broker's key-value buckets: admin routes, key rotation by `kid`, sealed values,
moving the local store in, and `sq user` against --nats-url."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import pyotp
import pytest
from aiohttp import WSMsgType
from nats.js.api import StorageType, StreamConfig

from events import Broker, Bus
from gateway.sessions import SharedSessions, throttle_key
from gateway.state import Gateway, GatewayConfig
from gateway.tokens import Revocation, TokenError, TokenIssuer, key_id
from gateway.user_bucket import BUCKET as USERS_BUCKET
from gateway.user_bucket import SharedUsers
from gateway.users import User, UserStore
from store.secrets import SealedValues, SecretError
from tests.conftest import REPO_ROOT, eventually
from tests.gateway.conftest import PASSWORD, Running

ALICE = User("alice", ("trader",), ("ACC1",))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_enrols_a_user_who_then_logs_in_and_a_trader_may_not_enrol(running: Running) -> None:
    root = await running.login("root")
    body = {"username": "nina", "password": PASSWORD, "roles": ["viewer"], "accounts": ["ACC1"]}
    created = await running.client.post("/v1/auth/users", json=body, headers=_bearer(root))
    answer = await created.json()
    assert created.status == 201 and answer["roles"] == ["viewer"]
    seed = parse_qs(urlparse(answer["provisioning_uri"]).query)["secret"][0]
    login = await running.client.post("/v1/auth/login", json={"username": "nina", "password": PASSWORD,
                                                               "totp": pyotp.TOTP(seed).now()})
    assert login.status == 200
    again = await running.client.post("/v1/auth/users", json=body, headers=_bearer(root))
    assert again.status == 400 and "already exists" in (await again.json())["detail"]
    trader = await running.client.post("/v1/auth/users", json={**body, "username": "olaf"},
                                       headers=_bearer(await running.login("alice")))
    assert trader.status == 403


async def test_admin_revokes_one_token_or_every_token_of_a_user_and_sessions_list_only_live_ones(
        running: Running) -> None:
    root = await running.login("root")
    first = await running.login("alice")
    second = await running.login("alice", at=time.time() + 30)
    sessions = await (await running.client.get("/v1/auth/sessions", headers=_bearer(root))).json()
    alice_ids = [s["token_id"] for s in sessions["sessions"] if s["username"] == "alice"]
    assert len(alice_ids) == 2
    first_id = jwt.decode(first, options={"verify_signature": False})["jti"]
    revoked = await running.client.post("/v1/auth/revoke", json={"token_id": first_id}, headers=_bearer(root))
    assert revoked.status == 200
    assert (await running.client.get("/v1/auth/me", headers=_bearer(first))).status == 401
    assert (await running.client.get("/v1/auth/me", headers=_bearer(second))).status == 200
    sessions = await (await running.client.get("/v1/auth/sessions", headers=_bearer(root))).json()
    assert first_id not in [s["token_id"] for s in sessions["sessions"]]
    everyone = await running.client.post("/v1/auth/revoke", json={"username": "alice"}, headers=_bearer(root))
    assert everyone.status == 200
    assert (await running.client.get("/v1/auth/me", headers=_bearer(second))).status == 401
    both = await running.client.post("/v1/auth/revoke", json={"username": "alice", "token_id": first_id},
                                     headers=_bearer(root))
    assert both.status == 400 and "exactly one" in (await both.json())["detail"]


async def test_disabled_user_is_refused_at_login_and_their_tokens_stop_working(running: Running) -> None:
    root = await running.login("root")
    token = await running.login("vic")
    disabled = await running.client.post("/v1/auth/users/vic/disable", headers=_bearer(root))
    assert disabled.status == 200
    assert (await running.client.get("/v1/auth/me", headers=_bearer(token))).status == 401
    login = await running.client.post("/v1/auth/login", json={"username": "vic", "password": PASSWORD,
                                                               "totp": running.gateway.users.totp_now("vic",
                                                                                                      time.time() + 30)})
    assert login.status == 401
    listing = await (await running.client.get("/v1/auth/users", headers=_bearer(root))).json()
    assert {u["username"]: u["disabled"] for u in listing["users"]}["vic"] is True
    missing = await running.client.post("/v1/auth/users/nobody/disable", headers=_bearer(root))
    assert missing.status == 404


async def test_websocket_of_a_user_closes_with_4002_when_the_user_is_disabled(running: Running) -> None:
    root = await running.login("root")
    token = await running.login("vic")
    ws = await running.client.ws_connect("/v1/ws", headers=_bearer(token))
    disabled = await running.client.post("/v1/auth/users/vic/disable", headers=_bearer(root))
    assert disabled.status == 200
    closing = await ws.receive(timeout=10)
    assert (closing.type, closing.data, closing.extra) == (WSMsgType.CLOSE, 4002, "token revoked")
    await ws.close()


def test_rotation_when_a_new_key_signs_then_old_tokens_verify_until_the_old_key_is_retired() -> None:
    old, new, now = b"o" * 40, b"n" * 40, int(time.time())
    before, _, _ = TokenIssuer(old, None).issue(ALICE, now)
    # Step 1: the new key verifies everywhere before it signs anywhere.
    step1 = TokenIssuer(old, None, verify_only=[new])
    after, _, _ = TokenIssuer(new, None, verify_only=[old]).issue(ALICE, now)
    assert step1.verify(after, now).subject == "alice" and step1.verify(before, now).subject == "alice"
    # Step 2: the new key signs; tokens of the old one verify until they expire.
    step2 = TokenIssuer(new, None, verify_only=[old])
    assert jwt.get_unverified_header(after)["kid"] == key_id(new) and step2.key_ids == [key_id(new), key_id(old)]
    assert step2.verify(before, now).subject == "alice"
    # Step 3: the old key is retired; its tokens are refused by name, not mistaken for forgeries of the new one.
    with pytest.raises(TokenError, match="no longer accepts"):
        TokenIssuer(new, None).verify(before, now)
    # A token from before key ids (no kid) was signed by the key that signs today.
    legacy = jwt.encode({"sub": "alice", "jti": "a" * 32, "iat": now, "exp": now + 60, "iss": "shrivenquant"}, new,
                        algorithm="HS256")
    assert TokenIssuer(new, None).verify(legacy, now).token_id == "a" * 32


def test_local_revocations_survive_a_restart_of_a_gateway_without_a_broker(tmp_path: Path) -> None:
    key, now = b"k" * 40, int(time.time())
    issuer = TokenIssuer(key, tmp_path / "revoked.json")
    token, _, claims = issuer.issue(ALICE, now)
    issuer.revoke_locally(Revocation(token_id=claims.token_id), claims.expires_at, now)
    with pytest.raises(TokenError, match="revoked"):
        TokenIssuer(key, tmp_path / "revoked.json").verify(token, now)


def test_sealed_value_opens_only_under_its_own_name_and_master_key() -> None:
    sealer = SealedValues(b"m" * 32, "users-kv")
    blob = sealer.seal("alice", {"totp_seed": "JBSWY3DPEHPK3PXP"})
    assert b"JBSWY3DPEHPK3PXP" not in blob and sealer.open("alice", blob) == {"totp_seed": "JBSWY3DPEHPK3PXP"}
    with pytest.raises(SecretError, match="value of mallory"):
        sealer.open("mallory", blob)
    with pytest.raises(SecretError, match="wrong master key"):
        SealedValues(b"x" * 32, "users-kv").open("alice", blob)


async def test_local_users_move_into_the_bucket_once_and_a_disabled_bucket_user_is_not_brought_back(
        tmp_path: Path, bus: Bus) -> None:
    store = UserStore(tmp_path / "gw" / "secrets")
    store.add("ada", PASSWORD, ["trader"], ["ACC1"])
    gateway = Gateway.open(GatewayConfig(data_dir=tmp_path / "gw"), bus)
    assert await gateway.share() == ["ada"]
    assert gateway.shared_users is not None
    await gateway.shared_users.disable("ada")
    assert await gateway.share() == []
    assert await gateway.shared_users.is_disabled("ada")
    entry = await (await bus.js.key_value(USERS_BUCKET)).get("ada")
    seed = str(store.records()["ada"]["totp_seed"])
    assert entry.value is not None and seed.encode() not in entry.value and b"argon2" not in entry.value
    await gateway.unshare()


def _sq_user(*args: str, data_dir: Path, url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "user", *args, "--data-dir", str(data_dir),
                           "--nats-url", url], input=stdin, capture_output=True, text=True, cwd=REPO_ROOT,
                          check=False)


async def test_sq_user_commands_work_on_the_bucket_of_the_broker(tmp_path: Path, broker: Broker, bus: Bus) -> None:
    UserStore(tmp_path / "secrets")     # makes the master key the commands must share
    added = _sq_user("add", "zoe", "--role", "risk", "--password-stdin", data_dir=tmp_path, url=broker.url,
                     stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    seed = parse_qs(urlparse(added.stdout.strip().splitlines()[-1]).query)["secret"][0]
    code = _sq_user("code", "zoe", data_dir=tmp_path, url=broker.url)
    assert code.returncode == 0 and code.stdout.strip() in {pyotp.TOTP(seed).at(time.time() + d) for d in (-30, 0, 30)}
    reset = _sq_user("reset-totp", "zoe", data_dir=tmp_path, url=broker.url)
    assert reset.returncode == 0 and seed not in reset.stdout and "otpauth://" in reset.stdout
    disabled = _sq_user("disable", "zoe", data_dir=tmp_path, url=broker.url)
    assert disabled.returncode == 0, disabled.stderr
    listing = _sq_user("list", data_dir=tmp_path, url=broker.url)
    assert listing.stdout.strip() == "zoe\troles=risk\taccounts=-\tdisabled"
    assert not (tmp_path / "secrets" / "users.sealed").exists()
    from store.secrets import load_master_key

    users = await SharedUsers.open(bus, load_master_key(tmp_path / "secrets"))
    assert await users.names() == ["zoe"] and await users.is_disabled("zoe")
    sessions = await (await bus.js.key_value("sq-sessions")).get("revoked.user.zoe")
    assert sessions.value is not None and b"before" in sessions.value
    unknown = _sq_user("disable", "nobody", data_dir=tmp_path, url=broker.url)
    assert unknown.returncode == 2 and "no user 'nobody'" in unknown.stderr


def test_local_store_disables_and_resets_totp_without_a_broker(tmp_path: Path) -> None:
    store = UserStore(tmp_path)
    store.add("lee", PASSWORD, ["viewer"], [])
    old_seed = store.records()["lee"]["totp_seed"]
    enrolment = store.reset_totp("lee")
    assert "otpauth://" in enrolment.provisioning_uri and isinstance(
        store.authenticate("lee", PASSWORD, store.totp_now("lee"), time.time()), User)
    assert store.records()["lee"]["totp_seed"] != old_seed
    store.disable("lee")
    assert store.authenticate("lee", PASSWORD, store.totp_now("lee", time.time() + 30),
                              time.time()) == "user_disabled"


@pytest.mark.parametrize("per_key_ttl", [True, False], ids=["per-key-ttl", "bucket-made-by-nats-2.10"])
async def test_two_session_stores_share_revocations_totp_steps_and_throttles(bus: Bus, per_key_ttl: bool) -> None:
    if not per_key_ttl:
        # The bucket as nats-server 2.10 makes it: no allow_msg_ttl, so values expire by max age only.
        await bus.js.add_stream(StreamConfig(name="KV_sq-sessions", subjects=["$KV.sq-sessions.>"],
                                             max_msgs_per_subject=1, allow_rollup_hdrs=True, deny_delete=True,
                                             max_age=12 * 3600 + 60, storage=StorageType.FILE))
    key, now = b"k" * 40, int(time.time())
    issuer_a, issuer_b = TokenIssuer(key, None), TokenIssuer(key, None)
    a = await SharedSessions.open(bus, issuer_a, token_ttl_s=issuer_a.ttl_s)
    b = await SharedSessions.open(bus, issuer_b, token_ttl_s=issuer_b.ttl_s)
    token, _, claims = issuer_a.issue(ALICE, now)
    await a.revoke(Revocation(token_id=claims.token_id, user="alice"), claims.expires_at)
    assert a.per_key_ttl is per_key_ttl
    await eventually(lambda: issuer_b.is_revoked(claims), message="B hearing of A's revocation")
    late = TokenIssuer(key, None)
    c = await SharedSessions.open(bus, late, token_ttl_s=late.ttl_s)     # a gateway started afterwards
    with pytest.raises(TokenError, match="revoked"):
        late.verify(token, now)
    assert await a.use_totp_step("alice", 100) and not await b.use_totp_step("alice", 100)
    assert not await c.use_totp_step("alice", 99) and await c.use_totp_step("alice", 101)
    throttle = throttle_key("ip", "127.0.0.1")
    waits = [await (a, b)[i % 2].record_failure(throttle, 1 / 30, 5, now) for i in range(6)]
    assert waits[:5] == [0.0] * 5 and waits[5] > 0 and await c.failure_wait(throttle, 1 / 30, 5, now) > 0
    assert await c.failure_wait(throttle, 1 / 30, 5, now + 30) == 0.0          # refilled one in 30 s
    for sessions in (a, b, c):
        await sessions.close()
