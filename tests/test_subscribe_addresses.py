"""The subscribe form and internationalised addresses, through the real web app and a real SMTP server:
a local part the configured server cannot deliver to is refused at once, in the page's language, with
the form kept; an IDN domain, or a server that offers SMTPUTF8, gets the usual answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servers import free_port
from smtp_faults import ScriptedSink
from test_subscribe import form_fields

from foundation.settings import PROJECT_ROOT
from subscribers import store
from web.app import create_app
from worker.delivery import smtp
from worker.rendering.i18n import load_catalogues

UNICODE_LOCAL_PART = "ștefan.țepeș@exemplu.ro"


@pytest.fixture(autouse=True)
def fresh_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smtp, "_smtputf8_answers", {})


def client_for(db_settings, redis_server, broker, smtp_url: str) -> TestClient:
    broker.flushdb()  # rate-limit counters of earlier tests
    return TestClient(create_app(replace(db_settings, redis_url=redis_server.url, smtp_url=smtp_url)))


def ask(client: TestClient, language: str, email: str):
    page = client.get(f"/subscribe?lang={language}").text
    return client.post(f"/subscribe?lang={language}",
                       data=form_fields(page) | {"language": language, "email": email, "name": "Ștefan Țepeș"})


def words(language: str, key: str) -> str:
    return load_catalogues(PROJECT_ROOT / "templates")[language].strings["web"][key]


@pytest.mark.parametrize("language", ["ro", "en"])
def test_a_local_part_the_server_cannot_take_is_refused_on_the_form(db_settings, redis_server, broker, sessions,
                                                                    tmp_path: Path, language):
    with ScriptedSink(tmp_path / "outbox", smtputf8=False) as sink:
        client = client_for(db_settings, redis_server, broker, sink.url)
        answers = [ask(client, language, UNICODE_LOCAL_PART) for _ in range(3)]
        assert sink.handler.connections == 1, "the server is asked once, not per post"
    for answer in answers:
        assert answer.status_code == 422
        assert words(language, "error_email_smtputf8") in answer.text
        assert f'value="{UNICODE_LOCAL_PART}"' in answer.text and 'value="Ștefan Țepeș"' in answer.text
    with sessions() as session:
        assert store.find(session, UNICODE_LOCAL_PART) is None


def test_when_the_server_cannot_be_reached_the_form_does_not_pretend(db_settings, redis_server, broker, sessions):
    client = client_for(db_settings, redis_server, broker, f"smtp://127.0.0.1:{free_port()}?security=none")
    answer = ask(client, "en", UNICODE_LOCAL_PART)
    assert answer.status_code == 422 and words("en", "error_email_smtputf8") in answer.text


def test_an_idn_domain_or_a_server_with_smtputf8_gets_the_usual_answer(db_settings, redis_server, broker, sessions,
                                                                       tmp_path: Path):
    with ScriptedSink(tmp_path / "without", smtputf8=False) as without, ScriptedSink(tmp_path / "with") as offering:
        idn = ask(client_for(db_settings, redis_server, broker, without.url), "ro", "ion@bucurești.example.org")
        assert without.handler.connections == 0, "an ASCII local part needs no question"
        utf8 = ask(client_for(db_settings, redis_server, broker, offering.url), "ro", UNICODE_LOCAL_PART)
    for answer in (idn, utf8):
        assert answer.status_code == 200 and words("ro", "subscribe_sent_title") in answer.text
    with sessions() as session:  # stored as email_validator writes them: Unicode, converted only at the SMTP edge
        assert store.find(session, "ion@bucurești.example.org").status == "pending"
        assert store.find(session, UNICODE_LOCAL_PART).status == "pending"
