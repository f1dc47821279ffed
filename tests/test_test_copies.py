"""`herald send --test-to`: what a colleague's test copy says, where its links lead, and one clear line
when the mail server cannot be used.

The command runs through typer's CliRunner on a real database (SQLite and PostgreSQL where a person is
involved), against a real SMTP sink, a closed port, or a sink spoken to with the wrong TLS setting; the
copies' links are opened in the real web app. A worker subprocess (tests/engine.py) shows that the engine
keeps a TLS mismatch the server's problem: nobody bounces.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
import socket
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from engine import NEWSLETTER as ENGINE_NEWSLETTER
from engine import running_engine, seed
from fastapi.testclient import TestClient
from smtp_faults import ScriptedSink
from sqlalchemy import select
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT, Settings
from foundation.smtp_url import parse_smtp_url
from foundation.tables import Base
from subscribers import store
from subscribers.models import Subscriber
from web.app import create_app
from worker.cli import app
from worker.delivery.smtp import SmtpSender
from worker.rendering.i18n import load_catalogues
from worker.rendering.render import EDITIONS

NEWSLETTER = PROJECT_ROOT / "content" / "newsletters" / "2027-01-uia-transfer-networks"
EVENT = PROJECT_ROOT / "content" / "events" / "capacities-transnational-alliance-webinar"
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nhello\r\n"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no person is involved


@pytest.fixture
def herald(db_settings: Settings):
    """`herald …` in-process on the test's database."""
    env = {"COLUMNS": "80", "HERALD_OUTBOX_DIR": str(db_settings.outbox_dir),
           "HERALD_CONTENT_DIR": str(db_settings.content_dir)}

    def run(*args: str, **extra_env: str):
        return CliRunner().invoke(app, list(args), env={**env, **extra_env})

    return run


@pytest.fixture
def sink(tmp_path: Path):
    with ScriptedSink(tmp_path / "sink") as running:
        yield running


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- a test copy's links: a page that says so, and nothing changed -------------------------------

def received(folder: Path) -> dict[str, EmailMessage]:
    """The sink's messages by their one recipient."""
    messages = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(folder.glob("*.eml"))]
    return {message["To"].addresses[0].addr_spec: message for message in messages}


def herald_links(message: EmailMessage, base_url: str) -> set[str]:
    """Every link to Herald's own pages that the copy carries: HTML, text and List-Unsubscribe."""
    body = message.get_body(("html",)).get_content() + message.get_body(("plain",)).get_content()
    found = {html.unescape(url) for url in re.findall(rf'{re.escape(base_url)}/[^\s"<>]+', body)}
    found |= set(re.findall(rf"<({re.escape(base_url)}/[^>]+)>", "".join(str(message["List-Unsubscribe"]).split())))
    return found


def store_rows(sessions) -> dict[str, list[tuple]]:
    """Every row of every table: what "changes nothing" is checked against."""
    with sessions() as session:
        return {table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
                for table in Base.metadata.sorted_tables}


def test_a_test_copy_says_so_at_its_top_and_its_links_open_a_page_that_changes_nothing(
        db_settings, sessions, herald, sink):
    seed(db_settings, 12, seed_value=3)
    with sessions() as session:
        reader = session.scalars(select(Subscriber).where(Subscriber.status == "confirmed",
                                                          Subscriber.language == "en")).first()
    result = herald("send", str(EVENT), "--message", "invitation", "--test-to", "colleague@example.org",
                    "--test-to", reader.email, HERALD_SMTP_URL=sink.url)
    assert result.exit_code == 0, result.output
    copies = received(sink.handler.outbox)
    assert set(copies) == {"colleague@example.org", reader.email}
    strings = {language: catalogue.strings for language, catalogue in load_catalogues(db_settings.templates_dir).items()}

    for address, edition in (("colleague@example.org", "both"), (reader.email, "en")):
        copy = copies[address]
        notes = [strings[language]["test_copy_note"] for language in EDITIONS[edition]]
        text = copy.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert text.startswith("\n".join(notes) + "\n"), text[:300]
        page = copy.get_body(("html",)).get_content()
        body = page[page.index("<body"):]
        for language, note in zip(EDITIONS[edition], notes):
            assert re.search(rf'lang="{language}"[^>]*>{re.escape(html.escape(note, quote=False))}<', body), note
            assert body.index(html.escape(note, quote=False)) < body.index("<h1")

    client = TestClient(create_app(db_settings))
    before = store_rows(sessions)
    opened = set()
    for address, copy in copies.items():
        urls = herald_links(copy, db_settings.base_url)
        paths = {urlsplit(url).path.split("/")[1] for url in urls}
        assert paths == {"m", "u", "p", "r"}, (address, urls)
        for url in urls:
            target, page = url.removeprefix(db_settings.base_url), urlsplit(url).path.split("/")[1]
            answers = [client.get(target)]
            if page != "m":  # the message view has no form
                answers += [client.post(target, data={"List-Unsubscribe": "One-Click"}),
                            client.post(target, data={"csrf": "0" * 32, "scope": "everything", "answer": "yes",
                                                      "language": "ro", "topic": "urban-mobility"})]
            for answer in answers:
                assert answer.status_code == 200, (target, answer.status_code, answer.text[:300])
                for language in ("ro", "en"):
                    words = strings[language]["web"]
                    assert re.search(rf'<section lang="{language}">\s*<h1>{re.escape(words["test_copy_title"])}</h1>',
                                     answer.text), (target, answer.text)
                opened.add(page)
    assert opened == {"m", "u", "p", "r"}
    assert store_rows(sessions) == before, "no link of a test copy changes anything"


