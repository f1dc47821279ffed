"""Two Herald installations on one machine never share work: each runs its Redis, sink and web on ports of its
own (recorded in its data folder, where its every command finds them), its Redis keys and Celery queue
carry the id in its database, and a worker or beat that finds another installation's id in its Redis
refuses to start. Real processes throughout: `herald demo`, `herald up`, worker and beat."""

from __future__ import annotations

import csv
import email
import email.policy
import json
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from engine import NEWSLETTER, recipients, running_engine, seed
from fastapi.testclient import TestClient
from processes import herald, own_env, processes_with
from sqlalchemy import create_engine, select

from foundation.settings import DEFAULT_PORTS, PROJECT_ROOT
from foundation.tables import Installation
from web.app import create_app
from worker.campaigns.celery_app import QUEUE
from worker.campaigns.installation import OWNER_KEY
from worker.campaigns.models import Campaign, Delivery
from worker.commands.redis_server import redis_server as start_redis

SAMPLE = PROJECT_ROOT / "content" / "subscribers.sample.csv"
OTHER_NEWSLETTER = "content/newsletters/2027-02-capacities-cinema"


def consent() -> Counter[str]:
    with SAMPLE.open(encoding="utf-8") as sample:
        return Counter(row["Acord GDPR"] for row in csv.DictReader(sample))


def outbox(root: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted((root / "outbox").glob("*.eml"))]


def ledger(root: Path) -> tuple[str, set[tuple[int, int, str]]]:
    """An installation's id, and (campaign, delivery, campaign's message key) of every delivery it recorded sent."""
    engine = create_engine(f"sqlite:///{root / 'data' / 'herald.sqlite3'}")
    try:
        with engine.connect() as connection:
            sent = connection.execute(select(Delivery.campaign_id, Delivery.id, Campaign.message_key)
                                      .join(Campaign, Campaign.id == Delivery.campaign_id)
                                      .where(Delivery.state == "sent")).all()
            return connection.scalar(select(Installation.id)), {tuple(row) for row in sent}
    finally:
        engine.dispose()


def delivered(messages: list[email.message.EmailMessage]) -> set[tuple[int, int, str]]:
    """(campaign, delivery, message key) from each message's Message-ID, <c{campaign}.d{delivery}.{key}@domain>."""
    found = set()
    for message in messages:
        campaign, delivery, key = re.fullmatch(r"<c(\d+)\.d(\d+)\.([0-9a-f]+)@[^>]+>", message["Message-ID"]).groups()
        found.add((int(campaign), int(delivery), key))
    return found


