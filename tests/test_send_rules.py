"""One campaign per (item, message, audience), on SQLite and PostgreSQL, through the real `herald` command and
the real API: a manual send beside a scheduled `send_at` is refused or takes the schedule over, beat's sync never
adds a second campaign, only `status: ready` items are scheduled by themselves, and `--again` says why.

Campaigns that start now are enqueued into a real Redis (the `broker` fixture); no worker runs here, so what
matters is what the store holds and what waits in the queue.
"""

from __future__ import annotations

import os
import pty
import re
import select as polling
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from broker import enqueued
from engine import seed
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from foundation.db import open_store
from foundation.problems import ContentInvalid
from foundation.settings import PROJECT_ROOT, Settings, load_settings
from subscribers.models import Subscriber
from web.app import create_app
from worker.authoring.content import load_item
from worker.campaigns import control, ledger
from worker.campaigns.models import Campaign, Delivery
from worker.cli import app
from worker.events import lifecycle
from worker.rendering.render import Renderer

NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"
EVENT = "events/di4c-partners-meeting-botosani"
TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MOVE_HINT = 'move it with --at "YYYY-MM-DD HH:MM", send it now with --now, or send another one on purpose with ' \
            '--again "why".'


@pytest.fixture
def content(db_settings: Settings, tmp_path: Path) -> Path:
    """An editable copy of the shipped content, with 40 people in the store."""
    folder = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", folder)
    seed(replace(db_settings, content_dir=folder), 40, seed_value=7)
    return folder


@pytest.fixture
def herald(db_settings: Settings, content: Path, broker):
    """`herald …` in-process on the test's database and content copy; the broker is the test's Redis."""
    env = {"COLUMNS": "250", "HERALD_CONTENT_DIR": str(content), "HERALD_OUTBOX_DIR": str(db_settings.outbox_dir)}

    def run(*args: str):
        return CliRunner().invoke(app, list(args), env=env)

    return run


def ready(content: Path, item: str, send_at: str | None = None) -> None:
    """`status: ready` (and a new send_at) in the item's meta.yaml, as an editor writes it."""
    meta = content / item / "meta.yaml"
    lines = [line for line in meta.read_text(encoding="utf-8").splitlines()
             if not (send_at and line.startswith("send_at:"))]
    lines += ["status: ready"] + ([f"send_at: {send_at}"] if send_at else [])
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")


def rows(db_settings: Settings) -> list[Campaign]:
    sessions = open_store(db_settings)
    try:
        with sessions() as session:
            return list(session.scalars(select(Campaign).order_by(Campaign.id)))
    finally:
        sessions.kw["bind"].dispose()


def said(result) -> str:
    """What a refused command printed, on one line as the operator reads it."""
    return " ".join(result.output.split())


# ---- a manual send beside a scheduled send_at ------------------------------------------------------

def test_send_beside_a_scheduled_send_at_is_refused_with_the_campaign_its_time_and_the_ways_out(
        herald, content, db_settings, broker):
    ready(content, NEWSLETTER)
    assert herald("sync").exit_code == 0
    [scheduled] = rows(db_settings)
    assert (scheduled.state, scheduled.origin) == ("scheduled", "schedule")

    refused = herald("send", str(content / NEWSLETTER), "--yes")
    assert refused.exit_code == 2, refused.output
    assert said(refused) == (f"{NEWSLETTER} already has campaign {scheduled.id} for its newsletter to "
                             f"'all-subscribers', scheduled for 2027-01-14 10:00 Europe/Bucharest: {MOVE_HINT}")
    assert [c.id for c in rows(db_settings)] == [scheduled.id] and enqueued(broker) == []


