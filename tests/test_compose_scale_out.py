"""docker-compose.scale-out.yml, checked statically as docker-compose.yml is (tests/test_compose.py): the split users
grow into, web and beat on one host, workers on others, PostgreSQL and Redis elsewhere over TLS that verifies."""

from __future__ import annotations

import re
from typing import Any

import kombu
import psycopg.conninfo
import pytest
import redis
import yaml
from test_compose import (
    IMAGE_PATHS,
    PRODUCTION,
    Refused,
    _settings_names,
    _validator,
    _words,
    herald_cli,
    resolve,
    resolved,
)

from foundation.db import database_url
from foundation.settings import PROJECT_ROOT

SPLIT = PROJECT_ROOT / "docker-compose.scale-out.yml"
REQUIRED = {"HERALD_DATABASE_URL": "postgresql://herald:pw@db.example.org:5432/herald?sslmode=verify-full&"
                                   "sslrootcert=/run/herald/ca.pem",
            "HERALD_REDIS_URL": "rediss://:pw@redis.example.org:6380/0?ssl_cert_reqs=required&"
                                "ssl_ca_certs=/run/herald/ca.pem",
            "HERALD_SMTP_URL": "smtp://news:pw@smtp.example.org:587?security=starttls",
            "HERALD_SECRET_KEY": "k" * 43, "HERALD_API_TOKEN": "t" * 43, "HERALD_BASE_URL": "https://news.example.org"}


def _split() -> dict[str, Any]:
    return yaml.safe_load(SPLIT.read_text())


def _profile(compose: dict[str, Any], profile: str) -> set[str]:
    return {name for name, service in compose["services"].items() if profile in service.get("profiles", [])}


def test_the_file_follows_the_compose_specification():
    _validator().validate(_split())
    _validator().validate(resolved(_split(), REQUIRED))


def test_the_main_host_runs_web_beat_and_the_proxy_and_each_worker_host_workers_only():
    compose = _split()
    assert _profile(compose, "main") == {"web", "beat", "proxy"}
    assert _profile(compose, "worker") == {"worker"}
    assert set(compose["services"]) == {"web", "beat", "proxy", "worker"}, "PostgreSQL and Redis are managed elsewhere"
    for name in PRODUCTION:
        service = compose["services"][name]
        resolve(_words(service["command"]), herald_cli())
        assert service["healthcheck"]["test"] == ["CMD", "herald", "health", name]
        assert "postgres" not in service.get("depends_on", {}) and "redis" not in service.get("depends_on", {})
    assert "depends_on" not in compose["services"]["worker"], "a worker host has no web to wait for"


def test_workers_scale_with_deploy_replicas():
    assert resolved(_split(), REQUIRED)["services"]["worker"]["deploy"]["replicas"] == "2"
    replicas = resolved(_split(), {**REQUIRED, "WORKER_REPLICAS": "8"})["services"]["worker"]["deploy"]["replicas"]
    assert replicas == "8"


def test_every_setting_can_be_given_to_the_containers():
    passed = set(_split()["x-herald"]["environment"])
    wanted = _settings_names() - IMAGE_PATHS
    assert not wanted - passed, f"add {sorted(wanted - passed)} to x-herald's environment in {SPLIT.name}"
    assert passed <= _settings_names()


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_it_refuses_to_start_without_each_address_and_secret(missing: str):
    with pytest.raises(Refused, match=missing):
        resolved(_split(), {name: value for name, value in REQUIRED.items() if name != missing})


def test_the_examples_it_gives_verify_the_servers_they_reach():
    """The URLs the file suggests: PostgreSQL with verify-full, Redis over TLS with a required certificate, as psycopg,
    redis-py and kombu (Celery's broker) read them."""
    text = SPLIT.read_text()
    [postgres] = re.findall(r"postgresql://\S+?(?=})", text)
    [rediss] = re.findall(r"rediss://\S+?(?=})", text)
    assert database_url(postgres).get_backend_name() == "postgresql"
    options = psycopg.conninfo.conninfo_to_dict(postgres)
    assert (options["sslmode"], options["sslrootcert"]) == ("verify-full", "/run/herald/ca.pem")
    pool = redis.Redis.from_url(rediss).connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert (pool.connection_kwargs["ssl_cert_reqs"], pool.connection_kwargs["ssl_ca_certs"]) == ("required",
                                                                                                 "/run/herald/ca.pem")
    broker = kombu.Connection(rediss)
    assert broker.ssl["ssl_cert_reqs"].name == "CERT_REQUIRED" and broker.ssl["ssl_ca_certs"] == "/run/herald/ca.pem"
    mounts = _split()["x-herald"]["volumes"]
    assert "./tls/ca.pem:/run/herald/ca.pem:ro" in mounts
