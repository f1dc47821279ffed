"""Who a link names: ids are never handed out twice, an erased person's links open for no one ever again,
links from before link keys keep working across the upgrade, and an undo reverses only its own unsubscribe.
On SQLite and PostgreSQL, through the real web app."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from engine import seed
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from old_links import format_1_token
from sqlalchemy import insert, select, text, update
from test_web import everyone, undo_proof

from foundation.clock import OFFSET_FILE_ENV
from foundation.db import MIGRATIONS, migrate
from subscribers import gdpr, selfservice
from subscribers.importer import Options, import_csv
from subscribers.models import Subscriber
from subscribers.tokens import PURPOSES, Signer
from subscribers.topics import load_topics
from web.app import create_app
from web.pages.pages import csrf_token
from worker.campaigns import ledger

NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"
# The refusal page by status, in both languages: nobody's link, a link that is not one, an expired one.
REFUSED = {404: ("Nothing here", "Nu există"), 403: ("This link does not work", "Linkul nu funcționează"),
           410: ("This link has expired", "Linkul a expirat")}


@pytest.fixture
def web(db_settings, sessions):
    """40 fictional people stored ten days ago, and one campaign that mailed them."""
    seed(db_settings, 40, seed_value=17)
    with sessions() as session:
        session.execute(update(Subscriber).values(created_at=datetime.now(UTC) - timedelta(days=10)))
        campaign = ledger.create(session, item=NEWSLETTER, message="newsletter", segment="all-subscribers",
                                    edition=None, send_at=None, origin="cli", now=datetime.now(UTC))
        session.commit()
    return TestClient(create_app(db_settings)), campaign.id


def people(sessions) -> list[Subscriber]:
    with sessions() as session:
        return list(session.scalars(select(Subscriber).where(Subscriber.status == "confirmed").order_by(Subscriber.id)))


def routes(token: str, secret: str) -> list[tuple[str, str, dict | None]]:
    """Every page a link can open, with what its form would post."""
    csrf = {"csrf": csrf_token(secret, token)}
    return [("GET", f"/u/{token}", None), ("POST", f"/u/{token}", {"List-Unsubscribe": "One-Click"}),
            ("POST", f"/u/{token}", {"scope": "everything"} | csrf),
            ("POST", f"/u/{token}/undo", {"undo": "everything:0:.0"} | csrf),
            ("GET", f"/p/{token}", None), ("POST", f"/p/{token}", {"language": "en", "name": "Someone Else"} | csrf),
            ("GET", f"/p/{token}/data.json", None), ("GET", f"/p/{token}/delete", None),
            ("POST", f"/p/{token}/delete", csrf), ("GET", f"/c/{token}", None), ("POST", f"/c/{token}", csrf),
            ("POST", f"/c/{token}/renew", csrf), ("GET", f"/r/{token}?answer=yes", None),
            ("POST", f"/r/{token}", {"answer": "yes"} | csrf), ("GET", f"/m/{token}", None)]


def assert_refused_everywhere(client: TestClient, token: str, secret: str, newcomer: Subscriber | None) -> None:
    for method, path, body in routes(token, secret):
        answer = client.request(method, path, data=body)
        assert answer.status_code in REFUSED, (method, path, answer.status_code)
        english, romanian = REFUSED[answer.status_code]
        assert english in answer.text and romanian in answer.text, (method, path)
        if newcomer is not None:
            assert newcomer.email not in answer.text, "another person's address behind an erased person's link"


def newcomer_with_id(sessions, subscriber_id: int, email: str) -> Subscriber:
    """Someone stored under an id that was once another person's, as after restoring a backup's sequence."""
    now = datetime.now(UTC)
    with sessions() as session:
        session.execute(insert(Subscriber).values(
            id=subscriber_id, email=email, email_key=email, email_hash=email, name="Nou Venit", organisation="",
            city="", language="ro", attributes={}, status="pending", created_at=now, updated_at=now))
        session.commit()
        return session.get(Subscriber, subscriber_id)


def test_the_id_of_an_erased_person_is_never_handed_out_again(sessions, db_settings, tmp_path):
    seed(db_settings, 5, seed_value=3)
    with sessions() as session:
        last = session.scalar(select(Subscriber).order_by(Subscriber.id.desc()).limit(1))
    gdpr.erase_person(sessions, db_settings.secret_key, last.email, datetime.now(UTC))
    with sessions() as session:
        wanted = selfservice.Request(email="ion.nou@example.org", language="ro")
        assert selfservice.request_subscription(session, db_settings.secret_key, wanted, datetime.now(UTC))
        newcomer = session.scalar(select(Subscriber).where(Subscriber.email == "ion.nou@example.org"))
    assert newcomer.id > last.id
    path = tmp_path / "more.csv"
    path.write_text("email,consent\nalta.noua@example.org,da\n", encoding="utf-8")
    import_csv(sessions, path, load_topics(db_settings.content_dir), db_settings.secret_key,
               Options(now=datetime.now(UTC), consent_source="form"))
    with sessions() as session:
        assert session.scalar(select(Subscriber.id).where(Subscriber.email == "alta.noua@example.org")) > newcomer.id


def test_an_erased_persons_links_open_for_no_one_even_when_their_id_comes_back(web, sessions, db_settings):
    client, campaign_id = web
    person = people(sessions)[-1]
    signer = Signer.from_settings(db_settings)
    tokens = {purpose: signer.sign(purpose, person.id, person.link_key, campaign_id) for purpose in PURPOSES}
    tokens["old"] = format_1_token(db_settings.secret_key, "preferences", person.id, campaign_id,
                                   datetime.now(UTC) - timedelta(days=2))
    assert client.get(f"/p/{tokens['preferences']}/data.json").json()["email"] == person.email
    assert client.get(f"/p/{tokens['old']}").status_code == 200, "a link from before link keys still opens"

    gdpr.erase_person(sessions, db_settings.secret_key, person.email, datetime.now(UTC))
    newcomer = newcomer_with_id(sessions, person.id, "nou.venit@example.org")
    before = everyone(sessions)
    for token in tokens.values():
        assert_refused_everywhere(client, token, db_settings.secret_key, newcomer)
    assert everyone(sessions) == before, "the newcomer was neither confirmed nor changed"
    with sessions() as session:
        assert session.get(Subscriber, person.id).status == "pending"


@hypothesis_settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                     phases=[Phase.generate])
@given(data=st.data())
def test_after_erase_every_link_ever_issued_for_that_person_is_refused_whatever_comes_after(web, sessions,
                                                                                           db_settings, data):
    client, campaign_id = web
    alive = people(sessions)[:-1]  # each example erases one more; draws must not depend on who is left
    person = alive[data.draw(st.integers(0, 30), label="erased") % len(alive)]
    signer = Signer.from_settings(db_settings)
    issued = []
    for _ in range(data.draw(st.integers(1, 4), label="links")):
        purpose = data.draw(st.sampled_from(PURPOSES))
        campaign = data.draw(st.sampled_from([campaign_id, None]))
        days_ago = data.draw(st.integers(1, 9))  # signed while they were subscribed
        when = datetime.now(UTC) - timedelta(days=days_ago)
        issued.append(format_1_token(db_settings.secret_key, purpose, person.id, campaign, when)
                      if data.draw(st.booleans(), label="format 1") else
                      signer.sign(purpose, person.id, person.link_key, campaign, issued_at=when))
    assert client.get(f"/p/{signer.sign('preferences', person.id, person.link_key)}").status_code == 200

    gdpr.erase_person(sessions, db_settings.secret_key, person.email, datetime.now(UTC))
    newcomer = None
    for step, what in enumerate(data.draw(st.lists(st.sampled_from(["form", "same-address", "reused-id"]),
                                                   max_size=3), label="afterwards")):
        with sessions() as session:
            if what == "reused-id" and session.get(Subscriber, person.id) is None:
                newcomer = newcomer_with_id(sessions, person.id, f"reused{person.id}@example.org")
                continue
            address = person.email if what == "same-address" else f"new{person.id}.{step}@example.org"
            selfservice.request_subscription(session, db_settings.secret_key,
                                             selfservice.Request(email=address, language="en"), datetime.now(UTC))
    before = everyone(sessions)
    for token in issued:
        assert_refused_everywhere(client, token, db_settings.secret_key, newcomer)
    assert everyone(sessions) == before


# --- the migration: link keys for everyone, format-1 links still open ------------------------------

def test_upgrading_gives_everyone_a_link_key_keeps_every_row_and_the_links_already_sent(db_settings, sessions):
    engine = sessions.kw["bind"]
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    then = datetime.now(UTC) - timedelta(days=30)
    stamp = then if engine.dialect.name == "postgresql" else then.replace(tzinfo=None)
    with engine.begin() as connection:
        for number in (1, 2, 3):
            connection.execute(text(
                "INSERT INTO subscribers (id, email, email_key, email_hash, name, organisation, city, language, "
                "attributes, status, created_at, updated_at, confirmed_at) VALUES (:id, :email, :email, :hash, "
                "'Ana', '', '', 'ro', '{}', 'confirmed', :at, :at, :at)"),
                {"id": number, "email": f"p{number}@example.org", "hash": f"h{number}", "at": stamp})
        connection.execute(text("INSERT INTO topics (slug, name_ro, name_en) VALUES ('t', 'T', 'T')"))
        connection.execute(text("INSERT INTO subscriber_topics (subscriber_id, topic) VALUES (1, 't'), (2, 't')"))
        connection.execute(text(
            "INSERT INTO consents (subscriber_id, purpose, text_version, given_at, channel, source) "
            "VALUES (1, 'news', 'v1', :at, 'import', 'form')"), {"at": stamp})
        connection.execute(text(
            "INSERT INTO campaigns (id, item, message, segment, state, reason, origin, fanout_cursor, fanout_done, "
            "created_at, updated_at) VALUES (1, :item, 'newsletter', 'all-subscribers', 'sent', '', 'cli', 3, "
            ":done, :at, :at)"), {"item": NEWSLETTER, "done": True, "at": stamp})
        connection.execute(text(
            "INSERT INTO deliveries (campaign_id, subscriber_id, state, attempts, error) "
            "VALUES (1, 1, 'sent', 1, ''), (1, 2, 'sent', 1, ''), (1, 3, 'sent', 1, '')"))
    counts_before = _counts(engine)

    migrate(engine)
    assert _counts(engine) == counts_before, "the rebuilt table took nothing with it"
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT link_key FROM subscribers")).scalars().all()
        assert len(set(keys)) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", key) for key in keys)
        if engine.dialect.name == "sqlite":
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert "AUTOINCREMENT" in connection.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'subscribers'")).scalar()
    old = format_1_token(db_settings.secret_key, "preferences", 1, 1, then + timedelta(days=1))
    client = TestClient(create_app(db_settings))
    assert client.get(f"/p/{old}/data.json").json()["email"] == "p1@example.org"


def _counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in ("subscribers", "subscriber_topics", "consents", "campaigns", "deliveries")}


# --- undo: only the unsubscribe its page recorded, only for a while ------------------------------

def _unsubscribe_page(client: TestClient, secret: str, token: str, **form: str):
    return client.post(f"/u/{token}?lang=en", data={"scope": "everything", "csrf": csrf_token(secret, token)} | form)


def test_undo_from_another_messages_link_never_resubscribes(web, sessions, db_settings):
    client, first = web
    with sessions() as session:
        second = ledger.create(session, item=NEWSLETTER, message="newsletter", segment="all-subscribers",
                                  edition=None, send_at=None, origin="cli", now=datetime.now(UTC))
        session.commit()
    person = people(sessions)[0]
    signer = Signer.from_settings(db_settings)
    one, two = (signer.sign("unsubscribe", person.id, person.link_key, campaign) for campaign in (first, second.id))
    assert client.post(f"/u/{one}", data={"List-Unsubscribe": "One-Click"}).status_code == 200  # the mail provider
    page = _unsubscribe_page(client, db_settings.secret_key, two)
    assert page.status_code == 200 and 'name="undo"' not in page.text, "nothing changed, so nothing to undo"
    for proof in ("everything:0:.0", f"everything:{10**16}:.{'0' * 32}"):
        answer = client.post(f"/u/{two}/undo", data={"undo": proof, "csrf": csrf_token(db_settings.secret_key, two)})
        assert answer.status_code == 403
    with sessions() as session:
        assert session.get(Subscriber, person.id).status == "unsubscribed"


def test_undo_never_reverses_an_opt_out_that_came_from_somewhere_else(web, sessions, db_settings, tmp_path):
    client, campaign_id = web
    person = people(sessions)[1]
    token = Signer.from_settings(db_settings).sign("unsubscribe", person.id, person.link_key, campaign_id)
    page = _unsubscribe_page(client, db_settings.secret_key, token)
    proof, csrf = undo_proof(page.text), csrf_token(db_settings.secret_key, token)
    assert client.post(f"/u/{token}/undo", data={"undo": proof, "csrf": csrf}).status_code == 200  # taken back ...
    path = tmp_path / "optout.csv"  # ... then an operator opts them out by import
    path.write_text(f"email,status\n{person.email},unsubscribed\n", encoding="utf-8")
    import_csv(sessions, path, load_topics(db_settings.content_dir), db_settings.secret_key,
               Options(now=datetime.now(UTC)))
    answer = client.post(f"/u/{token}/undo", data={"undo": proof, "csrf": csrf})
    assert answer.status_code == 409 and "30" in answer.text
    with sessions() as session:
        assert session.get(Subscriber, person.id).status == "unsubscribed"


def test_undo_works_for_thirty_minutes_and_not_after(web, sessions, db_settings, tmp_path, monkeypatch):
    client, campaign_id = web
    offset = tmp_path / "clock-offset"
    monkeypatch.setenv(OFFSET_FILE_ENV, str(offset))
    late, in_time = people(sessions)[2:4]
    signer = Signer.from_settings(db_settings)
    for person, minutes, status in ((in_time, 29, "confirmed"), (late, 31, "unsubscribed")):
        offset.write_text("0", encoding="ascii")
        token = signer.sign("unsubscribe", person.id, person.link_key, campaign_id)
        proof = undo_proof(_unsubscribe_page(client, db_settings.secret_key, token).text)
        offset.write_text(str(minutes * 60), encoding="ascii")
        answer = client.post(f"/u/{token}/undo", data={"undo": proof, "csrf": csrf_token(db_settings.secret_key, token)})
        assert answer.status_code == (200 if status == "confirmed" else 409)
        with sessions() as session:
            assert session.get(Subscriber, person.id).status == status
