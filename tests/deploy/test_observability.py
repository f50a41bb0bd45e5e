"""Prometheus scrape config, alert rules and the Grafana dashboard: they load, and every metric they
name is one the Python sources actually expose."""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy.conftest import DEPLOY, exposed_metric_names, load_all

PROMETHEUS_OWN = {"up"}  # written by Prometheus itself for every scrape
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "le"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, matchers, groupings, ranges and functions removed)."""
    text = _STRINGS.sub("", expr)
    text = _MATCHERS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _RANGES.sub("", text)
    text = re.sub(r"\b\d+(\.\d+)?([eE][-+]?\d+)?[smhdwy]?\b", "", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _KEYWORDS}


def _alert_rules() -> list[dict]:
    (doc,) = load_all(DEPLOY / "prometheus" / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((panel["title"], target["expr"]))
    return out


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    names = exposed_metric_names()
    assert {"sq_recorder_lag_events", "sq_wal_group_commit_seconds_bucket", "sq_processor_lag_events",
            "sq_consumer_messages_total", "sq_gateway_request_seconds_bucket"} <= names
    return names


def test_metric_name_extraction_when_given_promql_then_finds_only_selected_metrics():
    expr = ('histogram_quantile(0.99, sum by (le, stream) (rate(sq_a_bucket{x="y z"}[5m]))) > 0.05 '
            'and max by (s) (sq_b) - sq_c offset 5m > 3 * up{job=~"a|b"}')
    assert metric_names(expr) == {"sq_a_bucket", "sq_b", "sq_c", "up"}


def test_alerts_when_loaded_then_every_rule_is_complete():
    rules = _alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules)
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule.get("alert")
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_alerts_when_listed_then_cover_the_operational_failures_asked_for():
    exprs = " ".join(r["expr"] for r in _alert_rules())
    for needle in ("sq_processor_lag_events", "sq_projection_applied_seq", "sq_recorder_lag_events",
                   'sq_risk_decisions_total{accepted="false"}', "sq_risk_kill_switch_engaged", "sq_wal_group_commit_seconds_bucket", 'up{job="nats"} == 0'):
        assert needle in exprs, needle


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda r: r["alert"])
def test_alert_when_it_names_a_metric_then_the_code_exposes_it(rule, exposed):
    unknown = metric_names(rule["expr"]) - exposed - PROMETHEUS_OWN
    assert not unknown, f"{rule['alert']} uses metrics no code defines: {sorted(unknown)}"


def test_dashboard_when_loaded_then_has_panels_with_queries_on_the_provisioned_datasource():
    (path,) = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    dash = json.loads(path.read_text())
    assert dash["uid"] and dash["title"]
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)
    (ds,) = load_all(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = ds["datasources"][0]["uid"]
    for panel in panels:
        assert panel["targets"] and panel["datasource"]["uid"] == uid, panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}


@pytest.mark.parametrize("title,expr", _dashboard_exprs(), ids=[f"{t}#{i}" for i, (t, _) in enumerate(_dashboard_exprs())])
def test_dashboard_query_when_it_names_a_metric_then_the_code_exposes_it(title, expr, exposed):
    unknown = metric_names(expr) - exposed - PROMETHEUS_OWN
    assert not unknown, f"panel {title!r} uses metrics no code defines: {sorted(unknown)}"


def test_dashboard_provider_when_provisioned_then_points_where_compose_mounts_the_json():
    (provider,) = load_all(DEPLOY / "grafana" / "provisioning" / "dashboards" / "shrivenquant.yml")
    (compose,) = load_all(DEPLOY / "compose.yaml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-k8s.yml"])
def test_prometheus_config_when_loaded_then_loads_the_alert_rules_and_scrapes(name):
    (config,) = load_all(DEPLOY / "prometheus" / name)
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert config["scrape_configs"]


def test_compose_prometheus_when_configured_then_scrapes_every_sq_service_and_each_nats_server():
    (config,) = load_all(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"recorder", "risk", "router", "venue-sim", "aggregator", "connector", "gateway", "nats"} <= set(jobs)
    assert len(jobs["nats"]["static_configs"][0]["targets"]) == 3
