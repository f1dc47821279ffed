"""monitoring/: the Prometheus rules, their unit tests, the example scrape configuration and the Grafana dashboard,
checked by Prometheus's own promtool and against the metrics /metrics really shows."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from promtool import promtool

from foundation.db import open_store
from foundation.settings import PROJECT_ROOT
from web.app import create_app
from worker.campaigns.installation import keys_of
from worker.monitoring import health

PROMETHEUS = PROJECT_ROOT / "monitoring" / "prometheus"
RULES = PROMETHEUS / "herald-rules.yml"
DASHBOARD = PROJECT_ROOT / "monitoring" / "grafana" / "herald-dashboard.json"
SERIES = re.compile(r"\b(herald_[a-z0-9_]+|herald:[a-z0-9_:]+)")
# What Grafana replaces before Prometheus sees an expression.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


@pytest.fixture
def exposed(settings, redis_server) -> set[str]:
    """Every series name /metrics can show, from a scrape of the real app (histograms' and counters' suffixes too),
    on an installation whose beat has swept."""
    settings = replace(settings, redis_url=redis_server.url, metrics_token="t")
    sessions = open_store(settings)
    with sessions() as session:
        health.record_sweep(redis.Redis.from_url(redis_server.url), keys_of(session), time.time())
    answer = TestClient(create_app(settings)).get("/metrics", headers={"Authorization": "Bearer t"})
    names = set()
    for family in text_string_to_metric_families(answer.text):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "info": ["_info"]}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def recorded() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_the_rules_are_valid():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alerts_fire_when_they_should_and_only_then():
    """herald-rules.test.yml: each alert on the series that should raise it, and silence on a healthy installation."""
    tested = promtool("test", "rules", "herald-rules.test.yml", cwd=PROMETHEUS)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_alerts_the_issue_asks_for_are_there():
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert {"HeraldCampaignPaused", "HeraldComplaintRateHigh", "HeraldBounceRateHigh", "HeraldBeatLate",
            "HeraldQueueGrowingWhileNothingSends"} <= alerts


def test_the_example_prometheus_configuration_is_valid(tmp_path: Path):
    shutil.copytree(PROMETHEUS, tmp_path / "prometheus")
    (tmp_path / "prometheus" / "herald-metrics-token").write_text("a token\n")
    checked = promtool("check", "config", "prometheus.yml", cwd=tmp_path / "prometheus")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_dashboard_expression_parses(tmp_path: Path):
    """promtool parses each as a recording rule, Grafana's variables replaced as Grafana would."""
    expressions = dashboard_expressions()
    assert len(expressions) >= 15
    for variable, value in GRAFANA_VARIABLES.items():
        expressions = [expression.replace(variable, value) for expression in expressions]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:panel{index}", "expr": expression}
                                                        for index, expression in enumerate(expressions)]}]}
    (tmp_path / "dashboard-rules.yml").write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(tmp_path / "dashboard-rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_series_named_is_one_herald_shows(source: str, exposed: set[str]):
    """A renamed metric breaks this, not the dashboard in production."""
    text = RULES.read_text() if source == "rules" else "\n".join(dashboard_expressions())
    named = set(SERIES.findall(text))
    assert named, f"the {source} name no Herald series"
    unknown = named - exposed - recorded()
    assert not unknown, f"the {source} name series /metrics does not show: {sorted(unknown)}"