def test_send_now_takes_the_schedule_over_and_beat_leaves_it_alone_after(herald, content, db_settings, broker):
    ready(content, NEWSLETTER)
    herald("sync")
    [scheduled] = rows(db_settings)

    now = herald("send", str(content / NEWSLETTER), "--now", "--yes")
    assert now.exit_code == 0, now.output
    assert f"Campaign {scheduled.id}: newsletter of " in now.stdout and "beat's sync leaves it alone" in now.stdout
    [taken] = rows(db_settings)
    assert (taken.id, taken.state, taken.origin, taken.send_at) == (scheduled.id, "sending", "cli", None)
    assert enqueued(broker) == [("herald.start", [scheduled.id], {})]

    ready(content, NEWSLETTER, send_at="2027-01-20 09:00")  # the editor moves send_at: the campaign is the operator's
    synced = herald("sync")
    assert synced.exit_code == 0 and "Every ready item's send_at already has its campaign." in synced.stdout
    assert [(c.id, c.state, c.send_at) for c in rows(db_settings)] == [(scheduled.id, "sending", None)]


def test_send_at_moves_the_scheduled_campaign_and_meta_no_longer_moves_it(herald, content, db_settings, broker):
    ready(content, NEWSLETTER)
    herald("sync")
    [scheduled] = rows(db_settings)

    moved = herald("send", str(content / NEWSLETTER), "--at", "2027-01-15 11:30", "--yes")
    assert moved.exit_code == 0, moved.output
    assert f"Campaign {scheduled.id}: newsletter of" in moved.stdout
    assert "at 2027-01-15 11:30 Europe/Bucharest" in moved.stdout
    ready(content, NEWSLETTER, send_at="2027-01-20 09:00")
    herald("sync")
    [campaign] = rows(db_settings)
    assert (campaign.id, campaign.state, campaign.origin) == (scheduled.id, "scheduled", "cli")
    assert campaign.send_at == datetime(2027, 1, 15, 9, 30, tzinfo=UTC)  # 11:30 in Bucharest, not meta's send_at
    assert enqueued(broker) == []


def test_beat_adds_no_second_campaign_beside_a_manual_send(herald, content, db_settings, broker):
    sent = herald("send", str(content / NEWSLETTER), "--yes")
    assert sent.exit_code == 0, sent.output
    ready(content, NEWSLETTER)  # the editor marks it ready afterwards, send_at still ahead

    synced = herald("sync")
    assert synced.exit_code == 0, synced.output
    assert [(c.origin, c.state) for c in rows(db_settings)] == [("cli", "sending")]


def test_a_sent_item_is_sent_again_only_on_purpose_and_the_reason_is_shown_everywhere(
        herald, content, db_settings, broker, sessions):
    first = herald("send", str(content / NEWSLETTER), "--yes")
    [campaign] = rows(db_settings)
    finished = datetime(2027, 1, 14, 8, 5, tzinfo=UTC)
    with sessions() as session:  # the engine's part: every row sent, the campaign finished
        stored = session.get(Campaign, campaign.id)
        stored.fanout_done = True
        session.commit()
        assert ledger.finish_if_done(session, campaign.id, finished)

    again = herald("send", str(content / NEWSLETTER), "--yes")
    assert again.exit_code == 2
    assert said(again) == (f"{NEWSLETTER} already has campaign {campaign.id} for its newsletter to 'all-subscribers', "
                           "sent on 2027-01-14 10:05 Europe/Bucharest: send another one on purpose with "
                           '--again "why".')
    blank = herald("send", str(content / NEWSLETTER), "--again", " ", "--yes")
    assert blank.exit_code == 2 and "say why this audience gets the message again" in said(blank)

    repeated = herald("send", str(content / NEWSLETTER), "--again", "the first went out with a broken link", "--yes")
    assert repeated.exit_code == 0, repeated.output
    assert "Sent again on purpose: the first went out with a broken link." in said(repeated)
    second = rows(db_settings)[-1]
    assert (second.id, second.repeat_reason) == (campaign.id + 1, "the first went out with a broken link")
    assert rows(db_settings)[0].repeat_reason is None and first.exit_code == 0

    shown = herald("status", str(second.id), "--no-follow")
    assert "Sent again on purpose: the first went out with a broken link" in shown.stdout
    listed = herald("campaigns", "list")
    assert "the first went out with a broken link" in listed.stdout
    with TestClient(create_app(replace(db_settings, api_token=TOKEN, content_dir=content))) as client:
        read = client.get(f"/api/campaigns/{second.id}", headers=AUTH).json()
    assert read["repeat_reason"] == "the first went out with a broken link"


