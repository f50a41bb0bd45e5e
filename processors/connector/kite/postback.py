"""The Kite postback endpoint: order updates Kite POSTs to our URL, checked by checksum, to ExecutionReports.

Kite Connect v3 sends each order update as a JSON body with a `checksum` field: hex SHA-256 of
`order_id + order_timestamp + api_secret`. A body whose checksum does not match is refused with
401 and an AuditEvent on `sq.audit.kite_postback` (the order id and the caller's address, never the
checksum or the secret); a valid one goes through `KiteOrders.on_order_update`, the same fold as
the ticker's order messages, so an update arriving both ways is reported once. Kite needs a
public HTTPS URL: serve this behind a TLS reverse proxy and register `<url>/kite/postback`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

from aiohttp import web

from events.audit import AuditEvent
from events.bus import Bus
from events.ids import derived_id
from processors.connector.kite.orders import KiteOrders, postback_valid
from processors.connector.sink import FeedSink

log = logging.getLogger(__name__)
PATH = "/kite/postback"
MAX_BODY = 64 * 1024


def postback_app(orders: KiteOrders, sink: FeedSink, bus: Bus, api_secret: str) -> web.Application:
    """An aiohttp app serving POST /kite/postback."""

    async def postback(request: web.Request) -> web.Response:
        raw = await request.read()
        recv_ts = time.time_ns()
        try:
            update = json.loads(raw)
            if not isinstance(update, dict):
                raise ValueError(f"body is a {type(update).__name__}, not an object")
        except ValueError as exc:
            await sink.reject("kite.postback", f"postback is not a JSON object: {exc}", raw, ts=recv_ts)
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        order_id = str(update.get("order_id", ""))[:64]
        if not postback_valid(update, api_secret):
            digest = hashlib.sha256(raw).hexdigest()[:32]
            await bus.publish(AuditEvent(id=derived_id(f"kite-postback:{digest}", "audit"), ts=recv_ts,
                                         kind="kite_postback", actor="kite", action="postback", outcome="denied",
                                         detail=f"checksum does not match for order {order_id!r}",
                                         remote=request.remote))
            log.warning("kite postback refused: checksum does not match", extra={"order_id": order_id,
                                                                                   "remote": request.remote})
            return web.json_response({"error": "checksum does not match"}, status=401)
        result = orders.on_order_update(update, recv_ts=recv_ts)
        if result is not None:
            await sink.emit([result])
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(PATH, postback)
    return app


__all__ = ["PATH", "postback_app"]
