"""Execution config: one file for the router and the simulated venues; every bad field reported at once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors.router.config import InvalidConfig, RouterConfig, VenueSpec, parse_router_config
from processors.venue_sim.config import parse_sim_config

GOOD = b"""
[[venues]]
name = "sim_a"
market_venue = "binance"
maker_fee_bps = 1.0
taker_fee_bps = "7.5"
latency_ns = 2_000_000

[[venues]]
name = "sim_b"
market_venue = "binance"
taker_fee_bps = 2
latency_ns = 20_000_000

[router]
lot_sizes = { NKNUSDT = "1" }
slice_time_in_force = "IOC"

[sim]
queue_model = "through"
fee_currencies = { NKNUSDT = "USDT" }
"""


def test_config_file_when_good_then_router_and_sim_share_its_venue_list() -> None:
    router, sim = parse_router_config(GOOD), parse_sim_config(GOOD)
    assert router.venues == sim.venues and [v.name for v in router.venues] == ["sim_a", "sim_b"]
    assert router.venues[0].taker_fee_bps == Decimal("7.5") and router.venues[0].maker_fee_bps == Decimal("1.0")
    assert router.lot_size("NKNUSDT") == Decimal(1) and sim.queue_model == "through"


def test_config_when_several_fields_are_bad_then_every_one_is_named() -> None:
    config = RouterConfig(
        venues=[VenueSpec(name="bad name", taker_fee_bps=Decimal(5000), latency_ns=-1), VenueSpec(name="x"),
                VenueSpec(name="x")],
        lot_sizes={"XYZ": Decimal(0)}, vwap_bar_interval="7m", vwap_lookback_days=0)
    problems = config.validate()
    for expected in ("venues[0].name", "venues[0].taker_fee_bps: 5000", "venues[0].latency_ns: -1",
                     "venues: name 'x' appears 2 times", "lot_sizes.XYZ: 0", "vwap_bar_interval: 7m",
                     "vwap_lookback_days: 0"):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_config_file_when_a_field_is_unknown_or_mistyped_then_refused_naming_it() -> None:
    with pytest.raises(InvalidConfig, match=r"slices_tif"):
        parse_router_config(GOOD.replace(b'slice_time_in_force = "IOC"', b'slices_tif = "IOC"'))
    with pytest.raises(InvalidConfig, match=r"queue_model"):
        parse_sim_config(GOOD.replace(b'"through"', b'"fifo"'))
    with pytest.raises(InvalidConfig, match=r"unknown table\(s\) routr"):
        parse_router_config(b"[routr]\n")