# ---- what beat may schedule by itself ----------------------------------------------------------------

def test_only_ready_items_are_scheduled_and_a_draft_is_named(herald, content, db_settings):
    first = herald("sync")
    assert first.exit_code == 0, first.output
    assert rows(db_settings) == []  # the shipped items are drafts: nothing goes out because a folder exists
    assert ("Not scheduled, as their status is draft: events/capacities-transnational-alliance-webinar, "
            "events/di4c-partners-meeting-botosani, events/eui-online-qa-session, newsletters/2027-01-uia-transfer-"
            "networks, newsletters/2027-02-capacities-cinema.") in said(first)

    ready(content, EVENT)
    second = herald("sync")
    [campaign] = rows(db_settings)
    assert (campaign.item, campaign.message, campaign.state) == (EVENT, "invitation", "scheduled")
    assert "events/di4c-partners-meeting-botosani," not in said(second)


def test_the_old_status_scheduled_is_refused_with_the_new_word(content):
    meta = content / EVENT / "meta.yaml"
    meta.write_text(meta.read_text(encoding="utf-8") + "status: scheduled\n", encoding="utf-8")
    with pytest.raises(ContentInvalid) as caught:
        load_item(content / EVENT)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (meta, meta.read_text(encoding="utf-8").count("\n"))
    assert ("'scheduled' is no longer a status: write status: ready to let Herald send it at send_at by itself, or "
            "status: draft (the default) to send it only with `herald send`") in problem.message


# ---- reminders and the follow-up -----------------------------------------------------------------------

def invite(db_settings: Settings, content: Path, sessions) -> list[Campaign]:
    """The invitation, as sent: its deliveries recorded, revision 0, the reminders scheduled."""
    now = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)
    with sessions() as session:
        invitation = ledger.create(session, item=EVENT, message="invitation", segment="all-subscribers",
                                      edition=None, send_at=None, origin="cli", now=now)
        invitation.revision = lifecycle.revision_for(session, invitation, load_item(content / EVENT), now)
        people = list(session.scalars(select(Subscriber.id).where(Subscriber.status == "confirmed")))
        session.add_all(Delivery(campaign_id=invitation.id, subscriber_id=person, state="sent", attempts=1, error="")
                        for person in people)
        session.commit()
        return list(session.scalars(select(Campaign).where(Campaign.message == "reminder")
                                    .order_by(Campaign.send_at)))


def test_a_manual_reminder_takes_over_the_next_one_and_a_sent_one_needs_again(
        herald, content, db_settings, broker, sessions):
    week, day = invite(db_settings, content, sessions)

    plain = herald("send", str(content / EVENT), "--message", "reminder", "--yes")
    assert plain.exit_code == 2
    assert said(plain) == (f"{EVENT} already has campaign {week.id} for its reminder to 'reminder', scheduled for "
                           f"2027-02-16 09:00 Europe/Bucharest: {MOVE_HINT}")

    now = herald("send", str(content / EVENT), "--message", "reminder", "--now", "--yes")
    assert now.exit_code == 0, now.output
    with sessions() as session:
        taken = session.get(Campaign, week.id)
        assert (taken.state, taken.origin) == ("sending", "cli")
        meta = content / EVENT / "meta.yaml"  # the event moves: the schedule follows, but not the taken reminder
        meta.write_text(meta.read_text(encoding="utf-8").replace("start: 2027-02-23 09:00", "start: 2027-02-23 10:00"),
                        encoding="utf-8")
    herald("sync")
    with sessions() as session:
        assert (session.get(Campaign, week.id).state, session.get(Campaign, week.id).send_at) == ("sending", None)
        assert session.get(Campaign, day.id).send_at == datetime(2027, 2, 22, 8, 0, tzinfo=UTC)
        assert session.scalar(select(func.count()).select_from(Campaign).where(Campaign.message == "reminder")) == 2
        for campaign in (session.get(Campaign, week.id), session.get(Campaign, day.id)):
            if campaign.state == "scheduled":
                ledger.move(campaign, "sending", datetime(2027, 2, 22, 8, 0, tzinfo=UTC))
            campaign.fanout_done = True
        session.commit()
        for campaign_id in (week.id, day.id):
            ledger.finish_if_done(session, campaign_id, datetime(2027, 2, 22, 8, 1, tzinfo=UTC))

    over = herald("send", str(content / EVENT), "--message", "reminder", "--now", "--yes")
    assert over.exit_code == 2
    assert said(over) == (f"{EVENT} already has campaign {day.id} for its reminder to 'reminder', sent on "
                          '2027-02-22 10:01 Europe/Bucharest: send another one on purpose with --again "why".')
    extra = herald("send", str(content / EVENT), "--message", "reminder", "--again", "the room changed", "--yes")
    assert extra.exit_code == 0, extra.output
    assert rows(db_settings)[-1].repeat_reason == "the room changed"


