"""The campaign engine end to end: real worker and beat processes, a real Redis, a real SMTP sink.

Each test seeds subscribers through the real importer, triggers with the real `herald` command,
and judges only by what the sink received and what the ledger says.
"""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

import pytest
from engine import NEWSLETTER, recipients, running_engine, seed
from sqlalchemy import select

from foundation.settings import PROJECT_ROOT
from subscribers import store
from subscribers.models import Subscriber
from subscribers.tokens import Signer
from worker.authoring.content import load_item
from worker.rendering.render import Renderer


@pytest.fixture
def engine(db_settings, redis_server, tmp_path):
    with running_engine(db_settings, redis_server.url, tmp_path) as running:
        yield running


def subjects(settings) -> dict[str, str]:
    item = load_item(PROJECT_ROOT / NEWSLETTER)
    renderer = Renderer(settings)
    return {edition: renderer.compile(item, edition, "newsletter").subject for edition in ("ro", "en", "both")}


def test_a_campaign_reaches_every_subscriber_exactly_once_in_their_edition(engine, database_url):
    seed(engine.settings, 1000)
    expected = engine.mailable()
    assert {person.language for person in expected.values()} == {"ro", "en", "both"}
    engine.start_worker()
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
    campaign = engine.wait_state(campaign_id, "sent")

    messages = engine.received(campaign_id)
    assert recipients(messages) == {address: 1 for address in expected}
    counts = engine.counts(campaign_id)
    assert counts["targeted"] == counts["sent"] == len(expected) == len(messages)
    assert campaign.finished_at is not None

    by_edition = subjects(engine.settings)
    signer = Signer(engine.settings.secret_key)
    message_ids = set()
    for message in messages:
        person = expected[message["To"].addresses[0].addr_spec.lower()]
        assert message["Subject"] == by_edition[person.language]
        html = message.get_body(("html",)).get_content()
        assert re.search(r'<html[^>]* lang="%s"' % ("ro" if person.language != "en" else "en"), html)
        unsubscribe = re.fullmatch(r"<(https://herald\.example\.org/u/([^>]+))>, <mailto:[^>]+\?subject=unsubscribe>",
                                   str(message["List-Unsubscribe"]).replace("\r\n", "").replace("  ", " "))
        assert unsubscribe, message["List-Unsubscribe"]
        claims = signer.verify(unsubscribe.group(2), "unsubscribe")
        assert claims.subscriber_id == person.id and claims.link_key.hex() == person.link_key
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["List-Id"] == f"<{engine.settings.list_id}>"
        assert message["Feedback-ID"].startswith(f"campaign-{campaign_id}:newsletter:{person.language}")
        assert parsedate_to_datetime(message["Date"]).utcoffset().total_seconds() == 0
        assert message["Date"].endswith("+0000")
        message_ids.add(message["Message-ID"])
    assert len(message_ids) == len(messages)
    key = campaign.message_key
    assert key and all(re.fullmatch(rf"<c{campaign_id}\.d\d+\.{key}@[^>]+>", mid) for mid in message_ids), \
        "the campaign's random key: a reinstall that numbers campaigns from 1 again makes other ids"


def test_three_sigkills_of_the_worker_lose_nobody_and_duplicate_at_most_one_each(engine):
    seed(engine.settings, 1000, seed_value=7)
    expected = engine.mailable()
    rng = random.Random(1)
    engine.start_worker(concurrency=1)  # one SMTP connection: one message can be in flight per kill
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
    engine.start_beat()  # the sweep gives the killed worker's rows to the next one when their lease runs out
    kills = 0
    for fraction in sorted(rng.uniform(0.1, 0.8) for _ in range(3)):
        engine.wait_for(f"{fraction:.0%} sent", lambda: engine.received_count(campaign_id) >= fraction * len(expected))
        engine.kill("worker")
        kills += 1
        engine.start_worker(concurrency=1)
    engine.wait_state(campaign_id, "sent", seconds=180)

    got = recipients(engine.received(campaign_id))
    assert set(got) == set(expected), "nobody is missing and nobody else was mailed"
    duplicates = sum(count - 1 for count in got.values())
    assert duplicates <= kills
    assert engine.counts(campaign_id)["sent"] == len(expected)


