"""`sq up`: the whole stack for a newcomer — broker, recorder, processors, projections and gateway — until Ctrl-C.

Each processor runs as its own process (`sq processor NAME`, as in a deployment), supervised:
one that dies is restarted and rebuilds from the WAL. The gateway and the projections run in
this process. The real sample data replays in a loop, shifted to now, so the market is alive.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from events.broker import Broker, BrokerNotFound, BrokerStartError, embedded_broker, free_port
from events.bus import Bus, resolve_url
from events.logs import configure_logging
from events.process import die_with_parent, stop_on_signals
from gateway.server import start_gateway
from gateway.state import ReadinessConfig
from gateway.up_ready import demo_markets, wait_until_tradable
from gateway.users import UserStore
from processors.connector.venue_up import VenueUpError
from processors.connector.venue_up import plan as venue_plan
from store.secrets import write_private

log = logging.getLogger("sq.up")
DEFAULTS = Path(__file__).resolve().parent / "defaults"
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
DEMO_USER = "demo"
DEMO_ACCOUNT = "ACC1"
MARKET_FILES = ("cryptofeed_BINANCE.http.0.0", "cryptofeed_BINANCE.ws.1.0")
# Ten real 1m ADABTC klines, replayed at 1x (one a minute) so the candles route has a symbol without trades.
BAR_FILE = "nautilus_ADABTC-1m-2021-11-27.csv"
# Processes off the order path run at a lower CPU priority. Every order-path event wakes the recorder,
# portfolio and reporting as well as the next hop; on a machine with few cores they would share the CPU
# with risk, the router and the venue at the moment an intent arrives. Niced, they take the CPU those
# leave and catch up right after (their lag shows in metrics and /readyz as ever).
BACKGROUND = frozenset({"recorder", "aggregator", "portfolio", "reporting", "connector", "connector-bars"})
BACKGROUND_NICENESS = 10


@dataclass
class Child:
    """A supervised processor process."""

    name: str
    args: list[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started: float = field(default=0.0)

    async def start(self) -> None:
        """Start (or restart) the process, appending its output to its log file."""
        log_file = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", *self.args, stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file, stderr=log_file, preexec_fn=functools.partial(_prepare_child, BACKGROUND_NICENESS if self.name in BACKGROUND else 0))
        log_file.close()
        self.started = time.monotonic()


def _prepare_child(niceness: int) -> None:
    """In the forked child before exec: die with `sq up`, and lower the CPU priority by `niceness`."""
    die_with_parent()
    if niceness:
        os.nice(niceness)


async def _supervise(children: list[Child], stop: asyncio.Event) -> None:
    """Restart any child that exits while the stack is up (with a short backoff)."""
    while not stop.is_set():
        for child in children:
            if child.process is not None and child.process.returncode is not None and not stop.is_set():
                log.warning("processor exited; restarting", extra={"processor": child.name,
                                                                   "code": child.process.returncode})
                child.restarts += 1
                await asyncio.sleep(min(5.0, 0.5 * child.restarts))
                await child.start()
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            continue


async def _stop_children(children: list[Child]) -> None:
    for child in children:
        if child.process is not None and child.process.returncode is None:
            child.process.terminate()
    for child in children:
        if child.process is None:
            continue
        try:
            await asyncio.wait_for(child.process.wait(), 10)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _ensure_config(data_dir: Path) -> tuple[Path, Path]:
    config_dir = data_dir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in ("execution.toml", "limits.json"):
        if not (config_dir / name).exists():
            shutil.copyfile(DEFAULTS / name, config_dir / name)
    return config_dir / "execution.toml", config_dir / "limits.json"


def _ensure_demo_user(data_dir: Path) -> tuple[str, str | None]:
    """The demo user's password (made on first run and kept 0600 in the data dir) and, on first run, its URI."""
    store = UserStore(data_dir / "secrets")
    password_file = data_dir / "secrets" / "demo-password"
    if store.get(DEMO_USER) is None:
        password = secrets.token_urlsafe(12)
        enrolment = store.add(DEMO_USER, password, ["trader", "risk"], [DEMO_ACCOUNT])
        write_private(password_file, password.encode())
        return password, enrolment.provisioning_uri
    return password_file.read_text().strip() if password_file.exists() else "(set when it was created)", None


