"""Query parameters that once answered 500 or published an unreadable event now answer 400 naming the parameter."""

from __future__ import annotations

from events import Bus
from tests.gateway.conftest import Running


async def test_non_ascii_digits_in_limit_and_as_of_are_400(running: Running) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    for path, name in (("/v1/orders?limit=²", "limit"), ("/v1/pnl?as_of=²", "as_of"),
                       ("/v1/positions?as_of=99999999999999999999999", "as_of")):
        response = await running.client.get(path, headers=headers)
        body = await response.json()
        assert response.status == 400 and name in body["detail"], (path, body)


async def test_cancel_of_an_over_long_order_id_is_400_and_publishes_nothing(running: Running, bus: Bus) -> None:
    headers = {"Authorization": f"Bearer {await running.login('alice')}"}
    response = await running.client.delete("/v1/orders/" + "x" * 65, headers=headers)
    assert response.status == 400 and "order_id" in (await response.json())["detail"]
    assert (await bus.js.stream_info("SQ_TRADING")).state.messages == 0
