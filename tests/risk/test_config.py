"""The limits file: layering, switching checks off, validation of every bad field at once, JSON and TOML."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from processors.risk import InvalidLimits, effective, load_limits, parse_limits

LAYERED = b"""{
  "defaults": {"max_order_notional": "1000", "max_order_quantity": "1", "order_window_s": "0.5"},
  "accounts": {"ACC1": {"max_order_notional": "2000", "capital": "50000"}},
  "symbols": {"BTCUSDT": {"max_order_notional": "3000", "breaker_move_bps": 250}},
  "account_symbols": {"ACC1": {"BTCUSDT": {"max_order_notional": null}}}
}"""


def test_limits_when_layers_overlap_then_most_specific_wins() -> None:
    file = parse_limits(LAYERED)
    assert effective(file, "ACC2", "ETHUSDT").max_order_notional == Decimal("1000")
    assert effective(file, "ACC1", "ETHUSDT").max_order_notional == Decimal("2000")
    assert effective(file, "ACC2", "BTCUSDT").max_order_notional == Decimal("3000")
    assert effective(file, "ACC1", "BTCUSDT").max_order_notional is None       # null switches it off
    assert effective(file, "ACC1", "BTCUSDT").max_order_quantity == Decimal("1")


def test_limits_when_parsed_then_windows_are_integer_ns_and_bps_are_fractions() -> None:
    limits = effective(parse_limits(LAYERED), "ACC1", "BTCUSDT")
    assert limits.order_window_ns == 500_000_000
    assert limits.breaker_move == Decimal("0.025")
    assert limits.capital == Decimal("50000")
    assert limits.breaker_window_ns == 60_000_000_000       # built-in default


def test_limits_when_many_fields_bad_then_every_problem_reported_at_once() -> None:
    with pytest.raises(InvalidLimits) as caught:
        parse_limits(b"""{"defaults": {"max_order_quantity": "0", "price_collar_bps": 10000, "margin_rate": "2",
                           "max_open_orders": -1, "error_burst_count": 0},
                          "accounts": {"ACC 1": {"breaker_move_bps": 5}},
                          "account_symbols": {"ACC1": {"BTCUSDT": {"max_daily_loss": "1"}}},
                          "dedupe_window_s": 0}""")
    assert caught.value.problems == [
        "defaults.max_order_quantity: 0 must be greater than 0",
        "defaults.price_collar_bps: 10000 bps is a collar of 100% or more",
        "defaults.margin_rate: 2 is above 1 (margin is a fraction of notional)",
        "defaults.max_open_orders: -1 must not be negative",
        "defaults.error_burst_count: 0 must be at least 1",
        "accounts: 'ACC 1' is not an account/symbol token [A-Za-z0-9_-]{1,64}",
        "accounts.ACC 1.breaker_move_bps: breaker_move_bps is per symbol; set it under defaults or symbols",
        "account_symbols.ACC1.BTCUSDT.max_daily_loss: max_daily_loss is account-wide; set it under defaults or "
        "accounts",
        "dedupe_window_s: 0 must be greater than 0",
    ]


def test_limits_when_unknown_field_then_rejected_with_its_path() -> None:
    with pytest.raises(InvalidLimits) as caught:
        parse_limits(b'{"defaults": {"max_notional": "5"}}')
    assert "unknown field `max_notional`" in str(caught.value) and "$.defaults" in str(caught.value)


def test_limits_when_wrong_type_then_rejected_with_its_path() -> None:
    with pytest.raises(InvalidLimits, match=r"\$\.defaults\.max_open_orders"):
        parse_limits(b'{"defaults": {"max_open_orders": "many"}}')


def test_limits_when_toml_file_then_floats_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text('collar_reference = "last_trade"\n[defaults]\nmax_order_quantity = 0.1\n'
                    'max_order_notional = "25000"\n[symbols.BTCUSDT]\nrestricted = true\n')
    file = load_limits(path)
    assert file.collar_reference == "last_trade"
    assert effective(file, "ACC1", "ETHUSDT").max_order_quantity == Decimal("0.1")
    assert effective(file, "ACC1", "BTCUSDT").restricted is True


def test_limits_when_json_file_then_loaded(tmp_path: Path) -> None:
    path = tmp_path / "limits.json"
    path.write_bytes(LAYERED)
    assert load_limits(path).accounts["ACC1"].capital == Decimal("50000")
