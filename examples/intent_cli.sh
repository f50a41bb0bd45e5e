#!/usr/bin/env bash
# One order intent from the `nats` CLI (https://github.com/nats-io/natscli), no ShrivenQuant code.
#
#   NATS_URL=nats://127.0.0.1:4222 examples/intent_cli.sh
#
# `--jetstream` waits for the stream's acknowledgement (it prints the stream and sequence);
# the Nats-Msg-Id header makes JetStream drop a retried publish. The intent carries no `id`:
# ShrivenQuant derives it from account + client_order_id, so the same pair is one order.
# The contract is in README.md, "Order intent"; `sq schema` writes OrderIntent.schema.json.
set -euo pipefail

SUBJECT="sq.ord.intent.ACC1"
MSG_ID="ACC1:cli-0001"
INTENT='{
  "account": "ACC1",
  "client_order_id": "cli-0001",
  "symbol": "BTCUSDT",
  "venue": null,
  "side": "BUY",
  "quantity": "0.250",
  "limit_price": "43210.50",
  "time_in_force": "GTC",
  "algo": {"kind": "TWAP", "duration_s": 60, "slices": 6}
}'

nats pub --server "${NATS_URL:-nats://127.0.0.1:4222}" --jetstream \
  --header "Nats-Msg-Id:${MSG_ID}" "$SUBJECT" "$INTENT"
