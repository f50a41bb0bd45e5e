"""Risk limits: a layered, typed limits file (defaults, account, symbol, account+symbol) parsed once.

A limit left unset inherits from the layer above; a limit set to null is switched off at that
layer. Money and sizes are exact decimals (write them as strings or plain numbers in JSON; TOML
floats are read as Decimal too). Windows are in seconds and become integer nanoseconds once,
here, so the engine compares integers. Scope of each limit:

- per order (quantity, notional, collar) and per symbol position: defaults → account → symbol → account+symbol;
- per account (exposure, margin rate, open orders, order rate): same layers, resolved for the intent's symbol;
- account-wide values `capital` and `max_daily_loss`: defaults → account only;
- circuit-breaker settings: defaults → symbol only (a breaker halts a symbol for everyone).

A layer's type, `Limits`, lives in the event catalogue (events.control), because a LimitsChanged
event carries one: a run-time change is typed when it is decoded and merged here as it is.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
from msgspec import UNSET

from events._base import TOKEN_PATTERN
from events.control import Limits

_TOKEN = re.compile(TOKEN_PATTERN)
NS_PER_S = 1_000_000_000

LIMIT_NAMES: tuple[str, ...] = Limits.__struct_fields__
ACCOUNT_WIDE = frozenset({"capital", "max_daily_loss"})
SYMBOL_WIDE = frozenset({"breaker_move_bps", "breaker_window_s", "breaker_cooldown_s",
                         "error_burst_count", "error_burst_window_s"})
# What a field is when no layer sets it.
BUILTIN = Limits(max_order_quantity=None, max_order_notional=None, price_collar_bps=None, max_position=None,
                 max_gross_exposure=None, max_net_exposure=None, margin_rate=None, max_orders_per_window=None,
                 order_window_s=Decimal(1), max_open_orders=None, restricted=False, capital=None,
                 max_daily_loss=None, breaker_move_bps=None, breaker_window_s=Decimal(60),
                 breaker_cooldown_s=Decimal(300), error_burst_count=None, error_burst_window_s=Decimal(10))


class LimitsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The limits file: layers of limits plus engine settings."""

    defaults: Limits = Limits()
    accounts: dict[str, Limits] = {}
    symbols: dict[str, Limits] = {}
    account_symbols: dict[str, dict[str, Limits]] = {}
    # The price market orders are valued at and limit prices are collared against.
    collar_reference: Literal["mid", "last_trade"] = "mid"
    # How long decided intent ids and client order ids are remembered for duplicate detection.
    dedupe_window_s: Decimal = Decimal(86_400)


class EffectiveLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The limits that apply to one (account, symbol), merged and converted for the engine."""

    max_order_quantity: Decimal | None
    max_order_notional: Decimal | None
    price_collar: Decimal | None          # a fraction: bps / 10_000
    max_position: Decimal | None
    max_gross_exposure: Decimal | None
    max_net_exposure: Decimal | None
    margin_rate: Decimal | None
    max_orders_per_window: int | None
    order_window_ns: int
    max_open_orders: int | None
    restricted: bool
    capital: Decimal | None
    max_daily_loss: Decimal | None
    breaker_move: Decimal | None          # a fraction: bps / 10_000
    breaker_window_ns: int
    breaker_cooldown_ns: int
    error_burst_count: int | None
    error_burst_window_ns: int


class InvalidLimits(ValueError):
    """A limits file or change is wrong; `problems` lists every bad field as `path: what is wrong`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid limits: " + "; ".join(problems))
        self.problems = problems


def _seconds_ns(value: Decimal) -> int:
    return int(value * NS_PER_S)


def _bps(value: Decimal | None) -> Decimal | None:
    return None if value is None else value / 10_000


def merge(*layers: Limits | None) -> Limits:
    """Later layers win field by field; unset fields inherit."""
    values: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        for name in LIMIT_NAMES:
            value = getattr(layer, name)
            if value is not UNSET:
                values[name] = value
    return Limits(**values)


def effective(file: LimitsFile, account: str | None, symbol: str | None) -> EffectiveLimits:
    """The limits for `account` trading `symbol` (either may be None for account- or symbol-wide values)."""
    order_scope = merge(BUILTIN, file.defaults, file.accounts.get(account or ""), file.symbols.get(symbol or ""),
                        file.account_symbols.get(account or "", {}).get(symbol or ""))
    account_scope = merge(BUILTIN, file.defaults, file.accounts.get(account or ""))
    symbol_scope = merge(BUILTIN, file.defaults, file.symbols.get(symbol or ""))
    o: Any = order_scope
    a: Any = account_scope
    s: Any = symbol_scope
    return EffectiveLimits(
        max_order_quantity=o.max_order_quantity, max_order_notional=o.max_order_notional,
        price_collar=_bps(o.price_collar_bps), max_position=o.max_position,
        max_gross_exposure=o.max_gross_exposure, max_net_exposure=o.max_net_exposure,
        margin_rate=o.margin_rate, max_orders_per_window=o.max_orders_per_window,
        order_window_ns=_seconds_ns(o.order_window_s), max_open_orders=o.max_open_orders,
        restricted=o.restricted, capital=a.capital, max_daily_loss=a.max_daily_loss,
        breaker_move=_bps(s.breaker_move_bps), breaker_window_ns=_seconds_ns(s.breaker_window_s),
        breaker_cooldown_ns=_seconds_ns(s.breaker_cooldown_s), error_burst_count=s.error_burst_count,
        error_burst_window_ns=_seconds_ns(s.error_burst_window_s))