def test_two_demos_at_once_each_deliver_only_to_their_own_outbox(tmp_path):
    """Two checkouts' worth of settings, no address set in either: both want Redis on 6399, the sink on 2525 and
    the web on 8000 at the same moment."""
    roots = [tmp_path / "first", tmp_path / "second"]
    demos = [subprocess.Popen([sys.executable, "-m", "worker.cli", "demo", "--invite-in", "2"], env=own_env(root),
                              cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for root in roots]
    outputs = [demo.communicate(timeout=300)[0] for demo in demos]
    for demo, output in zip(demos, outputs, strict=True):
        assert demo.returncode == 0, output

    said = consent()
    for root in roots:
        messages = outbox(root)
        kinds = Counter(message["Feedback-ID"].split(":")[1] for message in messages)
        assert kinds == {"newsletter": said["Da"], "invitation": said["Da"], "confirmation": said["Nu"]}, root
        assert len(recipients(messages)) == said["Da"] + said["Nu"]
        # Exactly what this installation's ledger recorded sent, and nothing of the other's.
        _, sent = ledger(root)
        assert delivered(messages) == sent and len(messages) == len(sent), root
    assert ledger(roots[0])[0] != ledger(roots[1])[0]
    ports = [json.loads((root / "data" / "ports.json").read_text()) for root in roots]
    assert all(ports[0][part] != ports[1][part] for part in DEFAULT_PORTS), ports
    for root, port in zip(roots, ports, strict=True):
        assert all(f"<http://localhost:{port['web']}/" in message["List-Unsubscribe"] for message in outbox(root)
                   if message["List-Unsubscribe"]), "links lead to this installation's own web"
        worker_log = (root / "data" / "logs" / "worker.log").read_text()
        assert f"Connected to redis://:**@127.0.0.1:{port['redis']}/0" in worker_log
    assert not processes_with(str(tmp_path)), "a part of a demo outlived it"


def hold(port: int) -> socket.socket | None:
    """Listen on `port` as another program would (None: one does already)."""
    try:
        return socket.create_server(("127.0.0.1", port))
    except OSError:
        return None


def test_up_moves_off_ports_another_program_holds_and_every_command_finds_them(tmp_path):
    env = own_env(tmp_path)
    assert herald(env, "subscribers", "import", "--sample").returncode == 0
    with ExitStack() as held:
        for port in DEFAULT_PORTS.values():
            if listener := hold(port):
                held.enter_context(listener)
        up = subprocess.Popen([sys.executable, "-m", "worker.cli", "up"], env=env, cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            said_up = next((line for line in up.stdout if line.startswith("Herald is up")), "")
            assert said_up, "herald up did not come up"
            # A command of this installation, not a child of `herald up`, with no address set: it finds them.
            send = herald(env, "send", "--yes", NEWSLETTER, "--segment", "all-subscribers", timeout=60)
            assert send.returncode == 0, send.stdout + send.stderr
            deadline = time.monotonic() + 120
            while len(newsletters := [message for message in outbox(tmp_path)
                                      if ":newsletter:" in message["Feedback-ID"]]) < consent()["Da"]:
                assert time.monotonic() < deadline and up.poll() is None, "the newsletter did not arrive"
                time.sleep(0.5)
        finally:
            up.terminate()
            up.communicate(timeout=60)
    assert up.returncode == 0
    ports = json.loads((tmp_path / "data" / "ports.json").read_text())
    assert set(ports) == set(DEFAULT_PORTS) and not set(ports.values()) & set(DEFAULT_PORTS.values())
    assert said_up.startswith(f"Herald is up: web http://localhost:{ports['web']} (listening on "
                              f"127.0.0.1:{ports['web']})"), said_up
    assert all(message["List-Unsubscribe"].startswith(f"<http://localhost:{ports['web']}/u/")
               for message in newsletters)


@pytest.fixture
def engine(db_settings, redis_server, tmp_path):
    with running_engine(db_settings, redis_server.url, tmp_path, HERALD_RATE_LIMIT="1000") as running:
        yield running


def test_every_key_herald_and_celery_write_is_under_the_installation_prefix(engine, redis_server, sessions):
    seed(engine.settings, 20)
    engine.start_worker(concurrency=1)
    engine.start_beat()
    engine.wait_state(engine.send(NEWSLETTER, "--segment", "all-subscribers"), "sent")
    with TestClient(create_app(replace(engine.settings, redis_url=redis_server.url))) as web:  # the form's counters
        csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/subscribe?lang=en").text).group(1)
        assert web.post("/subscribe?lang=en", data={"csrf": csrf, "email": "not an address"}).status_code == 422
    with sessions() as session:
        installation = session.scalar(select(Installation.id))
    client = redis.Redis.from_url(redis_server.url)
    written = {key.decode() for key in client.scan_iter()}
    assert {key for key in written if not key.startswith(f"herald:{installation}:")} == {OWNER_KEY}
    assert client.get(OWNER_KEY).decode() == installation
    assert f"herald:{installation}:_kombu.binding.{QUEUE}" in written, "kombu's own keys too"
    assert any(key.startswith(f"herald:{installation}:subscribe:ip:") for key in written)


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_a_worker_or_beat_on_another_installations_redis_refuses_in_one_line(tmp_path, command):
    with start_redis(tmp_path / "redis") as server:
        redis.Redis.from_url(server.url).set(OWNER_KEY, "0123456789ab")
        result = herald(own_env(tmp_path, HERALD_REDIS_URL=server.url), command, timeout=30)
    this, _ = ledger(tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"Redis at HERALD_REDIS_URL={server.url} holds the work of Herald installation "
                             f"0123456789ab, and this is installation {this}: give each installation its own Redis, "
                             "or its own database number (redis://host:6379/1).\n")


def test_tasks_left_in_the_queue_of_before_the_upgrade_are_sent_from_the_ledger(db_settings, redis_server, tmp_path,
                                                                                 sessions):
    """Upgrading moves the queue to herald:<id>:herald. What waited in the old one (the batches of a campaign half
    sent when its worker stopped, a fan-out not begun) stays there, unread: beat's sweep starts and sends it all
    again from the ledger, each person once."""
    with running_engine(db_settings, redis_server.url, tmp_path, HERALD_BATCH_SIZE="10",
                        HERALD_RATE_LIMIT="10") as engine:
        seed(engine.settings, 60)
        expected = engine.mailable()
        engine.start_worker(concurrency=1)
        half_sent = engine.send(NEWSLETTER, "--segment", "all-subscribers")
        engine.wait_for("some of it sent", lambda: engine.counts(half_sent)["sent"] >= 10)
        engine.stop_all()  # the worker finishes its batch; the others stay queued
        not_started = engine.send(OTHER_NEWSLETTER, "--segment", "all-subscribers")
        with sessions() as session:
            queue = f"herald:{session.scalar(select(Installation.id))}:{QUEUE}"
        client = redis.Redis.from_url(redis_server.url)
        client.rename(queue, QUEUE)  # as the queue was named before the upgrade
        left = client.llen(QUEUE)
        assert left > 0

        engine.start_worker()
        engine.start_beat()
        for campaign_id in (half_sent, not_started):
            engine.wait_state(campaign_id, "sent")
            assert recipients(engine.received(campaign_id)) == {address: 1 for address in expected}
        assert client.llen(QUEUE) == left, "the old queue was not read: the ledger was enough"