def test_an_invitation_already_sent_is_not_sent_again_by_a_plain_send(herald, content, db_settings, sessions):
    invite(db_settings, content, sessions)
    with sessions() as session:
        invitation = session.scalar(select(Campaign).where(Campaign.message == "invitation"))
        invitation.fanout_done = True
        session.commit()
        ledger.finish_if_done(session, invitation.id, datetime(2027, 1, 20, 9, 5, tzinfo=UTC))
    result = herald("send", str(content / EVENT), "--yes")  # nothing changed: the default message is the invitation
    assert result.exit_code == 2
    assert said(result) == (f"{EVENT} already has campaign {invitation.id} for its invitation to 'all-subscribers', "
                            "sent on 2027-01-20 11:05 Europe/Bucharest: send another one on purpose with "
                            '--again "why".')


# ---- the API ------------------------------------------------------------------------------------------------

def test_the_api_refuses_a_second_campaign_with_409_and_the_same_facts(db_settings, content, broker, sessions):
    ready(content, NEWSLETTER)
    settings = replace(db_settings, api_token=TOKEN, content_dir=content)
    with TestClient(create_app(settings)) as client:
        created = client.post("/api/campaigns", json={"item": NEWSLETTER}, headers=AUTH)
        assert created.status_code == 201, created.text
        number = created.json()["id"]
        second = client.post("/api/campaigns", json={"item": NEWSLETTER}, headers=AUTH)
        assert second.status_code == 409
        started = datetime.fromisoformat(created.json()["started_at"])
        assert second.json() == {"detail": (
            f"{NEWSLETTER} already has campaign {number} for its newsletter to 'all-subscribers', sending since "
            f"{started.astimezone(load_item(content / NEWSLETTER).meta.zone):%Y-%m-%d %H:%M} Europe/Bucharest: "
            f"follow it with GET /api/campaigns/{number}, or send another one on purpose with \"again\": \"why\".")}
        both = client.post("/api/campaigns", json={"item": NEWSLETTER, "now": True,
                                                   "send_at": "2099-01-01T10:00:00+00:00"}, headers=AUTH)
        assert both.status_code == 422 and both.json() == {"detail": 'give send_at or "now": true, not both'}
        long = client.post("/api/campaigns", json={"item": NEWSLETTER, "again": "x" * 501}, headers=AUTH)
        assert long.status_code == 422
        repeated = client.post("/api/campaigns", json={"item": NEWSLETTER, "again": "a partner asked"}, headers=AUTH)
        assert repeated.status_code == 201, repeated.text
        assert repeated.json()["repeat_reason"] == "a partner asked"
    with sessions() as session:  # beat's sync, after all that, adds nothing
        assert control.sync(session, settings).changed == []
    assert [(c.origin, c.repeat_reason) for c in rows(db_settings)] == [("api", None), ("api", "a partner asked")]
    assert enqueued(broker) == [("herald.start", [number], {}), ("herald.start", [number + 1], {})]


