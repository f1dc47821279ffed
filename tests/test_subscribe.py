"""The subscribe form and the confirmation link (double opt-in), on SQLite and PostgreSQL, with a real Redis
for the rate limits and the broker: the same answer for every address, nothing applied before the click."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from broker import enqueued
from engine import seed
from fastapi.testclient import TestClient
from sqlalchemy import select

from subscribers import selfservice, store
from subscribers.models import Consent, Subscriber, SubscriptionRequest
from subscribers.tokens import Signer
from web.app import create_app
from web.pages.pages import csrf_token
from worker.campaigns import ledger
from worker.campaigns.models import Campaign


@pytest.fixture
def web(db_settings, redis_server, broker, sessions):
    redis_server_client = broker
    redis_server_client.flushdb()  # rate-limit counters of earlier tests
    settings = replace(db_settings, redis_url=redis_server.url)
    seed(settings, 30, seed_value=41)
    return TestClient(create_app(settings)), settings


def form_fields(page: str) -> dict[str, str]:
    return {"csrf": re.search(r'name="csrf" value="([^"]+)"', page).group(1),
            "consent": re.search(r'name="consent" value="([^"]+)"', page).group(1)}


def post(client: TestClient, **fields) -> object:
    page = client.get("/subscribe?lang=en").text
    return client.post("/subscribe?lang=en", data=form_fields(page) | {"language": "en"} | fields)


def test_the_form_labels_every_field_and_records_a_pending_request(web, sessions, broker):
    client, _ = web
    page = client.get("/subscribe?lang=ro")
    assert page.status_code == 200 and '<html lang="ro">' in page.text
    for field in re.findall(r'<input[^>]* id="([^"]+)"', page.text):
        assert f'for="{field}"' in page.text, f"input {field} has no label"
    answer = post(client, email="Noua.Persoana@Example.org", name="Ştefan Ţepeş", topic=["capacity-building"])
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    with sessions() as session:
        person = store.find(session, "noua.persoana@example.org")
        assert (person.status, person.language, person.name) == ("pending", "en", "Ștefan Țepeș")
        assert selfservice.topics_of(session, person.id) == [], "topics wait for the confirmation"
        request = session.scalars(select(SubscriptionRequest)).one()
        assert request.topics == ["capacity-building"] and request.consent_version and request.asked_in is None
        confirmation = session.scalars(select(Campaign).where(Campaign.message == "confirmation")).one()
        assert confirmation.state == "sending"
    assert ("herald.start", [confirmation.id], {}) in enqueued(broker)


def test_known_unknown_and_suppressed_addresses_get_the_same_answer(web, sessions):
    client, settings = web
    with sessions() as session:
        known = session.scalars(select(Subscriber).where(Subscriber.status == "confirmed")).first()
        store.suppress(session, settings.secret_key, "gone@example.org", "erased", datetime.now(UTC))
        session.commit()
    answers = [post(client, email=address) for address in (known.email, "someone.new@example.org", "gone@example.org")]
    assert len({(answer.status_code, answer.text) for answer in answers}) == 1
    with sessions() as session:
        assert store.find(session, "gone@example.org") is None, "a suppressed address is never stored or mailed"
        assert session.get(Subscriber, known.id).status == "confirmed"


def test_robots_bad_forms_and_floods_are_turned_away(web, sessions):
    client, _ = web
    honeypot = post(client, email="robot@example.org", website="https://spam.example")
    assert honeypot.status_code == 200 and "Check your inbox" in honeypot.text
    no_consent = post(client, email="a@example.org", consent="")
    assert no_consent.status_code == 422 and "tick the agreement" in no_consent.text
    bad_address = post(client, email="not an address")
    assert bad_address.status_code == 422 and 'value="not an address"' in bad_address.text
    forged = client.post("/subscribe", data={"csrf": "1.abc", "email": "b@example.org", "consent": "x"})
    assert forged.status_code == 403
    with sessions() as session:
        assert {"robot@example.org", "a@example.org", "b@example.org"}.isdisjoint(
            session.scalars(select(Subscriber.email_key)))
    statuses = [post(client, email=f"flood{number}@example.org").status_code for number in range(12)]
    assert 429 in statuses and statuses.index(429) <= 10


def _confirm_token(settings, person: Subscriber, campaign_id: int = 1, issued_at: datetime | None = None) -> str:
    return Signer(settings.secret_key).sign("confirm", person.id, person.link_key, campaign_id, issued_at=issued_at)


def test_the_confirmation_link_applies_the_request_and_records_the_consent(web, sessions):
    client, settings = web
    post(client, email="ana.noua@example.org", topic=["transfer-networks"], name="Ana Nouă")
    with sessions() as session:
        person = store.find(session, "ana.noua@example.org")
    token = _confirm_token(settings, person)
    page = client.get(f"/c/{token}")
    assert page.status_code == 200 and "Confirm your subscription" in page.text
    with sessions() as session:
        assert session.get(Subscriber, person.id).status == "pending", "a GET confirms nothing"
    assert client.post(f"/c/{token}", data={"csrf": "0" * 32}).status_code == 403
    done = client.post(f"/c/{token}", data={"csrf": csrf_token(settings.secret_key, token)})
    assert done.status_code == 200 and "confirmed" in done.text
    with sessions() as session:
        confirmed = session.get(Subscriber, person.id)
        assert confirmed.status == "confirmed" and confirmed.confirmed_at is not None
        assert selfservice.topics_of(session, person.id) == ["transfer-networks"]
        consent = session.scalars(select(Consent).where(Consent.subscriber_id == person.id)).one()
        assert consent.channel == "form" and consent.purpose.startswith("I agree that") and consent.text_version
    assert "is confirmed" in client.get(f"/c/{token}").text


def test_an_unsubscribed_person_stays_unsubscribed_until_they_confirm_again(web, sessions):
    client, settings = web
    with sessions() as session:
        person = session.scalars(select(Subscriber).where(Subscriber.status == "confirmed")).first()
        selfservice.unsubscribe(session, person, datetime.now(UTC))
        assert ledger.awaiting_confirmation() is not None
    post(client, email=person.email, topic=["digital-innovation"])
    with sessions() as session:
        assert session.get(Subscriber, person.id).status == "unsubscribed"
        waiting = session.scalars(select(Subscriber.id).where(ledger.awaiting_confirmation())).all()
        assert person.id in waiting
    token = _confirm_token(settings, person)
    client.post(f"/c/{token}", data={"csrf": csrf_token(settings.secret_key, token)})
    with sessions() as session:
        assert session.get(Subscriber, person.id).status == "confirmed"
        assert "digital-innovation" in selfservice.topics_of(session, person.id)
        assert person.id not in session.scalars(select(Subscriber.id).where(ledger.awaiting_confirmation())).all()


def test_an_expired_link_offers_a_new_one(web, sessions):
    client, settings = web
    post(client, email="late@example.org")
    with sessions() as session:
        person = store.find(session, "late@example.org")
        session.execute(SubscriptionRequest.__table__.update().values(asked_in=1))  # as if mailed already
        session.commit()
    token = _confirm_token(settings, person, issued_at=datetime.now(UTC) - timedelta(days=8))
    page = client.get(f"/c/{token}?lang=en")
    assert page.status_code == 410 and "Send me a new link" in page.text
    assert client.post(f"/c/{token}", data={"csrf": csrf_token(settings.secret_key, token)}).status_code == 410
    client.post(f"/c/{token}/renew", data={"csrf": csrf_token(settings.secret_key, token)})
    with sessions() as session:
        assert session.get(Subscriber, person.id).status == "pending"
        assert person.id in session.scalars(select(Subscriber.id).where(ledger.awaiting_confirmation())).all()


def test_control_characters_in_any_field_are_stripped_or_refused_never_a_500(web, sessions):
    """Seen on PostgreSQL: `name=Nu%00ll` was a public 500 ("text fields cannot contain NUL")."""
    client, _ = web
    answer = post(client, email="nul@example.org", name="Nu\x00ll\r\n", organisation="\u202eONG\x00 Iași\u202c\t")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    with sessions() as session:
        person = store.find(session, "nul@example.org")
        request = session.scalars(select(SubscriptionRequest).where(SubscriptionRequest.subscriber_id == person.id)).one()
        assert (person.name, request.name, request.organisation) == ("Null", "Null", "ONG Iași")
    page = client.get("/subscribe?lang=en").text
    good = form_fields(page) | {"email": "nul2@example.org", "name": "N", "organisation": "O",
                                "organisation_type": "ngo", "language": "en", "topic": "capacity-building"}
    for field in [*good, "website"]:  # stripped where it is text, refused (403, 422) where it must match
        answer = client.post("/subscribe?lang=en", data={**good, field: good.get(field, "") + "\x00"})
        assert answer.status_code in (200, 403, 422), (field, answer.status_code)
