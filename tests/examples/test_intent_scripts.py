"""examples/intent_curl.sh against a real gateway, and examples/intent_cli.sh with a recording `nats` stand-in."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal as D
from pathlib import Path

import pytest

from events import OrderIntent, decode_for_subject, intent_id_for
from tests.conftest import eventually
from tests.examples.conftest import EXAMPLES, PASSWORD, Served, Stack, example_env, nats_url, run

# Stands in for the `nats` CLI (not installed here): records its arguments as one JSON line.
RECORDING_NATS = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["NATS_ARGV_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
print('{"stream": "SQ_TRADING", "seq": 1}')
"""


async def _decided(stack: Stack, order_id: str) -> None:
    await eventually(lambda: any(d.order_id == order_id for d in stack.projections.state.decisions),
                     message=f"a RiskDecision for {order_id}")


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq")
async def test_curl_script_logs_in_with_a_totp_code_and_its_order_is_durable_and_decided(served: Served) -> None:
    env = {**example_env(), "SQ_URL": served.base_url, "SQ_USER": "olga", "SQ_PASSWORD": PASSWORD,
           "SQ_DATA_DIR": str(served.stack.data_dir), "SQ_CLIENT_ORDER_ID": "curl-test-1"}
    env.pop("SQ_TOTP", None)  # the script asks `sq user code` for it
    answer = json.loads(await run("bash", EXAMPLES / "intent_curl.sh", env=env))
    assert answer["durable"] is True and answer["duplicate"] is False and answer["stream"] == "SQ_TRADING"
    await _decided(served.stack, answer["order_id"])
    order = served.stack.projections.state.orders[answer["order_id"]]
    assert (order.client_order_id, order.symbol, order.quantity) == ("curl-test-1", "BTCUSDT", D("0.250"))


async def test_nats_cli_script_publishes_a_valid_intent_with_its_msg_id(stack: Stack, tmp_path: Path) -> None:
    """The `nats` CLI is not installed here, so the script is checked in three steps.

    `bash -n` parses it; it then runs with a stand-in `nats` first on PATH that records its
    arguments; the recorded payload must decode as a valid OrderIntent for its subject with
    `events.codec.decode_for_subject` (the strict intake decoder). Finally the recorded subject,
    header and payload are published as they are to the running order path, which must decide it.
    """
    script = EXAMPLES / "intent_cli.sh"
    await run("bash", "-n", script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nats").write_text(RECORDING_NATS)
    (bin_dir / "nats").chmod(0o755)
    env = example_env()
    env.update(PATH=f"{bin_dir}:{env['PATH']}", NATS_ARGV_LOG=str(tmp_path / "argv.jsonl"),
               NATS_URL=nats_url(stack))
    await run("bash", script, env=env)
    argv = json.loads((tmp_path / "argv.jsonl").read_text())
    assert argv[0] == "pub" and "--jetstream" in argv
    assert argv[argv.index("--server") + 1] == env["NATS_URL"]
    header = argv[argv.index("--header") + 1]
    subject, payload = argv[-2], argv[-1].encode()

    intent = decode_for_subject(subject, payload)
    assert isinstance(intent, OrderIntent)
    assert header == f"Nats-Msg-Id:{intent.account}:{intent.client_order_id}"
    assert intent.algo is not None and intent.algo_kind == "TWAP" and intent.limit_price == D("43210.50")

    name, value = header.split(":", 1)
    for _ in range(2):  # a retried publish with the same Nats-Msg-Id is dropped by JetStream
        ack = await stack.bus.js.publish(subject, payload, headers={name: value})
    assert ack.duplicate
    order_id = intent_id_for(intent.account, intent.client_order_id)
    await _decided(stack, order_id)
    assert [d.order_id for d in stack.projections.state.decisions].count(order_id) == 1
