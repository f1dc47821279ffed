"""Whatever a spreadsheet holds in a name, the person gets their mail, addressed by exactly the name stored.

A name or organisation of any Unicode, up to 10,000 characters, with control characters, quotes and
encoded-word look-alikes, goes through the real importer, the campaign engine's batch task (in this
process, over real SMTP to the outbox sink) and back through the `email` package's parser (read as
RFC 2047 6.2 says, tests/headers.py). Every header line fits in 78 characters, but for one that holds
nothing but a URL longer than that (RFC 2369 forbids folding inside it). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import itertools
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from conftest import parse_eml
from headers import display_name, header_block, long_encoded_words, overlong
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from subscribers.importer import Options, import_csv
from subscribers.models import Subscriber
from subscribers.topics import load_topics
from worker.campaigns import ledger, tasks
from worker.delivery.sink import start_sink

ITEM = "newsletters/2027-01-uia-transfer-networks"
# What people paste into spreadsheets, and what an attacker would: every kind of character, often.
TRICKY = st.sampled_from(["\x00", "\r\n", "\t", '"', "\\", "=?utf-8?q?Admin=0D=0ABcc:_x@example.org?=", "=?",
                          "?=", "\u202e", "\u2066", "ș", "ţ", " ", "<", ">", ",", ";", ":", "@", "\x85", "\ufeff"])
TEXT = st.lists(st.one_of(st.text(min_size=1, max_size=40), TRICKY), max_size=30).map("".join)
LONG = st.builds(lambda part, times: part * times, st.text(min_size=1, max_size=5), st.integers(1000, 2000))
_numbers = itertools.count()


@pytest.fixture
def engine_in_process(db_settings, redis_server, tmp_path, monkeypatch):
    """The batch task's resources on this test's database, Redis and an outbox sink."""
    with start_sink(tmp_path / "outbox") as sink:
        for name, value in {"HERALD_DATABASE_URL": db_settings.database_url, "HERALD_REDIS_URL": redis_server.url,
                            "HERALD_SMTP_URL": sink.url, "HERALD_OUTBOX_DIR": str(tmp_path / "outbox"),
                            "HERALD_BASE_URL": "https://h.example.org"}.items():
            monkeypatch.setenv(name, value)
        tasks.resources.cache_clear()
        tasks._editions.cache_clear()  # campaign ids start at 1 again in each test's database
        try:
            yield replace(db_settings, outbox_dir=tmp_path / "outbox"), tasks.resources().sessions
        finally:
            tasks.resources.cache_clear()


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(TEXT, LONG), organisation=st.one_of(TEXT, LONG))
def test_any_name_reads_back_exactly_as_stored_and_every_header_line_fits(engine_in_process, name, organisation):
    settings, sessions = engine_in_process
    address = f"person{next(_numbers)}@example.org"
    path = settings.data_dir / "names.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows([["email", "name", "organisation", "consent"], [address, name, organisation, "da"]])
    report, _ = import_csv(sessions, path, load_topics(settings.content_dir), settings.secret_key,
                           Options(now=datetime.now(UTC), consent_source="test"))
    assert report.counts["imported"] == 1, report.skipped
    with sessions() as session:
        stored = session.scalar(select(Subscriber).where(Subscriber.email == address))
        assert len(stored.name) <= 200 and len(stored.organisation) <= 300
        assert not [c for c in stored.name + stored.organisation if unicodedata.category(c) in ("Cc", "Cs") or
                    "\u202a" <= c <= "\u202e" or "\u2066" <= c <= "\u2069"], "control and bidi override characters"
        campaign = ledger.create(session, item=ITEM, message="newsletter", segment="all-subscribers",
                                    edition=None, send_at=None, origin="cli", now=datetime.now(UTC))
        session.commit()
        ids = ledger.fan_out_page(session, campaign, Subscriber.id == stored.id, datetime.now(UTC))
    tasks.send_batch(campaign.id, ids[0], ids[-1])

    with sessions() as session:
        assert ledger.counts(session, campaign.id)["sent"] == 1, "delivered, neither failed nor bounced"
    eml = max((settings.outbox_dir).glob("*.eml")).read_bytes()
    lines = header_block(eml)
    assert overlong(lines) == [] and long_encoded_words(lines) == []
    message = parse_eml(eml)
    (recipient,) = message["To"].addresses
    assert (recipient.addr_spec, display_name(message)) == (address, stored.name)
    assert len(message.get_all("To")) == 1 and message.get_all("Bcc") is None

