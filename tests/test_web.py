"""The subscribers' pages behind signed links: one-click unsubscribe, the unsubscribe page and its undo,
refused links, security headers and the message in a browser, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from engine import seed
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from foundation.settings import PROJECT_ROOT
from subscribers import selfservice
from subscribers.models import Subscriber, SubscriberTopic
from subscribers.tokens import PURPOSES, Signer
from web.app import create_app
from web.pages.pages import csrf_token
from web.pages.view import as_page
from worker.authoring.content import load_item
from worker.campaigns import ledger
from worker.rendering.render import Recipient, Renderer

NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"


@pytest.fixture
def web(db_settings, sessions):
    """The app on a store of 60 fictional people and one sent campaign to `calls-for-proposals`."""
    seed(db_settings, 60, seed_value=31)
    with sessions() as session:
        campaign = ledger.create(session, item=NEWSLETTER, message="newsletter", segment="calls-for-proposals",
                                    edition=None, send_at=None, origin="cli", now=datetime.now(UTC))
        session.commit()
    return TestClient(create_app(db_settings)), campaign.id


def someone(sessions, **where) -> Subscriber:
    with sessions() as session:
        query = select(Subscriber).where(Subscriber.status == "confirmed", *(getattr(Subscriber, key) == value
                                                                             for key, value in where.items()))
        return session.scalars(query.order_by(Subscriber.id)).first()


def state(sessions, subscriber_id: int) -> tuple:
    with sessions() as session:
        person = session.get(Subscriber, subscriber_id)
        return person.status, person.unsubscribed_at, tuple(selfservice.topics_of(session, subscriber_id))


def key_of(sessions, subscriber_id: int) -> str:
    with sessions() as session:
        return session.get(Subscriber, subscriber_id).link_key


def everyone(sessions) -> list[tuple]:
    with sessions() as session:
        people = session.execute(select(Subscriber.id, Subscriber.status, Subscriber.updated_at)).all()
        topics = session.execute(select(SubscriberTopic.subscriber_id, SubscriberTopic.topic)).all()
        return sorted(map(tuple, people)) + sorted(map(tuple, topics))


def test_a_bare_one_click_post_unsubscribes_without_cookies_and_a_get_changes_nothing(web, sessions, db_settings):
    client, campaign_id = web
    person = someone(sessions)
    token = Signer(db_settings.secret_key).sign("unsubscribe", person.id, person.link_key, campaign_id)
    before = everyone(sessions)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and person.email in page.text
    assert everyone(sessions) == before, "a GET (a link scanner) changes nothing"

    client.cookies.clear()
    answer = client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    status, unsubscribed_at, _ = state(sessions, person.id)
    assert status == "unsubscribed" and unsubscribed_at is not None
    again = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200 and state(sessions, person.id)[:2] == (status, unsubscribed_at)


def test_the_page_unsubscribes_from_everything_and_undo_takes_it_back(web, sessions, db_settings):
    client, campaign_id = web
    person = someone(sessions, language="en")
    token = Signer(db_settings.secret_key).sign("unsubscribe", person.id, person.link_key, campaign_id)
    page = client.get(f"/u/{token}")
    assert '<html lang="en">' in page.text and "Unsubscribe me from" in page.text
    assert 'hreflang="ro"' in page.text and "Dezabonează-mă de la" in client.get(f"/u/{token}?lang=ro").text

    forged = client.post(f"/u/{token}", data={"scope": "everything", "csrf": "0" * 32})
    assert forged.status_code == 403 and state(sessions, person.id)[0] == "confirmed"

    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    done = client.post(f"/u/{token}", data={"scope": "everything", "csrf": csrf})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert state(sessions, person.id)[0] == "unsubscribed"
    undo = client.post(f"/u/{token}/undo", data={"undo": undo_proof(done.text), "csrf": csrf})
    assert undo.status_code == 200 and "Your subscription is back" in undo.text
    assert state(sessions, person.id)[:2] == ("confirmed", None)


def undo_proof(page: str) -> str:
    """What the result page's undo form carries."""
    return html.unescape(re.search(r'name="undo" value="([^"]+)"', page).group(1))


