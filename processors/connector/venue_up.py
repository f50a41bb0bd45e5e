"""`sq up --venue binance|kite`: the live connector that takes the simulated venue's place, and its checks.

`sq up` stays the simulated demo. With `--venue`, the credentials the live runner needs are
checked before anything starts (a clear message names every missing field), the router gets an
execution config whose only venue is the live one (`<data-dir>/config/execution-<venue>.toml`,
written once and then the user's to edit), and the live runner (`sq processor binance --trade`
or `sq processor kite --trade`) runs instead of `venue-sim`. `--venue-option NAME=VALUE` passes
`--NAME VALUE` to the runner, e.g. `rest-url=https://testnet.binance.vision` for a testnet or a
stand-in; Binance's market data then comes from the venue, so the recorded Binance replay is off.
"""

from __future__ import annotations

import re
from pathlib import Path

from processors.connector.credentials import VENUE_FIELDS, CredentialError, CredentialStore
from store.secrets import SecretError

LIVE_VENUES = ("binance", "kite")
DEFAULT_MARKETS = {"binance": "BTCUSDT", "kite": "NSE:INFY"}
# Fees in bps as the router uses them to rank venues; one venue, so they only shape TCA estimates.
EXECUTION = {
    "binance": '# Execution config for `sq up --venue binance`: the live Binance spot venue only.\n'
               '[[venues]]\nname = "binance"\nmarket_venue = "binance"\ntaker_fee_bps = 10\n'
               'maker_fee_bps = 10\nlatency_ns = 50_000_000\n',
    "kite": '# Execution config for `sq up --venue kite`: the live Zerodha Kite venue only.\n'
            '[[venues]]\nname = "kite"\nmarket_venue = "kite"\ntaker_fee_bps = 3\nmaker_fee_bps = 3\n'
            'latency_ns = 50_000_000\n',
}
_OPTION = re.compile(r"^([a-z][a-z0-9-]*)=(.+)$")
_RESERVED = {"nats-url", "data-dir", "trade", "symbols", "instruments"}


class VenueUpError(ValueError):
    """`sq up --venue` cannot start the live venue; the message says what is missing or wrong."""


def missing_credentials(venue: str, data_dir: Path) -> str | None:
    """None when `sq creds` holds everything the venue's runner needs, else a message naming the missing fields."""
    try:
        CredentialStore(data_dir).get(venue)
    except SecretError as exc:  # the sealed store cannot be opened (e.g. another SQ_MASTER_KEY)
        return f"--venue {venue}: the credential store in {data_dir} cannot be read: {exc}"
    except CredentialError as exc:
        listing = CredentialStore(data_dir).listing().get(venue, {})
        missing = [name for name in VENUE_FIELDS[venue] if not listing.get(name)]
        return (f"--venue {venue} needs credentials in `sq creds` (data dir {data_dir}): missing "
                f"{', '.join(missing) or exc}; set each with `sq creds set {venue} --field NAME`")
    return None


def execution_config(venue: str, config_dir: Path) -> Path:
    """The router config with the live venue as its only venue (written once, then left to the user)."""
    path = config_dir / f"execution-{venue}.toml"
    if not path.exists():
        config_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(EXECUTION[venue])
    return path


def runner_args(venue: str, markets: str | None, options: list[str]) -> list[str]:
    """The live runner's own arguments (after `processor VENUE` and the common --nats-url/--data-dir)."""
    extra: list[str] = []
    for option in options:
        match = _OPTION.match(option)
        if match is None:
            raise VenueUpError(f"--venue-option {option!r} is not NAME=VALUE (e.g. rest-url=https://...)")
        if match[1] in _RESERVED:
            raise VenueUpError(f"--venue-option {match[1]!r} is set by sq up itself; use --venue-markets for markets")
        extra += [f"--{match[1]}", match[2]]
    market_flag = "--symbols" if venue == "binance" else "--instruments"
    return ["--trade", market_flag, markets or DEFAULT_MARKETS[venue], "--port", "0", *extra]


def plan(venue: str, data_dir: Path, markets: str | None, options: list[str]) -> tuple[Path, list[str]]:
    """Check credentials and options, then the router config path and the runner's arguments."""
    if venue not in LIVE_VENUES:
        raise VenueUpError(f"--venue {venue!r} is not one of {', '.join(LIVE_VENUES)}")
    problem = missing_credentials(venue, data_dir)
    if problem is not None:
        raise VenueUpError(problem)
    args = runner_args(venue, markets, options)
    return execution_config(venue, data_dir / "config"), args


__all__ = ["LIVE_VENUES", "VenueUpError", "execution_config", "missing_credentials", "plan", "runner_args"]
