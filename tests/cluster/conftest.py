"""A three-node JetStream cluster of real `nats-server` processes on loopback, with nodes to kill and restart."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from events import Broker, Bus
from events.broker import free_port

CLUSTER_NAME = "sq-test"
READY_TIMEOUT_S = 30.0


def _get_json(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            loaded: dict[str, object] = json.loads(response.read())
            return loaded
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


@dataclass
class Node:
    """One cluster member: its broker (ports and store dir fixed, so a restart rejoins as the same server)."""

    name: str
    broker: Broker
    cluster_port: int

    @property
    def url(self) -> str:
        """Client URL of this node."""
        return self.broker.url

    def jsz(self) -> dict[str, object] | None:
        """This node's /jsz monitoring answer (None when it is down)."""
        return _get_json(f"http://127.0.0.1:{self.broker.monitor_port}/jsz")

    def healthy(self) -> bool:
        """/healthz?js-enabled-only=true answers 200."""
        return _get_json(f"http://127.0.0.1:{self.broker.monitor_port}/healthz?js-enabled-only=true") is not None


@dataclass
class Cluster:
    """Three nats-server processes routed together into one JetStream cluster."""

    nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated, as Bus.connect and --nats-url take it."""
        return ",".join(node.url for node in self.nodes.values())

    def start_all(self) -> None:
        """Start every node (each waits for its own JetStream health), then wait for a meta leader."""
        for node in self.nodes.values():
            node.broker.start(timeout=READY_TIMEOUT_S)
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Every running node healthy with JetStream and agreeing on a meta leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [node for node in self.nodes.values() if node.broker.running]
            if running and all(node.healthy() for node in running) and self.meta_leader() is not None:
                return
            time.sleep(0.1)
        raise AssertionError(f"cluster not ready within {timeout}s: {self.describe()}")

    def meta_leader(self) -> str | None:
        """The meta leader's server name, when every running node reports the same one."""
        leaders = set()
        for node in self.nodes.values():
            if not node.broker.running:
                continue
            info = node.jsz() or {}
            meta = info.get("meta_cluster") or {}
            leaders.add(meta.get("leader") if isinstance(meta, dict) else None)
        if len(leaders) == 1:
            (leader,) = leaders
            return str(leader) if leader else None
        return None

    def kill(self, name: str) -> None:
        """SIGKILL one node, as a crash would."""
        self.nodes[name].broker.kill()

    def restart(self, name: str) -> None:
        """Start a killed node again on its ports and store dir; it rejoins and catches up from its peers."""
        self.nodes[name].broker.start(timeout=READY_TIMEOUT_S)
        self.wait_ready()

    def stop_all(self) -> None:
        """SIGKILL every node (fast; the tests own the stores)."""
        for node in self.nodes.values():
            node.broker.kill()

    def describe(self) -> str:
        """Which nodes run and what each says about the meta group (for failure messages)."""
        parts = []
        for node in self.nodes.values():
            info = node.jsz() or {}
            parts.append(f"{node.name}: running={node.broker.running} meta={info.get('meta_cluster')}")
        return "; ".join(parts)


def make_cluster(root: Path, size: int = 3) -> Cluster:
    """A cluster of `size` nodes on free loopback ports (client, cluster route and monitoring each)."""
    names = [f"n{i + 1}" for i in range(size)]
    cluster_ports = {name: free_port() for name in names}
    routes = ",".join(f"nats://127.0.0.1:{port}" for port in cluster_ports.values())
    cluster = Cluster()
    for name in names:
        extra = ("--cluster_name", CLUSTER_NAME, "--cluster", f"nats://127.0.0.1:{cluster_ports[name]}",
                 "--routes", routes)
        broker = Broker(store_dir=root / name, port=free_port(), monitor_port=free_port(), server_name=name,
                        extra_args=extra)
        cluster.nodes[name] = Node(name, broker, cluster_ports[name])
    return cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A running three-node JetStream cluster; every node is killed at the end."""
    running = make_cluster(tmp_path / "nats")
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


async def stream_leader(bus: Bus, stream: str, timeout: float = 20.0) -> str:
    """The server name of the stream's current leader (waits while an election is under way)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            info = await bus.js.stream_info(stream)
            if info.cluster is not None and info.cluster.leader:
                return info.cluster.leader
        except Exception as exc:  # noqa: BLE001 - an election answers with timeouts or 503s for a moment
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"stream {stream} has no leader after {timeout}s (last error: {last!r})")
        await asyncio.sleep(0.1)
