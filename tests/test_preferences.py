"""The preference centre behind a signed link (`/p/{token}`): the form and its save, the data download,
erasure, and links of another purpose refused, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest
from engine import seed
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import func, select

from foundation.settings import PROJECT_ROOT
from subscribers import gdpr, selfservice, store
from subscribers.models import Consent, Subscriber, SubscriberTopic, Suppression
from subscribers.tokens import Signer
from subscribers.topics import load_topics
from web.app import create_app
from web.pages.pages import csrf_token

TOPICS = load_topics(PROJECT_ROOT / "content")
REFUSED = ("This link does not work", "Linkul nu funcționează")
MISSING = ("Nothing here", "Nu există")


@pytest.fixture
def client(db_settings, sessions) -> TestClient:
    """The app on a store of 40 fictional people."""
    seed(db_settings, 40, seed_value=47)
    return TestClient(create_app(db_settings))


def someone(sessions, language: str) -> Subscriber:
    """A confirmed person in `language` with a name, an organisation and at least one topic."""
    with sessions() as session:
        query = (select(Subscriber).join(SubscriberTopic)
                 .where(Subscriber.status == "confirmed", Subscriber.language == language,
                        Subscriber.name != "", Subscriber.organisation != "")
                 .order_by(Subscriber.id))
        return session.scalars(query).first()


def link(db_settings, person: Subscriber, purpose: str = "preferences") -> str:
    return Signer(db_settings.secret_key).sign(purpose, person.id, person.link_key)


def held(sessions, subscriber_id: int) -> tuple:
    with sessions() as session:
        person = session.get(Subscriber, subscriber_id)
        return (person.language, person.name, person.organisation, person.status, person.email,
                tuple(selfservice.topics_of(session, subscriber_id)))


def everyone(sessions) -> list[tuple]:
    """Every row a self-management page could touch."""
    with sessions() as session:
        people = session.execute(select(Subscriber.id, Subscriber.language, Subscriber.name, Subscriber.organisation,
                                        Subscriber.status, Subscriber.updated_at)).all()
        topics = session.execute(select(SubscriberTopic.subscriber_id, SubscriberTopic.topic)).all()
        consents = session.execute(select(Consent.id, Consent.subscriber_id)).all()
        suppressed = session.scalars(select(Suppression.email_hash)).all()
        return [sorted(map(tuple, people)), sorted(map(tuple, topics)), sorted(map(tuple, consents)), sorted(suppressed)]


def checked(page: str, kind: str, name: str) -> set[str]:
    return set(re.findall(rf'<input type="{kind}" id="[^"]+" name="{name}" value="([^"]+)" checked>', page))


def test_the_form_shows_what_is_held_and_a_get_changes_nothing(client, sessions, db_settings):
    person = someone(sessions, "en")
    token = link(db_settings, person)
    language, name, organisation, _, email, topics = held(sessions, person.id)
    assert language == "en"
    before = everyone(sessions)

    page = client.get(f"/p/{token}")
    assert page.status_code == 200 and '<html lang="en">' in page.text and "Your preferences" in page.text
    assert email in page.text
    assert checked(page.text, "radio", "language") == {"en"}
    assert checked(page.text, "checkbox", "topic") == set(topics)
    for slug, topic in TOPICS.items():  # every topic of the catalogue, named in the page's language
        assert f'<label for="topic-{slug}">{escape(topic.names["en"])}</label>' in page.text
    assert f'value="{escape(name)}"' in page.text and f'value="{escape(organisation)}"' in page.text
    for field in ("language-ro", "language-en", "language-both", "name", "organisation"):
        assert f'<label for="{field}">' in page.text
    assert page.text.count("<fieldset>") == page.text.count("<legend>") == 3
    assert f'href="/p/{token}/data.json"' in page.text and "Download my data" in page.text
    assert f'href="/p/{token}/delete?lang=en"' in page.text and "Delete me" in page.text
    assert f'name="csrf" value="{csrf_token(db_settings.secret_key, token)}"' in page.text

    assert f'href="/p/{token}?lang=ro"' in page.text, "the language switch"
    romanian = client.get(f"/p/{token}?lang=ro")
    assert '<html lang="ro">' in romanian.text and "Preferințele dumneavoastră" in romanian.text
    assert "Descarcă datele mele" in romanian.text and "Română" in romanian.text
    assert checked(romanian.text, "radio", "language") == {"en"}, "the page's language is not the subscription's"
    first = next(iter(TOPICS.values()))
    assert escape(first.names["ro"]) in romanian.text
    assert everyone(sessions) == before


def test_saving_changes_exactly_what_the_form_says_and_answers_in_the_new_language(client, sessions, db_settings):
    person = someone(sessions, "en")
    token = link(db_settings, person)
    *_, status, email, topics = held(sessions, person.id)
    wanted = sorted(set(TOPICS) - set(topics))[:2] or sorted(TOPICS)[:2]
    rest = everyone(sessions)

    saved = client.post(f"/p/{token}?lang=en", data={
        "csrf": csrf_token(db_settings.secret_key, token), "language": "ro",
        "topic": [*wanted, "no-such-topic"], "name": "  Ştefan   Ţurcanu ", "organisation": "Primăria Iaşi"})
    assert saved.status_code == 200
    assert '<html lang="ro">' in saved.text and '<p class="saved" role="status"><strong>Preferințele au fost salvate.' in saved.text
    assert held(sessions, person.id) == ("ro", "Ștefan Țurcanu", "Primăria Iași", status, email, tuple(sorted(wanted)))
    assert checked(saved.text, "radio", "language") == {"ro"} and checked(saved.text, "checkbox", "topic") == set(wanted)
    assert 'value="Ștefan Țurcanu"' in saved.text

    after = everyone(sessions)  # nobody else changed
    assert [row for row in after[0] if row[0] != person.id] == [row for row in rest[0] if row[0] != person.id]
    assert [row for row in after[1] if row[0] != person.id] == [row for row in rest[1] if row[0] != person.id]
    assert after[2:] == rest[2:]

    # The same language keeps the page's language; an unknown one changes nothing; no topic is a choice too.
    again = client.post(f"/p/{token}?lang=en", data={"csrf": csrf_token(db_settings.secret_key, token),
                                                     "language": "fr", "name": "Ștefan", "organisation": ""})
    assert '<html lang="en">' in again.text and "Your preferences are saved." in again.text
    assert held(sessions, person.id) == ("ro", "Ștefan", "", status, email, ())

    both = client.post(f"/p/{token}?lang=en", data={"csrf": csrf_token(db_settings.secret_key, token),
                                                    "language": "both", "name": "Ștefan", "organisation": ""})
    assert '<html lang="ro">' in both.text, "both editions read Romanian first"
    assert held(sessions, person.id)[0] == "both"


def test_over_long_names_are_cut_to_the_columns(client, sessions, db_settings):
    person = someone(sessions, "ro")
    token = link(db_settings, person)
    limits = {field: Subscriber.__table__.c[field].type.length for field in ("name", "organisation")}
    answer = client.post(f"/p/{token}", data={"csrf": csrf_token(db_settings.secret_key, token), "language": "ro",
                                              "name": "Ana Maria " * 60, "organisation": "ţ" * 1000})
    assert answer.status_code == 200
    _, name, organisation, *_ = held(sessions, person.id)
    assert name == ("Ana Maria " * 60)[:limits["name"]].rstrip() and len(name) <= limits["name"]
    assert organisation == "ț" * limits["organisation"]


@pytest.mark.parametrize("csrf", [None, "", "0" * 32, "not-even-hex"])
def test_a_save_without_the_forms_proof_is_refused_and_changes_nothing(client, sessions, db_settings, csrf):
    person = someone(sessions, "ro")
    token = link(db_settings, person)
    other = link(db_settings, someone(sessions, "en"))
    before = everyone(sessions)
    body = {"language": "en", "topic": sorted(TOPICS), "name": "Mallory", "organisation": "Mallory SRL"}
    for given in (csrf, csrf_token(db_settings.secret_key, other)):  # and another link's proof
        answer = client.post(f"/p/{token}", data=body if given is None else {**body, "csrf": given})
        assert answer.status_code == 403 and all(text in answer.text for text in REFUSED)
    assert everyone(sessions) == before


def test_the_data_download_is_the_persons_record_and_changes_nothing(client, sessions, db_settings):
    person = someone(sessions, "both")
    token = link(db_settings, person)
    before = everyone(sessions)
    answer = client.get(f"/p/{token}/data.json")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert answer.headers["content-disposition"] == 'attachment; filename="herald-my-data.json"'
    record = json.loads(answer.content)
    with sessions() as session:
        assert record == gdpr.person_record(session, db_settings.secret_key, person.email)
        consents = session.scalar(select(func.count()).select_from(Consent).where(Consent.subscriber_id == person.id))
    assert record["email"] == person.email and record["language"] == "both"
    assert [topic["slug"] for topic in record["topics"]] == list(held(sessions, person.id)[-1])
    assert len(record["consents"]) == consents >= 1 and record["consents"][0]["given_at"]
    assert everyone(sessions) == before


def test_erasure_asks_first_needs_the_forms_proof_and_then_the_link_points_at_no_one(client, sessions, db_settings):
    person = someone(sessions, "ro")
    token = link(db_settings, person)
    before = everyone(sessions)

    ask = client.get(f"/p/{token}/delete")
    assert ask.status_code == 200 and '<html lang="ro">' in ask.text and "Vă ștergem datele?" in ask.text
    assert f'action="/p/{token}/delete?lang=ro"' in ask.text and 'method="post"' in ask.text
    assert f'href="/p/{token}?lang=ro"' in ask.text and "Nu, păstrează-mi abonarea" in ask.text
    assert "Delete your data?" in client.get(f"/p/{token}/delete?lang=en").text
    for body in ({}, {"csrf": "0" * 32}):
        refused = client.post(f"/p/{token}/delete", data=body)
        assert refused.status_code == 403 and all(text in refused.text for text in REFUSED)
    assert everyone(sessions) == before

    done = client.post(f"/p/{token}/delete?lang=en", data={"csrf": csrf_token(db_settings.secret_key, token)})
    assert done.status_code == 200 and '<html lang="en">' in done.text and "Your data is deleted" in done.text
    with sessions() as session:
        assert session.get(Subscriber, person.id) is None and store.find(session, person.email) is None
        assert not session.scalars(select(SubscriberTopic).where(SubscriberTopic.subscriber_id == person.id)).all()
        assert not session.scalars(select(Consent).where(Consent.subscriber_id == person.id)).all()
        assert store.is_suppressed(session, db_settings.secret_key, person.email)
    for method, path in (("GET", f"/p/{token}"), ("GET", f"/p/{token}/data.json"), ("GET", f"/p/{token}/delete"),
                         ("POST", f"/p/{token}/delete")):
        gone = client.request(method, path, data={"csrf": csrf_token(db_settings.secret_key, token)})
        assert gone.status_code == 404 and all(text in gone.text for text in MISSING), (method, path)
        assert person.email not in gone.text


def test_links_of_another_purpose_are_refused_and_change_nothing(client, sessions, db_settings):
    person = someone(sessions, "en")
    preferences, unsubscribe = link(db_settings, person), link(db_settings, person, "unsubscribe")
    before = everyone(sessions)
    attempts = (
        ("GET", f"/u/{preferences}", None),
        ("POST", f"/u/{preferences}", {"List-Unsubscribe": "One-Click"}),
        ("POST", f"/u/{preferences}", {"scope": "everything", "csrf": csrf_token(db_settings.secret_key, preferences)}),
        ("GET", f"/p/{unsubscribe}", None),
        ("POST", f"/p/{unsubscribe}", {"csrf": csrf_token(db_settings.secret_key, unsubscribe), "language": "ro"}),
        ("GET", f"/p/{unsubscribe}/data.json", None),
        ("GET", f"/p/{unsubscribe}/delete", None),
        ("POST", f"/p/{unsubscribe}/delete", {"csrf": csrf_token(db_settings.secret_key, unsubscribe)}),
        ("GET", "/p/not-a-token", None),
    )
    for method, path, body in attempts:
        answer = client.request(method, path, data=body)
        assert 400 <= answer.status_code < 500 and all(text in answer.text for text in REFUSED), (method, path)
        assert person.email not in answer.text
        if "not-a-token" not in path:
            assert answer.status_code == 403, (method, path)
    assert everyone(sessions) == before


def test_pages_send_the_strict_security_headers(client, sessions, db_settings):
    token = link(db_settings, someone(sessions, "ro"))
    for path in (f"/p/{token}", f"/p/{token}/delete", f"/p/{token}/data.json"):
        headers = client.get(path).headers
        assert "default-src 'none'" in headers["Content-Security-Policy"] and "form-action 'self'" in headers[
            "Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Frame-Options"] == "DENY"


def test_control_characters_in_any_field_are_stripped_or_ignored_never_a_500(client, sessions, db_settings):
    """Seen on PostgreSQL: a NUL in the name was a public 500 ("text fields cannot contain NUL")."""
    person = someone(sessions, "ro")
    token = link(db_settings, person)
    proof = csrf_token(db_settings.secret_key, token)
    *_, status, email, topics = held(sessions, person.id)
    saved = client.post(f"/p/{token}", data={"csrf": proof, "language": "ro", "topic": list(topics),
                                             "name": "Nu\x00ll\u202e", "organisation": "ONG\x00\r\nIași"})
    assert saved.status_code == 200
    assert held(sessions, person.id) == ("ro", "Null", "ONG Iași", status, email, topics)
    form = {"csrf": proof, "language": "en", "topic": "capacity-building", "name": "N", "organisation": "O"}
    for field in form:
        answer = client.post(f"/p/{token}", data={**form, field: form[field] + "\x00"})
        assert answer.status_code in (200, 403), (field, answer.status_code)
