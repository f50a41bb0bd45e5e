"""Orders over HTTP: validation naming the field, publication onto the bus, idempotent retries, JSON errors."""

from __future__ import annotations

from events import Bus, CancelIntent, OrderIntent, decode, intent_id_for
from tests.gateway.conftest import Running

INTENT = {"account": "ACC1", "client_order_id": "http-1", "symbol": "BTCUSDT", "side": "BUY",
          "quantity": "0.250", "limit_price": "43210.50", "algo": {"kind": "TWAP", "duration_s": 60, "slices": 6}}


async def _stored(bus: Bus, stream: str) -> list[object]:
    info = await bus.js.stream_info(stream)
    return [decode((await bus.js.get_msg(stream, seq)).data or b"")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)]


async def test_order_is_published_with_derived_id_and_a_retry_is_the_same_order(running: Running, bus: Bus) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    first = await running.client.post("/v1/orders", json=INTENT, headers=headers)
    body = await first.json()
    assert first.status == 202, body
    assert body["order_id"] == intent_id_for("ACC1", "http-1") and body["duplicate"] is False
    retry = await running.client.post("/v1/orders", json=INTENT, headers=headers)
    assert (await retry.json())["duplicate"] is True
    intents = [e for e in await _stored(bus, "SQ_TRADING") if isinstance(e, OrderIntent)]
    assert len(intents) == 1
    assert intents[0].id == body["order_id"] and intents[0].ts > 0 and str(intents[0].quantity) == "0.250"


async def test_invalid_order_is_400_naming_the_field_and_nothing_is_published(running: Running, bus: Bus) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    cases = {"$.symbol": {**INTENT, "symbol": "BTC USDT"}, "quantity": {**INTENT, "quantity": "-1"},
             "$.algo.kind": {**INTENT, "algo": {"kind": "SNIPER"}}, "colour": {**INTENT, "colour": "red"}}
    for field, body in cases.items():
        response = await running.client.post("/v1/orders", json=body, headers=headers)
        error = await response.json()
        assert response.status == 400 and field in error["detail"], (field, error)
        assert error["error"] == "invalid_request"
    bad_json = await running.client.post("/v1/orders", data=b"{not json", headers=headers)
    assert bad_json.status == 400
    assert (await bus.js.stream_info("SQ_TRADING")).state.messages == 0


async def test_cancel_publishes_a_cancel_intent_for_the_callers_account(running: Running, bus: Bus) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    response = await running.client.delete("/v1/orders/some-order-id", headers=headers)
    assert response.status == 202
    cancels = [e for e in await _stored(bus, "SQ_TRADING") if isinstance(e, CancelIntent)]
    assert len(cancels) == 1 and cancels[0].order_id == "some-order-id" and cancels[0].account == "ACC1"


async def test_oversized_body_and_unknown_route_answer_json_errors(running: Running) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    huge = await running.client.post("/v1/orders", data=b"x" * 200_000, headers=headers)
    assert huge.status == 413 and "error" in await huge.json()
    missing = await running.client.get("/v1/nothing-here")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    wrong_method = await running.client.put("/v1/orders")
    assert wrong_method.status == 405 and "error" in await wrong_method.json()


async def test_health_metrics_openapi_and_schemas_are_served(running: Running) -> None:
    assert (await running.client.get("/healthz")).status == 200
    ready = await running.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"]["bus"] is True
    metrics = await (await running.client.get("/metrics")).text()
    assert "sq_gateway_requests_total" in metrics
    document = await (await running.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1") and "/v1/orders" in document["paths"]
    schema = await (await running.client.get("/v1/schemas/OrderIntent")).json()
    assert "client_order_id" in schema["required"]
    assert (await running.client.get("/v1/schemas/Nope")).status == 404
