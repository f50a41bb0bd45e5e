#!/usr/bin/env bash
# The same order intent over HTTP: log in (password + TOTP) for a JWT, then POST /v1/orders.
#
#   SQ_USER=demo SQ_PASSWORD='…' examples/intent_curl.sh
#
# SQ_URL (default http://127.0.0.1:8080); SQ_TOTP is the authenticator's current code, or, when
# unset, `sq user code "$SQ_USER" --data-dir "${SQ_DATA_DIR:-var}"` prints it (the demo set-up).
# The answer is 202 {order_id, stream, stream_seq, duplicate, durable} once the intent is in the
# WAL. The gateway assigns the `id`; POSTing the same client_order_id again is one order.
# Needs curl and jq.
set -euo pipefail

URL="${SQ_URL:-http://127.0.0.1:8080}"
USER_NAME="${SQ_USER:?set SQ_USER}"
PASSWORD="${SQ_PASSWORD:?set SQ_PASSWORD}"
TOTP="${SQ_TOTP:-$(sq user code "$USER_NAME" --data-dir "${SQ_DATA_DIR:-var}")}"
CLIENT_ORDER_ID="${SQ_CLIENT_ORDER_ID:-curl-0001}"

TOKEN=$(jq -n --arg u "$USER_NAME" --arg p "$PASSWORD" --arg t "$TOTP" \
          '{username: $u, password: $p, totp: $t}' |
        curl -sS --fail-with-body -H 'Content-Type: application/json' --data-binary @- "$URL/v1/auth/login" |
        jq -r .access_token)

jq -n --arg coid "$CLIENT_ORDER_ID" '{
  account: "ACC1",
  client_order_id: $coid,
  symbol: "BTCUSDT",
  venue: null,
  side: "BUY",
  quantity: "0.250",
  limit_price: "43210.50",
  time_in_force: "GTC",
  algo: {kind: "TWAP", duration_s: 60, slices: 6}
}' | curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
       --data-binary @- "$URL/v1/orders"
echo