def test_only_this_topic_keeps_the_rest_of_the_subscription(web, sessions, db_settings):
    client, campaign_id = web
    with sessions() as session:  # the campaign's segment, calls-for-proposals, chooses by these two topics
        subscriber_id = session.scalar(select(SubscriberTopic.subscriber_id).join(Subscriber).where(
            Subscriber.status == "confirmed", SubscriberTopic.topic == "programme-calls"))
    _, _, topics = state(sessions, subscriber_id)
    token = Signer(db_settings.secret_key).sign("unsubscribe", subscriber_id, key_of(sessions, subscriber_id),
                                                 campaign_id)
    page = client.get(f"/u/{token}?lang=en")
    assert 'value="topics"' in page.text and "Calls for proposals" in page.text

    csrf = csrf_token(db_settings.secret_key, token)
    done = client.post(f"/u/{token}?lang=en", data={"scope": "topics", "topic": ["programme-calls"], "csrf": csrf})
    assert done.status_code == 200
    status, _, left = state(sessions, subscriber_id)
    assert status == "confirmed" and set(left) == set(topics) - {"programme-calls"}
    client.post(f"/u/{token}/undo", data={"undo": undo_proof(done.text), "csrf": csrf})
    assert set(state(sessions, subscriber_id)[2]) == set(topics)


def _tampered(token: str, data: st.DataObject) -> str:
    payload, mac = token.split(".")
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "swap", "garbage"]))
    if how == "flip":
        where = data.draw(st.integers(0, len(token) - 1))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        replacement = data.draw(st.sampled_from([c for c in alphabet if c != token[where]]))
        return token[:where] + replacement + token[where + 1:] if token[where] != "." else token[:where] + "A"
    if how == "truncate":
        return token[:data.draw(st.integers(0, len(token) - 1))]
    if how == "extend":
        return token + data.draw(st.text("ABCxyz019-_.", min_size=1, max_size=8))
    if how == "swap":
        return f"{mac}.{payload}"
    return data.draw(st.text("ABCDEFabcdef0123456789-_.", min_size=1, max_size=80))


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tampered_wrong_purpose_revoked_and_expired_tokens_are_refused_and_change_nothing(web, sessions, db_settings, data):
    client, campaign_id = web
    person = someone(sessions)
    signer = Signer(db_settings.secret_key)
    kind = data.draw(st.sampled_from(["tampered", "purpose", "revoked", "expired"]))
    purpose = "unsubscribe"
    if kind == "expired":  # only confirmation links expire: seven days after they were signed
        purpose = "confirm"
        age = timedelta(days=7, seconds=data.draw(st.integers(1, 10**7)))
        token = signer.sign(purpose, person.id, person.link_key, campaign_id, issued_at=datetime.now(UTC) - age)
    elif kind == "tampered":
        token = _tampered(signer.sign(purpose, person.id, person.link_key, campaign_id), data)
    elif kind == "purpose":
        purpose = data.draw(st.sampled_from([p for p in PURPOSES if p != "unsubscribe"]))
        token = signer.sign(purpose, person.id, person.link_key, campaign_id)
    else:  # signed with a key that was rotated out: HERALD_LINK_KEYS no longer lists it
        token = Signer("an old key, since revoked").sign(purpose, person.id, person.link_key, campaign_id)
    if "/" in token or not token:
        return  # another route, or none: not a link of ours at all
    before = everyone(sessions)
    routes = (("unsubscribe", "GET", f"/u/{token}", None),
              ("unsubscribe", "POST", f"/u/{token}", {"List-Unsubscribe": "One-Click"}),
              ("unsubscribe", "POST", f"/u/{token}/undo",
               {"undo": "everything:0:.0", "csrf": csrf_token(db_settings.secret_key, token)}),
              ("view", "GET", f"/m/{token}", None),
              ("confirm", "GET", f"/c/{token}", None),
              ("confirm", "POST", f"/c/{token}", {"csrf": csrf_token(db_settings.secret_key, token)}))
    for route_purpose, method, path, body in routes:
        if kind == "purpose" and route_purpose == purpose:
            continue  # the right link for this page
        if kind == "expired" and route_purpose == "confirm" and method == "GET":
            answer = client.get(path)  # the expiry page offers a new link; asking for it is a POST
            assert answer.status_code == 410 and 'action="/c/' in answer.text and "/renew" in answer.text
            continue
        answer = client.request(method, path, data=body)
        assert 400 <= answer.status_code < 500, (kind, token, method, path)
        if answer.headers["content-type"].startswith("text/html"):
            english, romanian = (("This link has expired", "Linkul a expirat") if answer.status_code == 410
                                 else ("This link does not work", "Linkul nu funcționează"))
            assert english in answer.text and romanian in answer.text
    assert everyone(sessions) == before