def test_the_api_takes_a_scheduled_campaign_over_with_send_at_or_now(db_settings, content, broker):
    ready(content, NEWSLETTER)
    settings = replace(db_settings, api_token=TOKEN, content_dir=content)
    with TestClient(create_app(settings)) as client:
        with open_store(settings)() as session:
            [scheduled] = control.sync(session, settings).changed
            number = scheduled.id
        plain = client.post("/api/campaigns", json={"item": NEWSLETTER}, headers=AUTH)
        assert plain.status_code == 409
        assert plain.json()["detail"].endswith(
            'scheduled for 2027-01-14 10:00 Europe/Bucharest: move it with a later "send_at", send it now with '
            '"now": true, or send another one on purpose with "again": "why".')
        moved = client.post("/api/campaigns", json={"item": NEWSLETTER, "send_at": "2099-01-02T10:00:00+00:00"},
                            headers=AUTH)
        assert moved.status_code == 201 and (moved.json()["id"], moved.json()["origin"]) == (number, "api")
        assert datetime.fromisoformat(moved.json()["send_at"]) == datetime(2099, 1, 2, 10, 0, tzinfo=UTC)
        now = client.post("/api/campaigns", json={"item": NEWSLETTER, "now": True}, headers=AUTH)
        assert now.status_code == 201 and (now.json()["id"], now.json()["state"]) == (number, "sending")
    assert len(rows(db_settings)) == 1
    assert enqueued(broker) == [("herald.start", [number], {})]


# ---- asking first ---------------------------------------------------------------------------------------------

def test_without_a_terminal_and_without_yes_nothing_is_recorded(herald, content, db_settings, broker):
    result = herald("send", str(content / NEWSLETTER))
    assert result.exit_code != 0
    assert said(result) == ("Nothing was recorded: Herald asks before sending, and standard input is not a terminal; "
                            "add --yes to send without the question.")
    assert rows(db_settings) == [] and enqueued(broker) == []


