"""deploy/compose.yaml: the services, their health checks, volumes, start order and command lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.up import BACKGROUND
from tests.deploy.conftest import DEPLOY, ROOT, load_all

SQ_SERVICES = {"recorder", "risk", "router", "venue-sim", "aggregator", "reporting", "connector", "gateway", "backup"}
NATS = {"nats-1", "nats-2", "nats-3"}


@pytest.fixture(scope="module")
def compose() -> dict:
    (doc,) = load_all(DEPLOY / "compose.yaml")
    return doc


def test_compose_when_loaded_then_has_cluster_every_processor_and_observability(compose):
    assert SQ_SERVICES | NATS | {"prometheus", "grafana"} <= set(compose["services"])


def test_compose_when_any_service_then_has_a_healthcheck_except_exporters(compose):
    missing = [name for name, svc in compose["services"].items()
               if "healthcheck" not in svc and not name.endswith("-exporter")]
    assert missing == []


def test_nats_cluster_when_configured_then_three_routed_jetstream_servers_with_own_volumes(compose):
    volumes = set()
    for name in NATS:
        svc = compose["services"][name]
        cmd = svc["command"]
        assert svc["image"].startswith("nats:2.10")
        assert "--jetstream" in cmd and cmd[cmd.index("--name") + 1] == name
        routes = cmd[cmd.index("--routes") + 1].split(",")
        assert sorted(routes) == sorted(f"nats://{n}:6222" for n in NATS)
        mount, mappings = svc["volumes"]
        volumes.add(mount.split(":")[0])
        # The partition-token mappings (events.partitions), loaded before the flags that override the rest.
        assert mappings == "./nats-mappings.conf:/etc/nats/mappings.conf:ro"
        assert cmd[:2] == ["--config", "/etc/nats/mappings.conf"]
    assert len(volumes) == 3 and volumes <= set(compose["volumes"])


def test_sq_services_when_configured_then_nats_url_lists_all_three_servers(compose):
    for name in SQ_SERVICES:
        url = compose["services"][name]["environment"]["SQ_NATS_URL"]
        assert sorted(url.split(",")) == sorted(f"nats://{n}:4222" for n in NATS), name


def test_sq_services_when_started_then_wait_for_a_healthy_cluster(compose):
    for name in SQ_SERVICES:
        depends = compose["services"][name]["depends_on"]
        for node in NATS:
            assert depends[node] == {"condition": "service_healthy"}, (name, node)
        if name != "recorder":
            assert depends["recorder"] == {"condition": "service_healthy"}, name


def test_named_volumes_when_mounted_then_declared(compose):
    declared = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, (name, source)


def test_wal_when_mounted_then_recorder_writes_and_every_reader_is_read_only(compose):
    for name, svc in compose["services"].items():
        for mount in svc.get("volumes", []):
            parts = mount.split(":")
            if parts[0] == "wal":
                assert parts[1].endswith("/wal"), (name, mount)
                assert (len(parts) == 2) == (name == "recorder"), (name, mount)


def test_bind_mounts_when_relative_then_exist_in_the_repository(compose):
    for name, svc in compose["services"].items():
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).resolve().exists(), (name, source)
    assert (ROOT / "data" / "samples").is_dir()


def _cli_port(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.http_port if args.command == "gateway" else args.port


@pytest.mark.parametrize("name", sorted(SQ_SERVICES - {"backup"}))
def test_sq_command_when_parsed_by_sq_then_health_port_matches_and_prometheus_scrapes_it(compose, name):
    svc = compose["services"][name]
    port = _cli_port(svc["command"])
    assert svc["environment"]["SQ_HEALTH_PORT"] == str(port)
    (prom,) = load_all(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == name]
    assert job["static_configs"][0]["targets"] == [f"{name}:{port}"]


def test_connector_when_configured_then_loops_over_mounted_samples_read_only(compose):
    svc = compose["services"]["connector"]
    assert "--loop" in svc["command"]
    assert any(m.endswith(":/samples:ro") for m in svc["volumes"])
    for path in (p for p in svc["command"] if p.startswith("/samples/")):
        assert (ROOT / "data" / "samples" / path.removeprefix("/samples/")).exists(), path


def test_backup_when_configured_then_runs_sq_store_backup_in_a_loop(compose):
    script = compose["services"]["backup"]["command"][0]
    assert "sq store backup /var/lib/sq/wal" in script and "while true" in script and "sleep" in script
    build_parser().parse_args(["store", "backup", "/var/lib/sq/wal", "/var/lib/sq/backups/wal"])


def test_gateway_when_configured_then_listens_on_all_interfaces_port_8080_with_secrets_required(compose):
    svc = compose["services"]["gateway"]
    assert svc["command"][svc["command"].index("--host") + 1] == "0.0.0.0"
    assert "8080:8080" in svc["ports"]
    for key in ("SQ_MASTER_KEY", "SQ_JWT_SECRET"):
        assert ":?" in svc["environment"][key], key


def test_dockerfile_when_read_then_multi_stage_slim_non_root_with_healthcheck_and_sq_entrypoint():
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2 and "AS builder" in text and "python:3.11-slim" in text
    assert "USER 10001" in text and "HEALTHCHECK" in text and "urllib.request" in text
    assert 'ENTRYPOINT ["sq"]' in text


def test_compose_when_validated_against_the_compose_spec_schema_then_valid(compose):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parent / "schemas" / "compose_spec.json").read_text())
    document = {key: value for key, value in compose.items() if key != "name"}  # newer than the vendored spec
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]]


def test_processes_off_the_order_path_when_configured_then_get_the_cpu_after_it_as_under_sq_up(compose):
    lowered = {name for name, service in compose["services"].items()
               if name in SQ_SERVICES and int(service.get("cpu_shares", 1024)) < 1024}
    assert lowered == BACKGROUND & SQ_SERVICES
