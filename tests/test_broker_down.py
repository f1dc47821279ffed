"""A trigger that cannot reach its broker, through real processes on SQLite and PostgreSQL: `herald send` as a
subprocess, a Redis of the test's own that it stops and starts, then a real worker and beat. Whatever happens
to the broker, every person gets the message exactly once, and each failure is one line.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from engine import NEWSLETTER, recipients, running_engine, seed
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from foundation.settings import PROJECT_ROOT
from web.app import create_app
from worker.campaigns.models import Campaign
from worker.commands.redis_server import redis_server

ITEM = NEWSLETTER.removeprefix("content/")


@pytest.fixture
def own_redis(tmp_path: Path):
    """A Redis for this test alone: stopping it or filling its memory touches no other test."""
    with redis_server(tmp_path / "redis") as server:
        yield server


def herald(engine, *args: str) -> subprocess.CompletedProcess:
    """`herald …` as an operator runs it, whatever its exit code."""
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], env=engine.env, capture_output=True,
                          text=True, cwd=PROJECT_ROOT, timeout=60, check=False)


def campaign_count(engine) -> int:
    """Newsletter campaigns (beat's sweep also asks the seed's pending people to confirm, in one of its own)."""
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(Campaign).where(Campaign.message == "newsletter"))


def one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_redis_down_records_nothing_and_the_retry_sends_each_person_once(db_settings, own_redis, tmp_path):
    seed(db_settings, 60, seed_value=31)
    with running_engine(db_settings, own_redis.url, tmp_path) as engine:
        expected = engine.mailable()
        own_redis.stop()

        down = herald(engine, "send", "--yes", NEWSLETTER)
        assert down.returncode == 1
        line = one_line(down)
        assert line.startswith(f"Nothing was recorded: the broker at HERALD_REDIS_URL={own_redis.url} does not "
                               f"answer ("), line
        assert line.endswith("). Start it (`herald up` runs one), or set HERALD_REDIS_URL to yours, then try again.")
        assert campaign_count(engine) == 0

        own_redis.start()
        engine.start_worker()
        engine.start_beat()
        campaign_id = engine.send(NEWSLETTER)
        engine.wait_state(campaign_id, "sent")
        again = herald(engine, "send", "--yes", NEWSLETTER)  # as anyone would, to be sure
        assert again.returncode == 2
        assert f"already has campaign {campaign_id} for its newsletter to 'all-subscribers', sent on" in one_line(again)
        assert campaign_count(engine) == 1
        assert recipients(engine.received(campaign_id)) == {address: 1 for address in expected}


def test_a_broker_that_refuses_the_start_leaves_a_campaign_the_sweep_sends_once(db_settings, own_redis, tmp_path):
    seed(db_settings, 60, seed_value=37)
    with running_engine(db_settings, own_redis.url, tmp_path) as engine:
        expected = engine.mailable()
        client = redis.Redis.from_url(own_redis.url)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)  # it answers PING, but takes no write: the start cannot be queued

        refused = herald(engine, "send", "--yes", NEWSLETTER)
        assert refused.returncode == 1
        with engine.sessions() as session:
            [campaign] = session.scalars(select(Campaign)).all()  # no beat yet: nothing asks for confirmation
        line = one_line(refused)
        assert line.startswith(f"Campaign {campaign.id} is recorded, but the broker did not take its start ("), line
        assert line.endswith(f"): beat's sweep starts it once Redis answers. Do not send it again; `herald status "
                             f"{campaign.id}` follows it.")
        assert campaign.state == "sending" and campaign.reason.startswith("not queued when triggered")

        retried = herald(engine, "send", "--yes", NEWSLETTER)
        assert retried.returncode == 2
        assert (f"already has campaign {campaign.id} for its newsletter to 'all-subscribers', sending since"
                in one_line(retried))

        client.config_set("maxmemory", 0)
        engine.start_worker()
        engine.start_beat()  # nobody enqueues it again: the sweep finds a sending campaign whose fan-out never began
        engine.wait_state(campaign.id, "sent")
        assert campaign_count(engine) == 1
        assert recipients(engine.received(campaign.id)) == {address: 1 for address in expected}


def test_the_api_answers_503_and_records_nothing_when_the_broker_is_down(db_settings, own_redis, sessions):
    from broker import forget_connections

    from worker.campaigns.celery_app import app as celery_app

    before = celery_app.conf.broker_url
    celery_app.conf.broker_url = own_redis.url
    forget_connections()
    own_redis.stop()
    try:
        with TestClient(create_app(replace(db_settings, api_token="t"))) as client:
            answer = client.post("/api/campaigns", json={"item": ITEM}, headers={"Authorization": "Bearer t"})
    finally:
        celery_app.conf.broker_url = before
        forget_connections()
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith(f"Nothing was recorded: the broker at HERALD_REDIS_URL={own_redis.url} "
                                              "does not answer (")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 0
