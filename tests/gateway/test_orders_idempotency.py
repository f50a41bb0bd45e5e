"""client_order_id is optional over HTTP: the gateway makes one, and an Idempotency-Key makes a retry one order."""

from __future__ import annotations

from decimal import Decimal

from events import Bus, OrderIntent, decode
from events.ids import intent_id_for
from events.trading import TwapAlgo
from tests.gateway.conftest import Running

ORDER = {"account": "ACC1", "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.5", "limit_price": "100.5"}



async def _intents(bus: Bus) -> int:
    return (await bus.js.stream_info("SQ_TRADING")).state.messages


async def test_order_without_client_order_id_when_posted_twice_without_a_key_then_two_orders_each_with_one(
        running: Running, bus: Bus) -> None:
    token = await running.login("alice")
    answers = []
    for _ in range(2):
        response = await running.client.post("/v1/orders", json=ORDER, headers={"Authorization": f"Bearer {token}"})
        answers.append((response.status, await response.json()))
    (first_status, first), (second_status, second) = answers
    assert first_status == second_status == 202
    assert first["client_order_id"].startswith("gw-") and second["client_order_id"].startswith("gw-")
    assert first["client_order_id"] != second["client_order_id"]
    assert first["order_id"] == intent_id_for("ACC1", first["client_order_id"])
    assert first["duplicate"] is False and second["duplicate"] is False
    assert await _intents(bus) == 2


async def test_order_with_an_idempotency_key_when_retried_with_the_same_body_then_it_is_one_order(
        running: Running, bus: Bus) -> None:
    token = await running.login("alice")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "retry-me-7"}
    answers = []
    for _ in range(2):
        response = await running.client.post("/v1/orders", json=ORDER, headers=headers)
        answers.append((response.status, await response.json()))
    (first_status, first), (second_status, second) = answers
    assert first_status == second_status == 202
    assert first["client_order_id"].startswith("idem-")
    assert (second["order_id"], second["client_order_id"]) == (first["order_id"], first["client_order_id"])
    assert first["duplicate"] is False and second["duplicate"] is True
    assert second["stream_seq"] == first["stream_seq"]
    assert await _intents(bus) == 1

    # Another key is another order; the same key with another order is refused, naming what differs.
    other = await running.client.post("/v1/orders", json=ORDER,
                                      headers={**headers, "Idempotency-Key": "retry-me-8"})
    assert other.status == 202 and (await other.json())["order_id"] != first["order_id"]
    changed = await running.client.post("/v1/orders", json={**ORDER, "quantity": "0.7"}, headers=headers)
    body = await changed.json()
    assert changed.status == 422 and body["error"] == "idempotency_key_reused"
    assert "quantity" in body["detail"] and "retry-me-7" in body["detail"]
    assert await _intents(bus) == 2


async def test_order_with_its_own_client_order_id_then_it_is_kept_and_the_key_is_not_used(running: Running) -> None:
    token = await running.login("alice")
    response = await running.client.post("/v1/orders", json={**ORDER, "client_order_id": "mine-1"},
                                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k"})
    answer = await response.json()
    assert response.status == 202 and answer["client_order_id"] == "mine-1"
    assert answer["order_id"] == intent_id_for("ACC1", "mine-1")


async def test_order_when_the_idempotency_key_is_too_long_or_the_body_is_wrong_then_400_naming_it(
        running: Running) -> None:
    token = await running.login("alice")
    auth = {"Authorization": f"Bearer {token}"}
    long_key = await running.client.post("/v1/orders", json=ORDER, headers={**auth, "Idempotency-Key": "k" * 256})
    assert long_key.status == 400 and "Idempotency-Key" in (await long_key.json())["detail"]
    bad_side = await running.client.post("/v1/orders", json={**ORDER, "side": "HOLD"}, headers=auth)
    assert bad_side.status == 400 and "$.side" in (await bad_side.json())["detail"]
    not_json = await running.client.post("/v1/orders", data=b"{not json", headers=auth)
    assert not_json.status == 400
    not_object = await running.client.post("/v1/orders", json=[1, 2], headers=auth)
    assert not_object.status == 400


async def test_order_without_client_order_id_when_numbers_are_json_numbers_then_they_keep_their_exact_digits(
        running: Running, bus: Bus) -> None:
    token = await running.login("alice")
    body = ('{"account": "ACC1", "symbol": "BTCUSDT", "side": "BUY", "quantity": 9876543.000000000001,'
            ' "limit_price": 12345678.123456789012, "algo": {"kind": "TWAP", "duration_s": 60.5, "slices": 3}}')
    response = await running.client.post("/v1/orders", data=body.encode(),
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
    answer = await response.json()
    assert response.status == 202, answer
    stored = decode((await bus.js.get_msg(answer["stream"], answer["stream_seq"])).data or b"")
    assert isinstance(stored, OrderIntent) and stored.client_order_id == answer["client_order_id"]
    assert stored.quantity == Decimal("9876543.000000000001")
    assert stored.limit_price == Decimal("12345678.123456789012")
    assert isinstance(stored.algo, TwapAlgo) and stored.algo.duration_s == 60.5