def on_a_terminal(args: list[str], env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """`herald …` with a pseudo-terminal as its standard input and output; `answer` typed at the question."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "worker.cli", *args], stdin=follower, stdout=follower,
                               stderr=follower, env=env, cwd=PROJECT_ROOT, close_fds=True)
    os.close(follower)
    output = b""
    answered = False
    while True:
        ready_to_read, _, _ = polling.select([leader], [], [], 60)
        assert ready_to_read, f"no answer from herald: {output.decode(errors='replace')}"
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"Send it?" in output:
            os.write(leader, answer)
            answered = True
    os.close(leader)
    return process.wait(30), re.sub(r"\x1b\[[0-9;]*m", "", output.decode(errors="replace").replace("\r", ""))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the question itself touches no store
def test_on_a_terminal_it_shows_subjects_segment_counts_and_time_then_asks(db_settings, content, redis_server):
    env = dict(os.environ, COLUMNS="250", HERALD_CONTENT_DIR=str(content), HERALD_DATABASE_URL=db_settings.database_url,
               HERALD_REDIS_URL=redis_server.url, HERALD_OUTBOX_DIR=str(db_settings.outbox_dir))
    item = load_item(content / NEWSLETTER)
    renderer = Renderer(db_settings)
    subjects = {edition: renderer.compile(item, edition, "newsletter").subject for edition in ("ro", "en", "both")}

    code, shown = on_a_terminal(["send", str(content / NEWSLETTER), "--at", "2099-03-01 09:15"], env, b"n\n")
    assert code == 1, shown
    assert "About to send: newsletter of 2027-01-uia-transfer-networks to 'all-subscribers'" in shown
    for edition, subject in subjects.items():
        assert re.search(rf"│ {edition}\s+│ {edition}\s+│\s+\d+ │ {re.escape(subject)}\s+│", shown), (edition, shown)
    assert "When: 2099-03-01 09:15 Europe/Bucharest" in shown
    assert "Nothing was recorded." in shown and rows(db_settings) == []

    code, shown = on_a_terminal(["send", str(content / NEWSLETTER), "--at", "2099-03-01 09:15"], env, b"y\n")
    assert code == 0, shown
    [campaign] = rows(db_settings)
    assert f"Campaign {campaign.id}: newsletter of" in shown and campaign.send_at == datetime(2099, 3, 1, 7, 15,
                                                                                              tzinfo=UTC)


def test_the_dry_run_shows_when_and_the_subjects_and_what_a_real_send_would_refuse(herald, content, db_settings):
    item = load_item(content / NEWSLETTER)
    subject = Renderer(db_settings).compile(item, "en", "newsletter").subject
    dry = herald("send", str(content / NEWSLETTER), "--dry-run", "--at", "2099-03-01 09:15")
    assert dry.exit_code == 0, dry.output
    assert "When: 2099-03-01 09:15 Europe/Bucharest" in dry.stdout and subject in dry.stdout
    assert ("meta.yaml's send_at: 2027-01-14 10:00 Europe/Bucharest: only `herald send` sends it (status: draft; "
            "status: ready lets beat send it then)") in dry.stdout

    ready(content, NEWSLETTER)
    herald("sync")
    [scheduled] = rows(db_settings)
    refused = herald("send", str(content / NEWSLETTER), "--dry-run")
    assert refused.exit_code == 1 and "nothing sent" in refused.stdout
    assert said(refused).endswith(f"A real send would be refused: {NEWSLETTER} already has campaign {scheduled.id} "
                                  f"for its newsletter to 'all-subscribers', scheduled for 2027-01-14 10:00 "
                                  f"Europe/Bucharest: {MOVE_HINT}")
    moving = herald("send", str(content / NEWSLETTER), "--dry-run", "--now")
    assert moving.exit_code == 0, moving.output
    assert re.search(rf"When: now \(\d{{4}}-\d\d-\d\d \d\d:\d\d Europe/Bucharest\), moving campaign {scheduled.id} "
                     r"\(scheduled for 2027-01-14 10:00 Europe/Bucharest\)", moving.stdout), moving.stdout
    assert [c.state for c in rows(db_settings)] == ["scheduled"]


def test_at_and_now_together_are_refused(herald, content, db_settings):
    result = herald("send", str(content / NEWSLETTER), "--at", "2099-01-01 10:00", "--now", "--yes")
    assert result.exit_code == 2 and said(result) == "give --at or --now, not both"
    assert rows(db_settings) == []


def test_a_send_in_the_past_is_refused_with_both_times(herald, content, db_settings):
    result = herald("send", str(content / NEWSLETTER), "--at", "2020-01-01 10:00", "--yes")
    assert result.exit_code == 2
    assert re.fullmatch(r"--at 2020-01-01 10:00 Europe/Bucharest is in the past \(it is \d{4}-\d\d-\d\d \d\d:\d\d "
                        r"Europe/Bucharest now\); give a later time, or leave out --at to send now", said(result))
    assert rows(db_settings) == []


# ---- the demo ---------------------------------------------------------------------------------------------------

def test_the_demo_leaves_nothing_scheduled_again_for_what_it_sent(tmp_path):
    """Seen: after `herald demo`, beat's sync scheduled the January newsletter and the DI4C invitation again from
    their send_at. Here both are even `status: ready`, and the sync that beat runs every minute follows the demo."""
    from servers import free_port

    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", content)
    for item in (NEWSLETTER, EVENT):
        ready(content, item)
    env = dict(os.environ, HERALD_DATA_DIR=str(tmp_path / "data"), HERALD_OUTBOX_DIR=str(tmp_path / "outbox"),
               HERALD_CONTENT_DIR=str(content), HERALD_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
               HERALD_SMTP_URL=f"smtp://127.0.0.1:{free_port()}?security=none",
               HERALD_BASE_URL=f"http://127.0.0.1:{free_port()}",
               HERALD_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'herald.sqlite3'}", HERALD_SWEEP_SECONDS="1",
               COLUMNS="200")
    demo = subprocess.run([sys.executable, "-m", "worker.cli", "demo", "--invite-in", "3"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=240, check=False)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    synced = subprocess.run([sys.executable, "-m", "worker.cli", "sync"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert synced.returncode == 0, synced.stdout + synced.stderr

    settings = replace(load_settings(), database_url=env["HERALD_DATABASE_URL"], content_dir=content)
    found = [(c.item, c.message, c.state) for c in rows(settings) if c.message in ("newsletter", "invitation")]
    assert found == [(NEWSLETTER, "newsletter", "sent"), (EVENT, "invitation", "sent")], found