def test_a_redis_restart_mid_campaign_loses_nobody(engine, redis_server):
    seed(engine.settings, 1000, seed_value=11)
    expected = engine.mailable()
    engine.env["HERALD_RATE_LIMIT"] = "150"  # long enough to restart Redis in the middle
    engine.start_worker()
    engine.start_beat()
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
    engine.wait_for("a third sent", lambda: engine.received_count(campaign_id) >= len(expected) // 3)
    redis_server.restart(downtime=1.0)  # every queued batch is gone with it
    engine.wait_state(campaign_id, "sent", seconds=180)

    got = recipients(engine.received(campaign_id))
    assert set(got) == set(expected)
    assert all(count == 1 for count in got.values())


def test_busy_and_refusing_servers_retry_bounce_and_suppress(engine):
    seed(engine.settings, 300, seed_value=5)
    expected = engine.mailable()
    unknown = set(sorted(expected)[::30])  # ten addresses the server does not know
    sink = engine.sink.handler
    sink.unknown |= unknown
    sink.fail_next(25, 421)
    engine.start_worker()
    engine.start_beat()  # retries come due in the database; the sweep requeues them
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
    engine.wait_for("the 421s to run out", lambda: sink.accepted > 0)
    sink.fail_next(15, 451, at="RCPT")
    engine.wait_state(campaign_id, "sent", seconds=180)

    got = recipients(engine.received(campaign_id))
    assert set(got) == set(expected) - unknown
    assert all(count == 1 for count in got.values())
    counts = engine.counts(campaign_id)
    assert (counts["sent"], counts["bounced"], counts["failed"]) == (len(expected) - len(unknown), len(unknown), 0)
    with engine.sessions() as session:
        for address in unknown:
            assert store.find(session, address).status == "bounced"
            assert store.is_suppressed(session, engine.settings.secret_key, address)
    assert not any(address in (engine.workdir / "worker.log").read_text() for address in unknown), \
        "no address in the logs"


def test_a_down_server_pauses_the_campaign_and_resume_finishes_it(engine):
    seed(engine.settings, 200, seed_value=3)
    expected = engine.mailable()
    engine.env["HERALD_PAUSE_AFTER_FAILURES"] = "20"
    sink = engine.sink.handler
    sink.fail_next(10**6, 421)
    engine.start_worker()
    engine.start_beat()
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
    paused = engine.wait_state(campaign_id, "paused")
    assert "20 temporary SMTP failures in a row" in paused.reason and "421" in paused.reason
    assert engine.received_count(campaign_id) == 0
    sink.fail_next(0)
    engine.herald("resume", str(campaign_id))
    engine.wait_state(campaign_id, "sent", seconds=180)
    assert recipients(engine.received(campaign_id)) == {address: 1 for address in expected}


def test_pause_then_resume_sends_nobody_twice_and_skips_nobody(engine):
    seed(engine.settings, 600, seed_value=13)
    expected = engine.mailable()
    engine.env["HERALD_RATE_LIMIT"] = "100"
    engine.start_worker()
    engine.start_beat()
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
    engine.wait_for("some sent", lambda: engine.received_count(campaign_id) >= 100)
    engine.herald("pause", str(campaign_id))
    engine.wait_for("the batches to stop", lambda: engine.counts(campaign_id)["sending"] == 0, seconds=30)
    settled = engine.received_count(campaign_id)
    assert settled < len(expected)
    time.sleep(3)  # three sweeps
    assert engine.received_count(campaign_id) == settled, "nothing is sent while paused"
    assert engine.campaign(campaign_id).state == "paused"
    engine.herald("resume", str(campaign_id))
    engine.wait_state(campaign_id, "sent", seconds=180)
    assert recipients(engine.received(campaign_id)) == {address: 1 for address in expected}


def test_a_scheduled_campaign_fires_on_time_and_one_past_the_grace_window_is_missed(engine):
    seed(engine.settings, 50, seed_value=17)
    expected = engine.mailable()
    engine.start_worker()
    engine.start_beat()
    on_time = engine.send(NEWSLETTER, "--segment", "all-subscribers", "--at", "2099-01-01T10:00:00+00:00")
    late = engine.send(NEWSLETTER, "--segment", "all-subscribers", "--at", "2099-01-01T02:00:00+00:00",
                       "--again", "a second one, due earlier, to be missed")  # else it would move the first
    assert engine.campaign(on_time).state == engine.campaign(late).state == "scheduled"
    due = engine.campaign(on_time).send_at
    time.sleep(2.5)  # a few sweeps: nothing is due yet
    assert engine.campaign(on_time).state == "scheduled" and engine.received_count(on_time) == 0

    # The clock jumps to one minute before 10:00 on the day; the late one is then 8 h overdue.
    engine.set_clock((due - datetime.now(UTC)).total_seconds() - 60)
    missed = engine.wait_state(late, "missed", seconds=30)
    assert "past the 6.0 h grace window" in missed.reason and engine.campaign(on_time).state == "scheduled"
    engine.set_clock((due - datetime.now(UTC)).total_seconds() + 1)
    engine.wait_state(on_time, "sent", seconds=60)
    assert recipients(engine.received(on_time)) == {address: 1 for address in expected}
    assert engine.campaign(late).state == "missed"


def test_pending_subscribers_are_asked_to_confirm_once_in_their_language(engine):
    seed(engine.settings, 40, seed_value=23, consent=False)  # no recorded consent: everyone is pending
    with engine.sessions() as session:
        pending = {person.email.lower(): person for person in session.scalars(select(Subscriber))}
    assert {person.status for person in pending.values()} == {"pending"}
    engine.start_worker()
    engine.start_beat()  # the sweep notices the pending people and starts a confirmation campaign
    engine.wait_state(1, "sent")
    messages = engine.received(1)
    assert recipients(messages) == {address: 1 for address in pending}

    renderer = Renderer(engine.settings)
    signer = Signer(engine.settings.secret_key)
    subjects = {edition: renderer.compile_confirmation(edition, date.today()).subject for edition in ("ro", "en", "both")}
    for message in messages:
        person = pending[message["To"].addresses[0].addr_spec.lower()]
        assert message["Subject"] == subjects[person.language]
        token = re.search(r"https://herald\.example\.org/c/([A-Za-z0-9_.-]+)", message.get_body(("plain",)).get_content())
        claims = signer.verify(token.group(1), "confirm")
        assert (claims.subscriber_id, claims.campaign_id) == (person.id, 1)

    time.sleep(3)  # more sweeps: nobody is asked twice
    assert engine.campaign(2) is None and engine.received_count(1) == len(pending)
    seed(engine.settings, 41, seed_value=23, consent=False)  # the same 40 and one more
    engine.wait_state(2, "sent", seconds=60)
    newcomer = recipients(engine.received(2))
    assert len(newcomer) == 1 and set(newcomer) - set(pending) == set(newcomer)
