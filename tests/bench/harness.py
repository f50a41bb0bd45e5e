"""Shared shapes for benchmarks: one result row, the machine description, and timing helpers."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from events import Bus
from gateway.state import Gateway, GatewayConfig
from gateway.users import User
from projections.service import Projections

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class BenchResult:
    """One metric measured beside the baseline it is compared with in the same run."""

    metric: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float

    def as_dict(self) -> dict[str, object]:
        """The JSON shape `sq bench NAME --json` prints for a result."""
        return asdict(self)


def result(metric: str, value: float, unit: str, *, baseline: str, baseline_value: float,
           better: Better) -> BenchResult:
    """Build a result whose ratio is above 1 when `value` beats `baseline_value`."""
    if better == "higher":
        ratio = value / baseline_value if baseline_value else float("inf")
    else:
        ratio = baseline_value / value if value else float("inf")
    return BenchResult(metric, round(value, 6), unit, baseline, round(baseline_value, 6), round(ratio, 4))


def machine() -> dict[str, object]:
    """Describe where the numbers came from, so a table is never read without its context."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    """Run a timing function several times and keep the best (least disturbed) reading."""
    return max(fn() for _ in range(repeats))


def rate(count: int, fn: Callable[[], object]) -> float:
    """Call `fn` once and return `count` divided by the seconds it took."""
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def unthrottled_gateway(data_dir: Path, bus: Bus, projections: Projections) -> tuple[Gateway, str]:
    """A gateway over `projections` with its rate limits out of the way, and a risk officer's token for it."""
    config = GatewayConfig(data_dir=data_dir, durable_ack=False, ip_rate_per_s=1e9, ip_burst=1e9,
                           user_rate_per_s=1e9, user_burst=1e9)
    gateway = Gateway.open(config, bus, projections)
    token, _, _ = gateway.tokens.issue(User("bench", ("risk",), ()), int(time.time()))
    return gateway, token