def _probe_port(name: str) -> int:
    """The process's usual probe port when it has one and it is free, else any free one."""
    default = PROBE_PORTS.get(name)
    return default if default is not None and _port_free(default) else free_port()


# The usual probe port of each process `sq up` starts (ARCHITECTURE.md); connectors share 50052.
PROBE_PORTS = {"recorder": 50059, "risk": 50053, "router": 50054, "venue-sim": 50058, "aggregator": 50057,
               "portfolio": 50055, "reporting": 50056, "connector": 50052, "connector-bars": 50062}


def _children(data_dir: Path, url: str, execution: Path, limits: Path, with_market: bool,
              live: tuple[str, list[str]] | None = None) -> list[Child]:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = ["--nats-url", url, "--data-dir", str(data_dir)]
    specs = [
        ("recorder", ["processor", "recorder", *common]),
        ("risk", ["processor", "risk", *common, "--limits", str(limits)]),
        ("router", ["processor", "router", *common, "--config", str(execution)]),
        ("venue-sim", ["processor", "venue-sim", *common, "--config", str(execution)]),
        ("aggregator", ["processor", "aggregator", *common, "--intervals", "1s,1m", "--top-every-ms", "250"]),
        ("portfolio", ["processor", "portfolio", *common]),
        ("reporting", ["processor", "reporting", *common]),
    ]
    if live is not None:  # `--venue`: the live runner takes the simulated venue's place
        specs = [(live[0], ["processor", live[0], *common, *live[1]]) if name == "venue-sim" else (name, args)
                 for name, args in specs]
    if with_market:
        market = [str(SAMPLES / name) for name in MARKET_FILES]
        # Every replayed source runs at 1x shifted to now, so no event is stamped ahead of the clock
        # (ARCHITECTURE.md principle 11); the aggregator makes the traded symbols' candles.
        specs.append(("connector", ["processor", "connector", *market, "--nats-url", url, "--loop",
                                    "--shift-to-now", "--source", "demo-replay"]))
        specs.append(("connector-bars", ["processor", "connector", str(SAMPLES / BAR_FILE), "--nats-url", url,
                                         "--loop", "--shift-to-now", "--venue", "binance",
                                         "--symbol", "ADABTC", "--interval", "1m", "--source", "demo-bars"]))
    # Probes on loopback, each on a known port, so the gateway's /readyz can ask them.
    return [Child(name, [*args, "--host", "127.0.0.1", "--port", str(_probe_port(name))],
                  logs / f"{name}.log") for name, args in specs]


def _readiness(children: list[Child], with_market: bool) -> ReadinessConfig:
    """What the gateway waits for before the banner: every process's probe, and a tradable demo market."""
    services = tuple((child.name, f"http://127.0.0.1:{child.args[child.args.index('--port') + 1]}/readyz")
                     for child in children)
    books, trades = demo_markets(SAMPLES / name for name in MARKET_FILES) if with_market else ((), ())
    return ReadinessConfig(books=books, trades=trades, services=services)


