"""Execution settings: the venues (fees, latency, market-data source) and the router's slicing rules.

One file serves the router and the simulated venue, so the venue list is written once:

```toml
[[venues]]
name = "sim_a"
market_venue = "binance"     # whose book and trades this venue sees (default: its own name)
maker_fee_bps = "1.0"
taker_fee_bps = "7.5"
latency_ns = 2_000_000

[router]
lot_sizes = { NKNUSDT = "1" }

[sim]
queue_model = "touch"
```

Each table is a frozen Struct that refuses unknown fields; `validate()` returns every problem at once.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec

from events._base import TOKEN_PATTERN

_TOKEN = re.compile(TOKEN_PATTERN)
_INTERVAL = re.compile(r"^([1-9][0-9]{0,5})(ms|s|m|h|d)$")
DAY_NS = 86_400_000_000_000
_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000}


class InvalidConfig(ValueError):
    """A config file is wrong; `problems` lists every bad field as `path: what is wrong`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid config: " + "; ".join(problems))
        self.problems = problems


class VenueSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A venue children can be sent to: its fees, its latency and the market data that prices it."""

    name: str
    maker_fee_bps: Decimal = Decimal(0)
    taker_fee_bps: Decimal = Decimal(0)
    latency_ns: int = 0
    market_venue: str | None = None
    # Symbols the venue lists; empty means every symbol it has market data for.
    symbols: list[str] = []

    @property
    def source(self) -> str:
        """The market-data venue whose book and trades this venue sees."""
        return self.market_venue or self.name

    def problems(self, path: str) -> list[str]:
        """Every bad field of this venue, as `path.field: what is wrong`."""
        out: list[str] = []
        if not _TOKEN.match(self.name):
            out.append(f"{path}.name: {self.name!r} is not a subject token [A-Za-z0-9_-]{{1,64}}")
        if self.market_venue is not None and not _TOKEN.match(self.market_venue):
            out.append(f"{path}.market_venue: {self.market_venue!r} is not a subject token")
        for name in ("maker_fee_bps", "taker_fee_bps"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or not Decimal(-100) <= value <= Decimal(1000):
                out.append(f"{path}.{name}: {value} is outside -100..1000 bps")
        if self.latency_ns < 0:
            out.append(f"{path}.latency_ns: {self.latency_ns} must not be negative")
        out += [f"{path}.symbols: {s!r} is not a subject token" for s in self.symbols if not _TOKEN.match(s)]
        return out


def positive_map(path: str, values: dict[str, Decimal]) -> list[str]:
    out = []
    for key, value in values.items():
        if not _TOKEN.match(key):
            out.append(f"{path}: key {key!r} is not a subject token")
        if not value.is_finite() or value <= 0:
            out.append(f"{path}.{key}: {value} must be greater than 0")
    return out


def interval_ns(interval: str) -> int:
    """Nanoseconds in a bar interval such as `1m` or `5s`; ValueError names a malformed one."""
    match = _INTERVAL.match(interval)
    if match is None:
        raise ValueError(f"interval {interval!r} is not <n><ms|s|m|h|d>")
    return int(match.group(1)) * _UNIT_NS[match.group(2)]


def venue_problems(venues: list[VenueSpec]) -> list[str]:
    """Problems of a venue list: each venue's fields, an empty list and duplicate names."""
    out = [p for i, v in enumerate(venues) for p in v.problems(f"venues[{i}]")]
    if not venues:
        out.append("venues: at least one venue is required")
    names = [v.name for v in venues]
    out += [f"venues: name {n!r} appears {names.count(n)} times" for n in sorted(set(names)) if names.count(n) > 1]
    return out


class RouterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the router slices and places parent orders."""

    venues: list[VenueSpec]
    # Quantity step per symbol; without one a parent is sliced in steps of its own last decimal.
    lot_sizes: dict[str, Decimal] = {}
    default_lot_size: Decimal | None = None
    # Venue selection: each ms of latency costs this many bps of the price (adverse move while in flight).
    latency_penalty_bps_per_ms: Decimal = Decimal("0.1")
    # Time in force of TWAP/VWAP/POV slices: IOC sends marketable slices whose unfilled rest is
    # carried into the next slice; GTC leaves each slice resting at the parent's limit.
    slice_time_in_force: Literal["IOC", "GTC"] = "IOC"
    # VWAP volume curve: bars of this interval build per-bucket-of-day volume, over this many days.
    vwap_bar_interval: str = "1m"
    vwap_lookback_days: int = 20
    # VWAP slices when the algo does not say: one per curve bucket in the duration, at most this many.
    vwap_max_slices: int = 390
    # Trades and fills are priced to this many decimals in TCA; bps to this many.
    price_places: int = 10
    bps_places: int = 4

    def validate(self) -> list[str]:
        """Every problem at once, each as `path: what is wrong`; empty when the config is good."""
        out = venue_problems(self.venues)
        out += positive_map("lot_sizes", self.lot_sizes)
        if self.default_lot_size is not None and (not self.default_lot_size.is_finite() or self.default_lot_size <= 0):
            out.append(f"default_lot_size: {self.default_lot_size} must be greater than 0")
        if not self.latency_penalty_bps_per_ms.is_finite() or self.latency_penalty_bps_per_ms < 0:
            out.append(f"latency_penalty_bps_per_ms: {self.latency_penalty_bps_per_ms} must not be negative")
        try:
            if interval_ns(self.vwap_bar_interval) > _UNIT_NS["d"]:
                out.append(f"vwap_bar_interval: {self.vwap_bar_interval} is longer than a day")
        except ValueError as exc:
            out.append(f"vwap_bar_interval: {exc}")
        if not 1 <= self.vwap_lookback_days <= 3650:
            out.append(f"vwap_lookback_days: {self.vwap_lookback_days} is outside 1..3650")
        if not 1 <= self.vwap_max_slices <= 10_000:
            out.append(f"vwap_max_slices: {self.vwap_max_slices} is outside 1..10000")
        if not 0 <= self.price_places <= 12:
            out.append(f"price_places: {self.price_places} is outside 0..12")
        try:
            if DAY_NS % interval_ns(self.vwap_bar_interval):
                out.append(f"vwap_bar_interval: {self.vwap_bar_interval} does not divide a day into whole buckets")
        except ValueError:
            pass
        if not 0 <= self.bps_places <= 8:
            out.append(f"bps_places: {self.bps_places} is outside 0..8")
        return out

    def venue(self, name: str) -> VenueSpec | None:
        """The venue called `name`, if configured."""
        return next((v for v in self.venues if v.name == name), None)

    def lot_size(self, symbol: str) -> Decimal | None:
        """The quantity step for `symbol`, if one is configured."""
        return self.lot_sizes.get(symbol, self.default_lot_size)


def read_tables(data: bytes, *, format: Literal["toml", "json"]) -> dict[str, Any]:
    """The raw tables of an execution config file (money read as Decimal)."""
    try:
        if format == "toml":
            raw: Any = tomllib.loads(data.decode("utf-8"), parse_float=Decimal)
        else:
            raw = msgspec.json.decode(data)
    except (msgspec.DecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidConfig([f"file: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise InvalidConfig(["file: the top level must be a table"])
    unknown = sorted(set(raw) - {"venues", "router", "sim"})
    if unknown:
        raise InvalidConfig([f"file: unknown table(s) {', '.join(unknown)} (expected venues, router, sim)"])
    return raw


def convert_checked(raw: dict[str, Any], kind: type[msgspec.Struct], section: str) -> Any:
    """Convert the venues plus one section to `kind`, then validate; InvalidConfig names every bad field."""
    body = {"venues": raw.get("venues", []), **(raw.get(section) or {})}
    try:
        config = msgspec.convert(body, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidConfig([f"{section}: {exc}"]) from exc
    problems = config.validate()  # type: ignore[attr-defined]
    if problems:
        raise InvalidConfig(problems)
    return config


def parse_router_config(data: bytes, *, format: Literal["toml", "json"] = "toml") -> RouterConfig:
    """The router's view of an execution config file."""
    config: RouterConfig = convert_checked(read_tables(data, format=format), RouterConfig, "router")
    return config


def load_router_config(path: str | Path) -> RouterConfig:
    """Read the router's config (.toml or .json) once, at start-up."""
    path = Path(path)
    return parse_router_config(path.read_bytes(), format="json" if path.suffix == ".json" else "toml")


__all__ = ["InvalidConfig", "RouterConfig", "VenueSpec", "convert_checked", "interval_ns", "load_router_config",
           "parse_router_config", "positive_map", "read_tables", "venue_problems"]
