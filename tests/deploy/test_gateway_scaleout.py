"""deploy/k8s/gateway.yaml: two gateway replicas behind one Service, rolled without downtime, with no shared
volume (users and sessions live in the broker's key-value buckets)."""

from __future__ import annotations

from tests.deploy.conftest import k8s_documents


def _gateway(kind: str) -> dict:  # type: ignore[type-arg]
    (doc,) = [doc for _, doc in k8s_documents() if doc["kind"] == kind and doc["metadata"]["name"] == "gateway"]
    return doc


def test_gateway_when_deployed_then_two_replicas_roll_one_at_a_time_without_a_shared_claim() -> None:
    deployment = _gateway("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    volumes = spec["template"]["spec"]["volumes"]
    assert not [v for v in volumes if "persistentVolumeClaim" in v]
    assert not [doc for _, doc in k8s_documents() if doc["kind"] == "PersistentVolumeClaim"
                and doc["metadata"]["name"].startswith("gateway")]
    service = _gateway("Service")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert "sessionAffinity" not in service["spec"]     # any replica serves any client, WebSockets included
    assert _gateway("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