# ---- the mail server cannot be used: one line, a non-zero exit ----------------------------------

@SQLITE_ONLY
def test_a_mail_server_that_is_down_stops_the_test_copy_with_one_line(herald):
    port = closed_port()
    result = herald("send", str(NEWSLETTER), "--test-to", "a@example.org",
                    HERALD_SMTP_URL=f"smtp://127.0.0.1:{port}?security=none")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"No test copy was sent: Herald could not reach the mail server at 127.0.0.1:{port} (connect: "
        "ConnectionRefusedError: [Errno 111] Connection refused); check HERALD_SMTP_URL."]


@SQLITE_ONLY
@pytest.mark.parametrize(("security", "what"), [
    ("starttls", "SMTPNotSupportedError: STARTTLS extension not supported by server."),
    ("tls", "SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number"),
])
def test_a_tls_mismatch_stops_the_test_copy_with_one_line(herald, sink, security, what):
    url = sink.url.replace("security=none", f"security={security}")
    result = herald("send", str(NEWSLETTER), "--test-to", "a@example.org", HERALD_SMTP_URL=url)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"No test copy was sent: the mail server at 127.0.0.1:{sink.port} does not accept "
                           f"security={security} or the login in HERALD_SMTP_URL (connect: {what}"), line
    assert line.endswith("; check HERALD_SMTP_URL: security=starttls for port 587, tls for port 465, "
                         "none for a local relay only."), line
    assert sink.handler.accepted == 0


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_tls_mismatch_is_a_configuration_failure_not_a_temporary_one(sink, security):
    target = parse_smtp_url(sink.url.replace("security=none", f"security={security}"))
    with SmtpSender(target, timeout=5) as sender:
        outcome = sender.send("a@example.org", "b@example.org", MESSAGE)
    assert (outcome.status, outcome.code) == ("configuration", None)
    assert outcome.detail.startswith("connect: ")


def test_a_refused_login_is_a_configuration_failure(sink):
    """The sink offers no AUTH: a user name in HERALD_SMTP_URL cannot log in, whatever the recipient."""
    target = parse_smtp_url(sink.url.replace("smtp://", "smtp://news:secret@"))
    with SmtpSender(target, timeout=5) as sender:
        outcome = sender.send("a@example.org", "b@example.org", MESSAGE)
    assert outcome.status == "configuration" and "AUTH" in outcome.detail, outcome


def test_the_engine_pauses_on_a_tls_mismatch_and_bounces_nobody(db_settings, redis_server, tmp_path):
    seed(db_settings, 24, seed_value=5)
    with running_engine(db_settings, redis_server.url, tmp_path, HERALD_PAUSE_AFTER_FAILURES="5") as engine:
        engine.env["HERALD_SMTP_URL"] = engine.sink.url.replace("security=none", "security=tls")
        expected = engine.mailable()
        engine.start_worker(concurrency=1)
        campaign_id = engine.send(ENGINE_NEWSLETTER, "--segment", "all-subscribers")
        paused = engine.wait_state(campaign_id, "paused")
        assert "SSLError" in paused.reason and "HERALD_SMTP_URL" in paused.reason, paused.reason
        counts = engine.counts(campaign_id)
        assert counts["bounced"] == counts["failed"] == counts["sent"] == 0, counts
        with engine.sessions() as session:
            for person in expected.values():
                assert store.find(session, person.email).status == "confirmed"
                assert not store.is_suppressed(session, db_settings.secret_key, person.email)
