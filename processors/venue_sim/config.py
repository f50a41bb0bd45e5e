"""Simulated venues: the shared venue list plus the matching rules (lot and tick sizes, queue model)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from processors.router.config import (
    InvalidConfig,
    VenueSpec,
    convert_checked,
    positive_map,
    read_tables,
    venue_problems,
)


class SimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the simulated venues match child orders against the market they mirror."""

    venues: list[VenueSpec]
    # Quantity and limit-price steps per symbol; an order off its step is rejected.
    lot_sizes: dict[str, Decimal] = {}
    tick_sizes: dict[str, Decimal] = {}
    # A resting limit fills on a trade at its price ("touch") or only on one through it ("through").
    queue_model: Literal["touch", "through"] = "touch"
    fee_places: int = 8
    # Fee currency per symbol (the quote currency, e.g. NKNUSDT -> USDT); None when not configured.
    fee_currencies: dict[str, str] = {}
    # Decimals of the reconstructed L2 book (processors.aggregator.book works in scaled integers).
    price_scale: int = 8
    size_scale: int = 8

    def validate(self) -> list[str]:
        """Every problem at once, each as `path: what is wrong`; empty when the config is good."""
        out = venue_problems(self.venues)
        out += positive_map("lot_sizes", self.lot_sizes)
        out += positive_map("tick_sizes", self.tick_sizes)
        for name in ("fee_places", "price_scale", "size_scale"):
            value = getattr(self, name)
            if not 0 <= value <= 12:
                out.append(f"{name}: {value} is outside 0..12")
        return out

    def venue(self, name: str) -> VenueSpec | None:
        """The simulated venue called `name`, if this config runs it."""
        return next((v for v in self.venues if v.name == name), None)


def parse_sim_config(data: bytes, *, format: Literal["toml", "json"] = "toml") -> SimConfig:
    """The simulated venues' view of an execution config file."""
    config: SimConfig = convert_checked(read_tables(data, format=format), SimConfig, "sim")
    return config


def load_sim_config(path: str | Path) -> SimConfig:
    """Read the simulated venues' config (.toml or .json) once, at start-up."""
    path = Path(path)
    return parse_sim_config(path.read_bytes(), format="json" if path.suffix == ".json" else "toml")


__all__ = ["InvalidConfig", "SimConfig", "load_sim_config", "parse_sim_config"]