# --- validation ----------------------------------------------------------------------------------

_POSITIVE = frozenset({"max_order_quantity", "max_order_notional", "price_collar_bps", "max_position",
                       "margin_rate", "order_window_s", "breaker_move_bps", "breaker_window_s",
                       "error_burst_window_s"})
_NON_NEGATIVE = frozenset({"max_gross_exposure", "max_net_exposure", "max_orders_per_window",
                           "max_open_orders", "capital", "max_daily_loss", "breaker_cooldown_s"})
_MIN_ONE = frozenset({"error_burst_count"})


def _layer_problems(path: str, layer: Limits, *, scope: Literal["all", "account", "symbol", "pair"]) -> list[str]:
    problems: list[str] = []
    for name in LIMIT_NAMES:
        value = getattr(layer, name)
        if value is UNSET or value is None or isinstance(value, bool):
            continue
        where = f"{path}.{name}"
        if isinstance(value, Decimal) and not value.is_finite():
            problems.append(f"{where}: {value} is not a finite number")
            continue
        if name in _POSITIVE and value <= 0:
            problems.append(f"{where}: {value} must be greater than 0")
        elif name in _NON_NEGATIVE and value < 0:
            problems.append(f"{where}: {value} must not be negative")
        elif name in _MIN_ONE and value < 1:
            problems.append(f"{where}: {value} must be at least 1")
        if name == "price_collar_bps" and value >= 10_000:
            problems.append(f"{where}: {value} bps is a collar of 100% or more")
        if name == "margin_rate" and value > 1:
            problems.append(f"{where}: {value} is above 1 (margin is a fraction of notional)")
        if name in ACCOUNT_WIDE and scope in ("symbol", "pair"):
            problems.append(f"{where}: {name} is account-wide; set it under defaults or accounts")
        if name in SYMBOL_WIDE and scope in ("account", "pair"):
            problems.append(f"{where}: {name} is per symbol; set it under defaults or symbols")
    return problems


def _key_problems(path: str, key: str) -> list[str]:
    return [] if _TOKEN.match(key) else [f"{path}: {key!r} is not an account/symbol token [A-Za-z0-9_-]{{1,64}}"]


def validate(file: LimitsFile) -> list[str]:
    """Every problem in the file at once, each as `path: what is wrong`; empty when the file is good."""
    problems = _layer_problems("defaults", file.defaults, scope="all")
    for account, layer in file.accounts.items():
        problems += _key_problems("accounts", account)
        problems += _layer_problems(f"accounts.{account}", layer, scope="account")
    for symbol, layer in file.symbols.items():
        problems += _key_problems("symbols", symbol)
        problems += _layer_problems(f"symbols.{symbol}", layer, scope="symbol")
    for account, by_symbol in file.account_symbols.items():
        problems += _key_problems("account_symbols", account)
        for symbol, layer in by_symbol.items():
            problems += _key_problems(f"account_symbols.{account}", symbol)
            problems += _layer_problems(f"account_symbols.{account}.{symbol}", layer, scope="pair")
    if file.dedupe_window_s <= 0:
        problems.append(f"dedupe_window_s: {file.dedupe_window_s} must be greater than 0")
    return problems


def parse_limits(data: bytes | str, *, format: Literal["json", "toml"] = "json") -> LimitsFile:
    """Parse and validate a limits document; raises InvalidLimits listing every problem."""
    try:
        if format == "toml":
            text = data.decode() if isinstance(data, bytes) else data
            raw = tomllib.loads(text, parse_float=Decimal)
            file = msgspec.convert(raw, LimitsFile)
        else:
            file = msgspec.json.decode(data, type=LimitsFile)
    except (msgspec.ValidationError, msgspec.DecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidLimits([str(exc)]) from exc
    problems = validate(file)
    if problems:
        raise InvalidLimits(problems)
    return file


def load_limits(path: str | Path) -> LimitsFile:
    """Read a limits file (.json or .toml) once, at start-up."""
    path = Path(path)
    return parse_limits(path.read_bytes(), format="toml" if path.suffix == ".toml" else "json")


def apply_change(file: LimitsFile, account: str | None, symbol: str | None, change: Limits) -> LimitsFile:
    """The limits file with one layer updated by a run-time change; raises InvalidLimits if that makes it bad."""
    if account and symbol:
        by_symbol = dict(file.account_symbols.get(account, {}))
        by_symbol[symbol] = merge(by_symbol.get(symbol), change)
        updated = msgspec.structs.replace(file, account_symbols={**file.account_symbols, account: by_symbol})
    elif account:
        updated = msgspec.structs.replace(
            file, accounts={**file.accounts, account: merge(file.accounts.get(account), change)})
    elif symbol:
        updated = msgspec.structs.replace(
            file, symbols={**file.symbols, symbol: merge(file.symbols.get(symbol), change)})
    else:
        updated = msgspec.structs.replace(file, defaults=merge(file.defaults, change))
    problems = validate(updated)
    if problems:
        raise InvalidLimits(problems)
    return updated
