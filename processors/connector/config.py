"""Connector configuration: typed, frozen, unknown fields refused, every bad field reported at once."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from events._base import TOKEN_PATTERN

FormatName = Literal["cryptofeed_http", "cryptofeed_ws", "freqtrade_trades", "klines_json", "klines_csv", "jsonl",
                     "trades_csv", "parquet"]


class ConfigError(ValueError):
    """One or more config fields are invalid; `problems` lists (field, value, limit) for each."""

    def __init__(self, problems: list[tuple[str, object, str]]) -> None:
        super().__init__("; ".join(f"{name} {value!r} {limit}" for name, value, limit in problems))
        self.problems = problems


class ReplayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The file replay connector: which recording, how fast, and where it reports."""

    paths: tuple[str, ...]
    format: FormatName | None = None      # detected from name and content when None
    speed: float = 1.0                    # recorded pace x speed; 0 publishes as fast as possible
    venue: str | None = None
    symbol: str | None = None
    interval: str | None = None           # for kline files whose name does not say
    source: str = "replay"                # dead letters go to sq.dlq.<source>
    batch_size: int = 512                 # events with acks in flight together at speed 0
    loop: bool = False                    # replay again and again until stopped
    shift_to_now: bool = False            # move event times so each pass starts now

    def validate(self) -> ReplayConfig:
        """Return self, or raise ConfigError naming every bad field with its value and limit."""
        problems: list[tuple[str, object, str]] = []
        if not self.paths or not all(self.paths):
            problems.append(("paths", self.paths, "must name at least one file (- for stdin)"))
        if not 0 <= self.speed <= 1_000_000:
            problems.append(("speed", self.speed, "must be within 0..1000000 (0 = as fast as possible)"))
        for name in ("venue", "symbol", "source"):
            value = getattr(self, name)
            if value is not None and not re.match(TOKEN_PATTERN, value):
                problems.append((name, value, f"must match {TOKEN_PATTERN}"))
        if self.interval is not None and not re.fullmatch(r"[1-9][0-9]{0,5}[smhd]", self.interval):
            problems.append(("interval", self.interval, "must be <n><s|m|h|d>, 1s..1d"))
        if not 1 <= self.batch_size <= 100_000:
            problems.append(("batch_size", self.batch_size, "must be within 1..100000"))
        if problems:
            raise ConfigError(problems)
        return self


__all__ = ["ConfigError", "FormatName", "ReplayConfig"]
