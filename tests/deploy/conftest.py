"""Shared paths and loaders for the deployment checks (no cluster, no Docker, no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SOURCE_DIRS = ("events", "store", "processors", "projections", "gateway")
_METRIC_DEF = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(sq_[a-z0-9_]+)\"")


def load_all(path: Path) -> list[dict]:
    """Every non-empty YAML document in a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_documents() -> list[tuple[Path, dict]]:
    """Every Kubernetes object under deploy/k8s (the kustomization itself excluded)."""
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in load_all(path)]


def exposed_metric_names() -> set[str]:
    """Names the Python sources expose to Prometheus, with the suffixes prometheus_client adds."""
    names: set[str] = set()
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            for kind, name in _METRIC_DEF.findall(path.read_text()):
                if kind == "Counter":
                    base = name.removesuffix("_total")
                    names |= {f"{base}_total", f"{base}_created"}
                elif kind in ("Histogram", "Summary"):
                    names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
                else:
                    names.add(name)
    return names