def test_links_signed_with_a_rotated_key_still_work(web, sessions, db_settings):
    _, campaign_id = web
    person = someone(sessions)
    token = Signer("the previous key").sign("unsubscribe", person.id, person.link_key, campaign_id)
    rotated = replace(db_settings, link_keys=("the newest key", "the previous key"))
    client = TestClient(create_app(rotated))
    assert client.get(f"/u/{token}").status_code == 200
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert state(sessions, person.id)[0] == "unsubscribed"
    fresh = Signer.from_settings(rotated).sign("unsubscribe", person.id, person.link_key, campaign_id)
    assert Signer("the newest key").verify(fresh, "unsubscribe").subscriber_id == person.id, "the newest key signs"


def test_pages_send_security_headers(web, sessions, db_settings):
    client, campaign_id = web
    person = someone(sessions)
    token = Signer(db_settings.secret_key).sign("unsubscribe", person.id, person.link_key, campaign_id)
    for path in (f"/u/{token}", "/u/nonsense"):
        headers = client.get(path).headers
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Content-Type-Options"] == "nosniff"


def test_view_in_browser_shows_the_message_as_the_recipient_got_it(web, sessions, db_settings):
    client, campaign_id = web
    person = someone(sessions, language="both")
    signer = Signer(db_settings.secret_key)
    page = client.get(f"/m/{signer.sign('view', person.id, person.link_key, campaign_id)}")
    assert page.status_code == 200

    compiled = Renderer(db_settings).compile(load_item(PROJECT_ROOT / "content" / NEWSLETTER), "both", "newsletter")
    expected = compiled.personalise(Recipient(email=person.email, name=person.name, timezone=person.timezone,
                                              links={purpose: "LINK" for purpose in compiled.link_purposes})).html
    token_free = re.sub(r"https?://[^\"]+/[umpcr]/[A-Za-z0-9_.=?-]+", "LINK", page.text)
    assert token_free == as_page(expected), "the message as sent, its body the page's <main>"
    assert "img-src https:" in page.headers["Content-Security-Policy"]


def test_the_archive_lists_sent_newsletters_and_shows_them_to_nobody_in_particular(web, sessions, db_settings):
    client, campaign_id = web
    assert "No newsletter has been sent yet" in client.get("/archive/?lang=en").text
    assert client.get(f"/archive/{campaign_id}").status_code == 404, "still sending: not public"
    with sessions() as session:
        campaign = session.get(ledger.Campaign, campaign_id)
        campaign.state, campaign.finished_at = "sent", datetime.now(UTC)
        campaign.segment = "all-subscribers"  # a public segment: only theirs are in the archive
        session.commit()
        addresses = list(session.scalars(select(Subscriber.email)))
    listing = client.get("/archive/?lang=ro")
    subject_ro = Renderer(db_settings).compile(load_item(PROJECT_ROOT / "content" / NEWSLETTER), "ro",
                                               "newsletter").subject
    assert listing.status_code == 200 and subject_ro in listing.text and f"/archive/{campaign_id}?lang=ro" in listing.text

    public = client.get(f"/archive/{campaign_id}?lang=en")
    assert public.status_code == 200 and '<html lang="en"' in public.text
    assert not any(address in public.text for address in addresses)
    assert not re.search(r"/(u|p|m|c|r)/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", public.text), "no personal link"
    assert "/subscribe?lang=en" in public.text
    assert "img-src https:" in public.headers["Content-Security-Policy"]
    assert client.get("/archive/999999").status_code == 404
