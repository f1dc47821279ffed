"""`herald send`, `sync`, `campaigns list`, `status`, `pause|resume|cancel` as an operator runs them.

Every test runs on SQLite and PostgreSQL (`db_settings`), with subscribers seeded through the real
importer and, where mail could go out, a real SMTP sink listening: nothing is mocked.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from engine import seed
from smtp_faults import ScriptedSink
from sqlalchemy import func, select
from typer.testing import CliRunner

from foundation.db import open_store
from foundation.settings import PROJECT_ROOT, Settings
from subscribers.models import Subscriber
from subscribers.segments import segment_named, select_ids
from subscribers.tokens import Signer
from worker.authoring.content import find_items, load_item
from worker.campaigns import ledger
from worker.campaigns.models import Campaign, Delivery
from worker.cli import app
from worker.rendering.render import EDITIONS, MESSAGES, Renderer

NEWSLETTER = PROJECT_ROOT / "content" / "newsletters" / "2027-01-uia-transfer-networks"
PEOPLE = 80


@pytest.fixture
def herald(db_settings: Settings, tmp_path: Path):
    """`herald …` in-process on the test's database, with previews written under the test's outbox."""
    env = {"COLUMNS": "220", "HERALD_OUTBOX_DIR": str(db_settings.outbox_dir),
           "HERALD_CONTENT_DIR": str(db_settings.content_dir)}

    def run(*args: str, **extra_env: str):
        return CliRunner().invoke(app, list(args), env={**env, **extra_env})

    return run


@pytest.fixture
def seeded(db_settings: Settings) -> Settings:
    seed(db_settings, PEOPLE)
    return db_settings


@pytest.fixture
def sink(tmp_path: Path):
    """A real SMTP sink that stores into its own folder (not the outbox the previews go to)."""
    with ScriptedSink(tmp_path / "sink") as running:
        yield running


def received(folder: Path) -> list[EmailMessage]:
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(folder.glob("*.eml"))]


def campaign_count(settings: Settings) -> int:
    sessions = open_store(settings)
    try:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(Campaign))
    finally:
        sessions.kw["bind"].dispose()


def mailable_by_language(settings: Settings, segment: str) -> tuple[Counter[str], list[Subscriber]]:
    """The segment's mailable members per language, read with the segment's own SQL selection of ids."""
    sessions = open_store(settings)
    try:
        with sessions() as session:
            ids = list(session.scalars(select_ids(segment_named(settings.content_dir, segment))))
            people = list(session.scalars(select(Subscriber).where(Subscriber.id.in_(ids)).order_by(Subscriber.id)))
            everyone = session.scalar(select(func.count()).select_from(Subscriber))
    finally:
        sessions.kw["bind"].dispose()
    assert 0 < len(people) < everyone == PEOPLE  # the seed has pending people, whom a send must leave out
    return Counter(person.language for person in people), people


# ---- 1. dry run ---------------------------------------------------------------------------------

def test_dry_run_counts_per_language_shows_first_recipients_writes_previews_and_sends_nothing(
        seeded, herald, sink):
    by_language, people = mailable_by_language(seeded, "all-subscribers")
    assert set(by_language) == set(EDITIONS)  # every edition has readers, so each row is checked for real

    result = herald("send", str(NEWSLETTER), "--segment", "all-subscribers", "--dry-run",
                    HERALD_SMTP_URL=sink.url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "nothing sent" in out
    for language in EDITIONS:
        assert re.search(rf"│ {language}\s+│ {language}\s+│\s+{by_language[language]:,} │", out), (language, out)
    assert re.search(rf"│ all\s+│\s+│\s+{sum(by_language.values()):,} │", out), out
    for person in people[:10]:
        assert person.email in out
    assert people[10].email not in out  # only the first ten are listed

    previews = seeded.outbox_dir / "previews" / NEWSLETTER.name
    assert f"Previews: {previews}/" in out
    renderer = Renderer(seeded)
    item = load_item(NEWSLETTER)
    for edition in EDITIONS:
        for suffix in ("html", "txt", "eml"):
            assert (previews / f"newsletter.{edition}.{suffix}").stat().st_size > 0, (edition, suffix)
        eml = email.message_from_bytes((previews / f"newsletter.{edition}.eml").read_bytes(),
                                       policy=email.policy.default)
        assert eml["Subject"] == renderer.compile(item, edition, "newsletter").subject

    assert campaign_count(seeded) == 0
    assert sink.handler.connections == 0 and received(sink.handler.outbox) == []


# ---- 2. test copies -----------------------------------------------------------------------------

def test_test_copies_go_in_the_recipients_edition_with_test_copy_links_and_create_no_campaign(
        seeded, herald, sink):
    _, people = mailable_by_language(seeded, "all-subscribers")
    reader = next(person for person in people if person.language == "en")
    item = load_item(NEWSLETTER)
    renderer = Renderer(seeded)
    subjects = {edition: renderer.compile(item, edition, "newsletter").subject for edition in EDITIONS}
    assert len(set(subjects.values())) == 3  # the subject tells the editions apart

    result = herald("send", str(NEWSLETTER), "--test-to", "a@example.org", "--test-to", reader.email,
                    HERALD_SMTP_URL=sink.url)
    assert result.exit_code == 0, result.output
    assert re.search(r"a@example\.org\s+│ both\s+│ sent", result.stdout), result.stdout
    assert re.search(rf"{re.escape(reader.email)}\s+│ en\s+│ sent", result.stdout), result.stdout

    messages = received(sink.handler.outbox)
    assert len(messages) == 2 and sink.handler.accepted == 2
    by_address = {message["To"].addresses[0].addr_spec: message for message in messages}
    assert set(by_address) == {"a@example.org", reader.email}
    assert by_address["a@example.org"]["Subject"] == "[TEST] " + subjects["both"]
    assert by_address[reader.email]["Subject"] == "[TEST] " + subjects["en"]

    signer = Signer(seeded.secret_key)
    for address in ("a@example.org", reader.email):  # a subscriber's copy too: its links name nobody
        header = by_address[address]["List-Unsubscribe"]
        token = re.search(r"<https?://[^>]+/u/([^>?]+)>", header)
        assert token, header
        claims = signer.verify(token.group(1), "unsubscribe")
        assert (claims.test_copy, claims.campaign_id) == (True, None), address

    assert campaign_count(seeded) == 0


# ---- 3. refusals --------------------------------------------------------------------------------

def test_a_broken_item_is_reported_by_line_and_nothing_is_sent(seeded, herald, sink, tmp_path):
    broken = tmp_path / "newsletters" / NEWSLETTER.name
    shutil.copytree(NEWSLETTER, broken)
    meta = broken / "meta.yaml"
    text = meta.read_text(encoding="utf-8")
    meta.write_text(text + "colour: red\n", encoding="utf-8")
    line = text.count("\n") + 1

    result = herald("send", str(broken), "--segment", "all-subscribers", HERALD_SMTP_URL=sink.url)
    assert result.exit_code == 1, result.output
    assert f"{meta}:{line}: unknown field 'colour'" in result.output
    assert "Nothing was sent" in result.output
    assert campaign_count(seeded) == 0 and sink.handler.connections == 0


def test_unknown_segment_edition_message_or_time_is_refused_with_the_choices(seeded, herald, sink):
    result = herald("send", str(NEWSLETTER), "--segment", "nobody-at-all", HERALD_SMTP_URL=sink.url)
    assert result.exit_code != 0
    assert "no segment 'nobody-at-all'" in result.output
    assert "all-subscribers" in result.output and "partners-abroad" in result.output

    result = herald("send", str(NEWSLETTER), "--edition", "xx", HERALD_SMTP_URL=sink.url)
    assert result.exit_code != 0
    assert "'xx' is not an edition; use ro, en, both" in result.output

    result = herald("send", str(NEWSLETTER), "--message", "reminder", HERALD_SMTP_URL=sink.url)
    assert result.exit_code != 0
    assert "no 'reminder' message; use newsletter" in result.output

    result = herald("send", str(NEWSLETTER), "--at", "next tuesday", HERALD_SMTP_URL=sink.url)
    assert result.exit_code != 0
    assert "--at 'next tuesday' is not a time; write it like 2027-01-14 10:00" in result.output

    assert campaign_count(seeded) == 0 and sink.handler.connections == 0


# ---- 4. a scheduled campaign through its life ---------------------------------------------------

def test_a_scheduled_campaign_is_listed_shown_and_cancelled_once(seeded, herald):
    result = herald("send", str(NEWSLETTER), "--at", "2099-01-01 10:00", "--yes")
    assert result.exit_code == 0, result.output
    created = re.search(r"Campaign (\d+): newsletter of .*2027-01-uia-transfer-networks to 'all-subscribers', "
                        r"at 2099-01-01 10:00 Europe/Bucharest\.", result.stdout)
    assert created, result.stdout  # in the item's zone; stored as 08:00 UTC (Bucharest in winter)
    campaign_id = int(created.group(1))

    sessions = open_store(seeded)
    try:
        with sessions() as session:
            campaign = session.get(Campaign, campaign_id)
            assert (campaign.state, campaign.origin, campaign.segment, campaign.edition) == (
                "scheduled", "cli", "all-subscribers", None)
            assert campaign.send_at == datetime(2099, 1, 1, 8, 0, tzinfo=UTC)
            assert campaign.item == "newsletters/2027-01-uia-transfer-networks"
            assert session.scalar(select(func.count()).select_from(Delivery)) == 0  # nothing fanned out
    finally:
        sessions.kw["bind"].dispose()

    listed = herald("campaigns", "list")
    assert listed.exit_code == 0, listed.output
    assert re.search(rf"│\s+{campaign_id} │ newsletters/2027-01-uia-transfer-networks\s+│ newsletter\s+│ "
                     rf"all-subscribers\s+│ scheduled\s+│ 2099-01-01 08:00\s+│", listed.stdout), listed.stdout

    shown = herald("status", str(campaign_id), "--no-follow")
    assert shown.exit_code == 0, shown.output
    assert f"Campaign {campaign_id} is scheduled: 0 of 0 sent" in shown.stdout

    paused = herald("pause", str(campaign_id))  # a campaign that has not started cannot pause
    assert paused.exit_code != 0
    assert f"campaign {campaign_id} is scheduled; it can move to cancelled, missed, sending, not paused" \
        in paused.output

    cancelled = herald("cancel", str(campaign_id))
    assert cancelled.exit_code == 0, cancelled.output
    assert f"Campaign {campaign_id} is cancelled." in cancelled.stdout
    shown = herald("status", str(campaign_id), "--no-follow")
    assert f"Campaign {campaign_id} is cancelled" in shown.stdout and "Why: cancelled by the operator" in shown.stdout

    again = herald("cancel", str(campaign_id))
    assert again.exit_code != 0
    assert f"campaign {campaign_id} was cancelled on " in again.output and "there is nothing to cancel" in again.output

    missing = herald("pause", "999")
    assert missing.exit_code != 0 and "no campaign 999" in missing.output
    missing = herald("status", "999", "--no-follow")
    assert missing.exit_code != 0 and "No campaign 999" in missing.output

    sessions = open_store(seeded)
    try:
        with sessions() as session:
            assert session.get(Campaign, campaign_id).state == "cancelled"
            assert session.scalar(select(func.count()).select_from(Campaign)) == 1
    finally:
        sessions.kw["bind"].dispose()


# ---- 5. sync ------------------------------------------------------------------------------------

def test_sync_schedules_every_send_at_of_a_ready_item_once(seeded, herald, tmp_path):
    content = tmp_path / "content"
    shutil.copytree(seeded.content_dir, content)
    scheduled = {}
    for folder in find_items(content):
        meta = folder / "meta.yaml"
        meta.write_text(meta.read_text(encoding="utf-8") + "status: ready\n", encoding="utf-8")
        item = load_item(folder)
        if item.meta.send_at is not None:
            key = ledger.item_key(item, content)
            scheduled[key] = (MESSAGES[item.kind][0], item.meta.aware(item.meta.send_at).astimezone(UTC),
                              item.meta.audience)
    assert len(scheduled) >= 2

    first = herald("sync", HERALD_CONTENT_DIR=str(content))
    assert first.exit_code == 0, first.output
    lines = [line for line in first.stdout.splitlines() if line.startswith("Campaign ")]
    assert len(lines) == len(scheduled), first.stdout
    sessions = open_store(seeded)
    try:
        with sessions() as session:
            rows = {campaign.item: campaign for campaign in session.scalars(select(Campaign))}
    finally:
        sessions.kw["bind"].dispose()
    assert set(rows) == set(scheduled)
    for key, (message, send_at, audience) in scheduled.items():
        campaign = rows[key]
        assert (campaign.state, campaign.origin, campaign.message, campaign.send_at, campaign.segment) == (
            "scheduled", "schedule", message, send_at, audience)
        assert (f"Campaign {campaign.id}: {message} of {key} scheduled for {send_at:%Y-%m-%d %H:%M} UTC "
                f"to '{audience}'") in lines
    assert "Every ready item's send_at already has its campaign." not in first.stdout

    second = herald("sync", HERALD_CONTENT_DIR=str(content))
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == "Every ready item's send_at already has its campaign."
    assert campaign_count(seeded) == len(scheduled)


# ---- 6. what must never be sent ------------------------------------------------------------------

def test_an_item_outside_the_content_folder_is_refused_in_one_line_whatever_the_mode(seeded, herald, sink, tmp_path):
    draft = tmp_path / "drafts" / NEWSLETTER.name
    shutil.copytree(NEWSLETTER, draft)
    for mode in ([], ["--dry-run"], ["--test-to", "a@example.org"]):
        result = herald("send", str(draft), *mode, HERALD_SMTP_URL=sink.url)
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (mode, result.output)
        said = " ".join(result.output.split())
        assert "is outside the content folder" in said and "HERALD_CONTENT_DIR" in said, said
        assert "Traceback" not in result.output
    assert campaign_count(seeded) == 0 and sink.handler.connections == 0


def test_a_public_plain_http_base_url_refuses_real_mail_but_not_a_dry_run(seeded, herald, sink):
    """RFC 8058: the one-click unsubscribe link in List-Unsubscribe must be https."""
    public_http = {"HERALD_BASE_URL": "http://news.example.org", "HERALD_SMTP_URL": sink.url}
    for mode in ([], ["--test-to", "a@example.org"]):
        result = herald("send", str(NEWSLETTER), *mode, **public_http)
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (mode, result.output)
        said = " ".join(result.output.split())
        assert "HERALD_BASE_URL=http://news.example.org is not https" in said, said
        assert "Set HERALD_BASE_URL to the https:// address" in said
    assert campaign_count(seeded) == 0 and sink.handler.connections == 0
    assert herald("send", str(NEWSLETTER), "--dry-run", **public_http).exit_code == 0
    sent = herald("send", str(NEWSLETTER), "--test-to", "a@example.org", HERALD_BASE_URL="https://news.example.org",
                  HERALD_SMTP_URL=sink.url)
    assert sent.exit_code == 0 and sink.handler.accepted == 1, sent.output
