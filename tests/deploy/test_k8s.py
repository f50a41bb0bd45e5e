"""deploy/k8s: every object validates against the Kubernetes OpenAPI schemas (offline), and the probes,
ports, volumes and config agree with what the `sq` command line and the code actually do."""

from __future__ import annotations

import json

import pytest

from gateway.cli import build_parser
from tests.deploy.conftest import K8S, ROOT, k8s_documents, load_all

kv = pytest.importorskip("kubernetes_validate")

K8S_VERSION = "1.30.0"  # schemas ship inside the kubernetes-validate wheel; no network at test time
DOCS = k8s_documents()
PROCESSOR_PORTS = {"risk": 50053, "router": 50054, "venue-sim": 50058, "aggregator": 50057, "connector": 50052,
                   "gateway": 8080, "recorder": 50059}


def _objects(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCS if doc["kind"] == kind}


def _id(item: tuple) -> str:
    path, doc = item
    return f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("item", DOCS, ids=[_id(d) for d in DOCS])
def test_manifest_when_validated_strictly_against_kubernetes_schema_then_valid(item):
    _, doc = item
    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.ValidationError as exc:
        pytest.fail(f"{_id(item)}: {exc.message} at {'/'.join(map(str, exc.absolute_path))}")


def test_kustomization_when_read_then_lists_every_manifest_except_the_secret_example():
    (kust,) = load_all(K8S / "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kust["resources"]) == files
    assert kust["namespace"] == "shrivenquant"


def test_nats_when_deployed_then_statefulset_of_three_with_pvcs_routes_and_services():
    sts = _objects("StatefulSet")["nats"]
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["serviceName"] == "nats-headless"
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    services = _objects("Service")
    assert services["nats-headless"]["spec"]["clusterIP"] == "None"
    assert {p["port"] for p in services["nats-headless"]["spec"]["ports"]} >= {4222, 6222}
    assert [p["port"] for p in services["nats"]["spec"]["ports"]] == [4222]
    conf = _objects("ConfigMap")["nats-config"]["data"]["nats.conf"]
    for i in range(3):
        assert f"nats://nats-{i}.nats-headless:6222" in conf
    assert "jetstream" in conf and "store_dir: /data" in conf


def _sq_containers() -> list[tuple[str, dict]]:
    out = []
    for kind in ("Deployment", "StatefulSet"):
        for name, obj in _objects(kind).items():
            for container in obj["spec"]["template"]["spec"]["containers"]:
                if container["image"].startswith("shrivenquant"):
                    out.append((name, container))
    return out


def test_every_processor_when_deployed_then_present():
    assert {name for name, _ in _sq_containers()} == set(PROCESSOR_PORTS)
    assert set(PROCESSOR_PORTS) - {"recorder"} <= set(_objects("Deployment"))
    assert "recorder" in _objects("StatefulSet")


@pytest.mark.parametrize("name,container", _sq_containers(), ids=[n for n, _ in _sq_containers()])
def test_probes_when_resolved_then_hit_the_port_the_command_line_sets(name, container):
    args = build_parser().parse_args(container["args"])
    cli_port = args.http_port if args.command == "gateway" else args.port
    assert cli_port == PROCESSOR_PORTS[name]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert named.get(get["port"], get["port"]) == cli_port, (probe, get)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SQ_HEALTH_PORT"] == str(cli_port)
    assert sorted(env["SQ_NATS_URL"].split(",")) == [f"nats://nats-{i}.nats-headless:4222" for i in range(3)]
    assert container["resources"]["requests"] and container["resources"]["limits"]


@pytest.mark.parametrize("name,container", _sq_containers(), ids=[n for n, _ in _sq_containers()])
def test_service_when_present_then_targets_the_probe_port_and_pods_are_annotated_for_scraping(name, container):
    service = _objects("Service")[name]
    (port,) = service["spec"]["ports"]
    assert port["port"] == PROCESSOR_PORTS[name] and port["targetPort"] == "http"
    kind = "StatefulSet" if name == "recorder" else "Deployment"
    annotations = _objects(kind)[name]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(PROCESSOR_PORTS[name])


def test_config_files_when_mounted_then_exist_in_the_configmap_and_match_gateway_defaults():
    data = _objects("ConfigMap")["sq-config"]["data"]
    defaults = ROOT / "gateway" / "defaults"
    assert data["execution.toml"] == (defaults / "execution.toml").read_text()
    assert json.loads(data["limits.json"]) == json.loads((defaults / "limits.json").read_text())
    for name, container in _sq_containers():
        for arg in container["args"]:
            if arg.startswith("/etc/sq/"):
                assert arg.removeprefix("/etc/sq/") in data, (name, arg)


def test_recorder_when_deployed_then_single_statefulset_replica_with_wal_claim():
    sts = _objects("StatefulSet")["recorder"]
    assert sts["spec"]["replicas"] == 1
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/sq/wal"


def test_pdbs_when_present_then_cover_every_workload():
    pdbs = {doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for doc in _objects("PodDisruptionBudget").values()}
    assert pdbs == set(PROCESSOR_PORTS) | {"nats"}


def test_backup_cronjob_when_scheduled_then_runs_sq_store_backup_on_the_recorders_claim():
    job = _objects("CronJob")["wal-backup"]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "store" and str(args.wal_root) == "/var/lib/sq/wal"
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims["wal"] == "wal-recorder-0"  # <volumeClaimTemplate>-<statefulset>-<ordinal>
    assert job["spec"]["concurrencyPolicy"] == "Forbid"


def test_secret_when_only_an_example_then_placeholders_are_marked_and_gateway_reads_it():
    (secret,) = load_all(K8S / "secret.example.yaml")
    assert all(value.startswith("REPLACE_ME") for value in secret["stringData"].values())
    assert set(secret["stringData"]) == {"SQ_MASTER_KEY", "SQ_JWT_SECRET"}
    (_, gateway), = [(n, c) for n, c in _sq_containers() if n == "gateway"]
    assert gateway["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]


def test_validator_when_a_manifest_has_a_typo_then_it_is_refused():
    import copy

    deployment = copy.deepcopy(_objects("Deployment")["risk"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, K8S_VERSION, strict=True)
