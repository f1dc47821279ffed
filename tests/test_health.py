"""/healthz and /readyz through the real web app, and the healthcheck commands of docker-compose.yml run exactly as
Docker runs them, against a real web server, a real beat, a real SMTP sink, Redis and each database."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import yaml
from engine import running_engine
from fastapi.testclient import TestClient
from live_server import live_server

from foundation.db import open_store
from foundation.settings import PROJECT_ROOT
from web.app import create_app
from worker.campaigns.installation import keys_of
from worker.commands.redis_server import free_port
from worker.monitoring import health

HERALD = Path(sys.executable).parent / "herald"  # the console script the image puts on PATH


def compose_healthcheck(service: str) -> list[str]:
    """The command docker-compose.yml's healthcheck of `service` runs, with `herald` as installed here."""
    test = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "herald"
    return [str(HERALD), *test[2:]]


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def stale_sweep(settings, client: redis.Redis) -> None:
    """Beat's last sweep, four intervals ago."""
    with open_store(settings)() as session:
        health.record_sweep(client, keys_of(session), time.time() - 4 * settings.sweep_seconds)


def test_healthz_answers_while_the_process_runs(settings):
    answer = TestClient(create_app(settings)).get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "alive"}
    assert answer.headers["cache-control"] == "no-store"


def test_readyz_checks_the_database_and_redis_and_says_when_beat_is_late(db_settings, redis_server):
    settings = replace(db_settings, redis_url=redis_server.url)
    web = TestClient(create_app(settings))
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    answer = web.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok",
                                                           "beat": "beat has not swept since this Redis started"}}
    stale_sweep(settings, client)
    late = web.get("/readyz")
    assert late.status_code == 200, "a late beat does not take the subscribers' pages away"
    assert late.json()["checks"]["beat"].startswith("beat is late: it last swept 60 s ago")

    port = free_port()
    down = TestClient(create_app(replace(settings, redis_url=f"redis://127.0.0.1:{port}/0"))).get("/readyz")
    assert down.status_code == 503
    assert down.json() == {"status": "not ready", "checks": {"database": "ok", "redis": "Redis does not answer"}}
    assert str(port) not in down.text, "anyone may ask: the answer names no host, the log does"


def test_the_compose_healthchecks_pass_while_all_is_well_and_fail_when_a_part_stops(db_settings, redis_server,
                                                                                    tmp_path):
    with running_engine(db_settings, redis_server.url, tmp_path) as engine, \
            live_server(replace(db_settings, redis_url=redis_server.url, sweep_seconds=1.0)) as web:
        env = {**engine.env, "HERALD_LISTEN": web.url.removeprefix("http://")}
        engine.start_beat()  # sweeps every second (HERALD_SWEEP_SECONDS=1)
        engine.wait_for("beat's first sweep", lambda: run(compose_healthcheck("beat"), env).returncode == 0, 60)
        for service in ("web", "worker", "beat"):
            checked = run(compose_healthcheck(service), env)
            assert checked.returncode == 0, f"{service}: {checked.stdout}{checked.stderr}"
        assert run(compose_healthcheck("worker"), env).stdout.splitlines() == ["database: ok", "redis: ok", "smtp: ok"]

        engine.kill("beat")
        time.sleep(3.5)  # three of beat's one-second intervals
        beat = run(compose_healthcheck("beat"), env)
        assert beat.returncode == 1 and "beat: beat is late" in beat.stdout
        web_check = run(compose_healthcheck("web"), env)
        assert web_check.returncode == 0 and "beat: beat is late" in web_check.stdout, "late, but the web serves"
        no_relay = {**env, "HERALD_SMTP_URL": f"smtp://127.0.0.1:{free_port()}?security=none"}
        worker = run(compose_healthcheck("worker"), no_relay)
        assert worker.returncode == 1 and "smtp: the SMTP relay does not take mail (127.0.0.1:" in worker.stdout

    gone = run(compose_healthcheck("web"), env)  # the web server has stopped
    assert gone.returncode == 1 and "does not answer" in gone.stdout


@pytest.mark.parametrize("service", ["worker", "beat"])
def test_a_database_that_does_not_answer_fails_the_check(settings, redis_server, service, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HERALD_DATA_DIR": str(tmp_path), "HERALD_SECRET_KEY": "k",
           "HERALD_REDIS_URL": redis_server.url,
           "HERALD_DATABASE_URL": f"postgresql://herald@127.0.0.1:{free_port()}/herald"}
    checked = run(compose_healthcheck(service), env)
    assert checked.returncode == 1 and checked.stdout.startswith("database: the database does not answer")
