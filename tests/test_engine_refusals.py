"""A server that refuses the message, not the mailbox: the real worker fails that delivery and leaves the
person alone (no bounce, no suppression), and many such refusals in a row pause the campaign.

Real worker process, real Redis, a scripted sink, on SQLite and PostgreSQL (tests/engine.py).
"""

from __future__ import annotations

import pytest
from engine import NEWSLETTER, recipients, running_engine, seed
from sqlalchemy import select

from subscribers import store
from worker.campaigns.models import Delivery

REFUSED_AT_DATA = ["500 5.5.2 Line too long", "552 5.3.4 Message too big", "550 5.7.1 Message rejected by policy"]


@pytest.fixture
def engine(db_settings, redis_server, tmp_path):
    with running_engine(db_settings, redis_server.url, tmp_path) as running:
        yield running


def test_a_refused_message_fails_the_delivery_and_only_an_unknown_mailbox_bounces(engine):
    seed(engine.settings, 60, seed_value=17)
    expected = engine.mailable()
    *refused, gone = [expected[key] for key in sorted(expected)[:4]]
    sink = engine.sink.handler
    sink.refusals |= {person.email: ("DATA", reply) for person, reply in zip(refused, REFUSED_AT_DATA)}
    sink.unknown.add(gone.email)
    engine.start_worker()
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
    engine.wait_state(campaign_id, "sent")

    assert set(recipients(engine.received(campaign_id))) == set(expected) - {p.email.lower() for p in [*refused, gone]}
    counts = engine.counts(campaign_id)
    assert (counts["sent"], counts["failed"], counts["bounced"]) == (len(expected) - 4, 3, 1)
    key = engine.settings.secret_key
    with engine.sessions() as session:
        errors = dict(session.execute(select(Delivery.subscriber_id, Delivery.error).where(
            Delivery.campaign_id == campaign_id, Delivery.state == "failed")).all())
        assert errors == {person.id: f"DATA {reply}" for person, reply in zip(refused, REFUSED_AT_DATA)}
        for person in refused:
            assert store.find(session, person.email).status == "confirmed"
            assert not store.is_suppressed(session, key, person.email)
        assert store.find(session, gone.email).status == "bounced" and store.is_suppressed(session, key, gone.email)


def test_many_refusals_in_a_row_pause_the_campaign_and_suppress_nobody(engine):
    seed(engine.settings, 80, seed_value=19)
    expected = engine.mailable()
    engine.env["HERALD_PAUSE_AFTER_FAILURES"] = "10"
    sink = engine.sink.handler
    sink.refusals |= {person.email: ("DATA", "550 5.7.1 Sender not authorised") for person in expected.values()}
    engine.start_worker()
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
    paused = engine.wait_state(campaign_id, "paused")

    assert "10 refused SMTP failures in a row" in paused.reason and "5.7.1" in paused.reason
    counts = engine.counts(campaign_id)
    assert counts["failed"] >= 10 and counts["bounced"] == counts["sent"] == 0
    with engine.sessions() as session:
        assert all(store.find(session, person.email).status == "confirmed" for person in expected.values())
