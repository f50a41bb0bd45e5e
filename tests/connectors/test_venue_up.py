"""`sq up --venue`: refuses to start without the venue's credentials, naming them; plans the live runner."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from events.broker import free_port
from processors.connector.credentials import CredentialStore
from processors.connector.venue_up import VenueUpError, missing_credentials, plan, runner_args

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQ_MASTER_KEY", raising=False)


async def test_sq_up_with_a_venue_but_no_credentials_stops_with_the_missing_fields(tmp_path: Path) -> None:
    CredentialStore(tmp_path).set("binance", "api_key", "k-only")
    env = {k: v for k, v in os.environ.items() if k != "SQ_MASTER_KEY"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "up", "--venue", "binance", "--data-dir", str(tmp_path),
        "--http-port", str(free_port()), cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    text = err.decode()
    assert "--venue binance needs credentials" in text and "missing api_secret;" in text
    assert "sq creds set binance --field NAME" in text and "k-only" not in text + out.decode()
    assert not (tmp_path / "nats").exists()                         # nothing was started


def test_missing_credentials_names_every_kite_field_and_none_when_complete(tmp_path: Path) -> None:
    problem = missing_credentials("kite", tmp_path)
    assert problem is not None and "missing user_id, password, totp_seed, api_key, api_secret" in problem
    store = CredentialStore(tmp_path)
    for name in ("user_id", "password", "totp_seed", "api_key", "api_secret"):
        store.set("kite", name, f"value-of-{name}")
    assert missing_credentials("kite", tmp_path) is None
    execution, args = plan("kite", tmp_path, "NSE:INFY,NSE:RELIANCE", ["api-url=http://127.0.0.1:9"])
    assert args == ["--trade", "--instruments", "NSE:INFY,NSE:RELIANCE", "--port", "0", "--api-url",
                    "http://127.0.0.1:9"]
    assert execution == tmp_path / "config" / "execution-kite.toml" and 'name = "kite"' in execution.read_text()


def test_venue_options_are_name_value_and_cannot_override_what_up_sets() -> None:
    assert runner_args("binance", None, ["rest-url=https://testnet.binance.vision"]) == [
        "--trade", "--symbols", "BTCUSDT", "--port", "0", "--rest-url", "https://testnet.binance.vision"]
    with pytest.raises(VenueUpError, match="'rest-url' is not NAME=VALUE"):
        runner_args("binance", None, ["rest-url"])
    with pytest.raises(VenueUpError, match="'nats-url' is set by sq up itself"):
        runner_args("binance", None, ["nats-url=nats://x:1"])