async def run_stack(*, data_dir: Path, http_port: int, nats_url: str | None, venue: str | None = None,
                    venue_markets: str | None = None, venue_options: list[str] | None = None) -> int:
    """Start everything, print how to use it, and run until SIGINT/SIGTERM; then stop it all cleanly."""
    configure_logging("up")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    live: tuple[str, list[str]] | None = None
    if venue is not None:
        try:
            live_execution, live_args = venue_plan(venue, data_dir, venue_markets, venue_options or [])
        except VenueUpError as exc:
            print(f"sq up: {exc}", file=sys.stderr)
            return 2
        live = (venue, live_args)
    if not _port_free(http_port):
        print(f"sq up: port {http_port} is in use; pass --http-port", file=sys.stderr)
        return 2
    broker: Broker | None = None
    if nats_url is None:
        port = 4222 if _port_free(4222) else free_port()
        monitor = 8222 if _port_free(8222) else free_port()
        broker = embedded_broker(data_dir / "nats", port=port, monitor_port=monitor)
        try:
            broker.start()
        except (BrokerNotFound, BrokerStartError) as exc:
            print(f"sq up: could not start the embedded broker: {exc}", file=sys.stderr)
            return 2
        url = broker.url
    else:
        url = resolve_url(nats_url)
    execution, limits = _ensure_config(data_dir)
    # Made in the local store; the gateway moves it (and any other local user) into the users bucket as it starts.
    password, uri = _ensure_demo_user(data_dir)
    with_market = all((SAMPLES / name).exists() for name in MARKET_FILES)
    if live is not None:
        execution = live_execution
        with_market = with_market and live[0] != "binance"  # live Binance data, not the recorded replay
    stop = stop_on_signals()
    bus = await Bus.connect(url, name="sq-up")
    children: list[Child] = []
    running = None
    try:
        await bus.ensure_streams()
        children = _children(data_dir, url, execution, limits, with_market, live)
        for child in children:
            await child.start()
        supervising = asyncio.create_task(_supervise(children, stop))
        running = await start_gateway(bus, data_dir=data_dir, host="127.0.0.1", port=http_port,
                                      readiness=_readiness(children, with_market))
        print("ShrivenQuant is starting: the banner follows once every demo market is tradable.", flush=True)
        if await wait_until_tradable(running.gateway, stop, say=lambda line: print(line, flush=True)):
            _print_banner(url, data_dir, http_port, password, uri, with_market)
        await supervising
    finally:
        print("\nstopping…", flush=True)
        stop.set()  # the supervisor must not restart what is being stopped, whatever ended the run
        if running is not None:
            await running.close()
        await _stop_children(children)
        await bus.close()
        if broker is not None:
            broker.stop()
    print("ShrivenQuant stopped cleanly.", flush=True)
    return 0


def _sq_command() -> str:
    """How the user can run `sq` from their shell: on PATH, else the venv's script (relative if under cwd)."""
    if shutil.which("sq"):
        return "sq"
    script = Path(sys.executable).parent / "sq"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _print_banner(url: str, data_dir: Path, http_port: int, password: str, uri: str | None,
                  with_market: bool) -> None:
    base = f"http://127.0.0.1:{http_port}"
    sq = _sq_command()
    enrol = (f"  TOTP      scan or paste into an authenticator app (shown once):\n            {uri}\n" if uri else "")
    market = ("replaying real Binance spot data (NKNUSDT, BLZETH, LRCBTC, RUNEEUR) in a loop, shifted to now"
              if with_market else "no sample data found (data/samples): no market replay")
    print(f"""
ShrivenQuant is up: every demo market has a book (and a last trade where the recording trades).
  gateway   {base}   (OpenAPI: {base}/openapi.json, metrics: {base}/metrics)
  broker    {url}
  data      {data_dir}   (WAL: wal/, logs: logs/, config: config/)
  market    {market}

Log in as user `{DEMO_USER}` (roles trader and risk, account {DEMO_ACCOUNT}), password: {password}
{enrol}  A current code without an app:  {sq} user code {DEMO_USER} --data-dir {data_dir} --nats-url {url}

Try it:
  TOKEN=$(curl -s {base}/v1/auth/login -H 'content-type: application/json' \\
    -d '{{"username":"{DEMO_USER}","password":"{password}","totp":"'$({sq} user code {DEMO_USER} --data-dir {data_dir} --nats-url {url})'"}}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {base}/v1/orders -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
    -d '{{"account":"{DEMO_ACCOUNT}","client_order_id":"demo-1","symbol":"NKNUSDT","side":"BUY","quantity":"500",
         "limit_price":"0.36","algo":{{"kind":"TWAP","duration_s":10,"slices":5}}}}'
  curl -s {base}/v1/orders -H "authorization: Bearer $TOKEN"
  curl -s {base}/v1/positions -H "authorization: Bearer $TOKEN"
  curl -s {base}/v1/book/binance/NKNUSDT -H "authorization: Bearer $TOKEN"
  curl -s '{base}/v1/candles?symbol=ADABTC&interval=1m' -H "authorization: Bearer $TOKEN"
  curl -s {base}/v1/query -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
    -d '{{"sql":"select symbol, count(*) n, sum(quantity) qty from fills group by symbol"}}'

Or publish an intent straight onto NATS from any client:  subject sq.ord.intent.{DEMO_ACCOUNT}
Ctrl-C stops everything cleanly; `make up` again resumes from {data_dir}.
""", flush=True)
