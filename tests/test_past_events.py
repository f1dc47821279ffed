"""Nothing about an event that has ended, and nothing at a time that has passed, on SQLite and PostgreSQL: refused
by `herald send` (and its dry run) and the API with the dates in the item's zone, and failed by the worker when a
scheduled invitation comes due after its event (real worker and beat processes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from broker import enqueued
from engine import running_engine, seed
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT, Settings
from web.app import create_app
from worker.authoring.content import load_item
from worker.campaigns import ledger
from worker.campaigns.models import Campaign
from worker.cli import app
from worker.events import lifecycle

EVENT = "events/di4c-partners-meeting-botosani"
NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"
TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BUCHAREST = timedelta(hours=2)  # Europe/Bucharest in winter, where these events take place
NOW_IN_BUCHAREST = r"\d{4}-\d\d-\d\d \d\d:\d\d Europe/Bucharest"


def dated(meta: Path, start: str, end: str, deadline: str) -> None:
    """The event's times as an editor writes them (local, Bucharest), and no send_at of its own."""
    lines = [line for line in meta.read_text(encoding="utf-8").splitlines()
             if not line.startswith(("start:", "end:", "rsvp_deadline:", "send_at:"))]
    meta.write_text("\n".join([*lines, f"start: {start}", f"end: {end}", f"rsvp_deadline: {deadline}"]) + "\n",
                    encoding="utf-8")


@pytest.fixture
def content(db_settings: Settings, tmp_path: Path) -> Path:
    """An editable copy of the content whose event is a year early (April 2026: a wrong year), and 30 people."""
    folder = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", folder)
    dated(folder / EVENT / "meta.yaml", "2026-04-14 09:00", "2026-04-14 17:30", "2026-04-01 16:00")
    seed(replace(db_settings, content_dir=folder), 30, seed_value=3)
    return folder


@pytest.fixture
def herald(db_settings: Settings, content: Path, broker):
    env = {"COLUMNS": "250", "HERALD_CONTENT_DIR": str(content), "HERALD_OUTBOX_DIR": str(db_settings.outbox_dir)}
    return lambda *args: CliRunner().invoke(app, list(args), env=env)


def said(result) -> str:
    return " ".join(result.output.split())


def campaign_count(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Campaign))


ENDED = ("di4c-partners-meeting-botosani ends 2026-04-14 17:30 Europe/Bucharest, before this {message} would go out "
         "({when}): nothing is sent about an event that has ended; check start and end in its meta.yaml (a wrong "
         "year?)")


def test_an_invitation_for_an_event_that_has_ended_is_refused_with_both_dates(herald, content, sessions, broker):
    later = herald("send", str(content / EVENT), "--at", "2099-11-01 10:00", "--yes")
    assert later.exit_code == 2, later.output
    assert said(later) == ENDED.format(message="invitation", when="2099-11-01 10:00 Europe/Bucharest")

    now = herald("send", str(content / EVENT), "--yes")
    assert now.exit_code == 2
    assert re.fullmatch(re.escape(ENDED.format(message="invitation", when="WHEN")).replace("WHEN", NOW_IN_BUCHAREST),
                        said(now)), said(now)

    dry = herald("send", str(content / EVENT), "--dry-run", "--at", "2099-11-01 10:00")
    assert dry.exit_code == 1, dry.output
    assert "When: 2099-11-01 10:00 Europe/Bucharest" in dry.stdout
    assert said(dry).endswith("A real send would be refused: " +
                              ENDED.format(message="invitation", when="2099-11-01 10:00 Europe/Bucharest"))
    assert campaign_count(sessions) == 0 and enqueued(broker) == []


def test_a_reminder_or_an_update_for_an_event_that_has_ended_is_refused(herald, content, sessions, broker):
    with sessions() as session:  # the invitation went out, back when the event was ahead
        meta = load_item(content / EVENT).meta
        invitation = ledger.create(session, item=EVENT, message="invitation", segment="all-subscribers",
                                      edition=None, send_at=None, origin="cli", now=datetime(2026, 3, 1, tzinfo=UTC))
        invitation.revision = lifecycle.publish(session, EVENT, meta, datetime(2026, 3, 1, tzinfo=UTC)).sequence
        session.commit()

    reminder = herald("send", str(content / EVENT), "--message", "reminder", "--yes")
    assert reminder.exit_code == 2
    assert re.fullmatch(re.escape(ENDED.format(message="reminder", when="WHEN")).replace("WHEN", NOW_IN_BUCHAREST),
                        said(reminder)), said(reminder)

    meta_file = content / EVENT / "meta.yaml"
    meta_file.write_text(meta_file.read_text(encoding="utf-8").replace("city: Botoșani", "city: Suceava"),
                         encoding="utf-8")
    update = herald("send", str(content / EVENT), "--yes")  # what invitees were not told: an update
    assert update.exit_code == 2
    assert re.fullmatch(re.escape(ENDED.format(message="update", when="WHEN")).replace("WHEN", NOW_IN_BUCHAREST),
                        said(update)), said(update)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 1  # the invitation alone
        assert lifecycle.latest(session, lifecycle.event_of(session, EVENT)).sequence == 0  # no revision published
    assert enqueued(broker) == []


def test_a_time_in_the_past_is_refused_by_send_and_by_the_api(herald, content, db_settings, sessions, broker):
    past = herald("send", str(content / NEWSLETTER), "--at", "2026-11-01 10:00", "--yes")
    assert past.exit_code == 2
    assert re.fullmatch(rf"--at 2026-11-01 10:00 Europe/Bucharest is in the past \(it is {NOW_IN_BUCHAREST} now\); "
                        r"give a later time, or leave out --at to send now", said(past)), said(past)

    with TestClient(create_app(replace(db_settings, api_token=TOKEN, content_dir=content))) as client:
        answer = client.post("/api/campaigns", json={"item": NEWSLETTER, "send_at": "2026-11-01T08:00:00+00:00"},
                             headers=AUTH)
        assert answer.status_code == 422
        assert re.fullmatch(rf"send_at 2026-11-01 10:00 Europe/Bucharest is in the past \(it is {NOW_IN_BUCHAREST} "
                            r"now\); give a later time, or leave out send_at to send now", answer.json()["detail"])
        ended = client.post("/api/campaigns", json={"item": EVENT, "send_at": "2099-11-01T08:00:00+00:00"},
                            headers=AUTH)
        assert ended.status_code == 422
        assert ended.json()["detail"] == ENDED.format(message="invitation", when="2099-11-01 10:00 Europe/Bucharest")
    assert campaign_count(sessions) == 0 and enqueued(broker) == []


def test_sync_does_not_schedule_a_ready_event_that_has_ended_and_says_why(herald, content, sessions):
    meta = content / EVENT / "meta.yaml"
    meta.write_text(meta.read_text(encoding="utf-8") + "status: ready\nsend_at: 2026-03-20 10:00\n", encoding="utf-8")
    result = herald("sync")
    assert result.exit_code == 1
    line = len(meta.read_text(encoding="utf-8").splitlines())  # send_at, the last line
    expected = re.escape(f"{meta}:{line}: not scheduled: " + ENDED.format(message="invitation", when="WHEN"))
    assert re.search(expected.replace("WHEN", NOW_IN_BUCHAREST), said(result)), said(result)
    assert said(result).endswith("The items above are not scheduled; fix them (`herald check` shows every problem).")
    assert campaign_count(sessions) == 0


def test_beat_fails_a_scheduled_invitation_whose_event_has_ended_by_then(db_settings, redis_server, tmp_path):
    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", content,
                    ignore=lambda folder, names: [name for name in names if name == "newsletters"])
    meta = content / EVENT / "meta.yaml"
    start = (datetime.now(UTC) + BUCHAREST + timedelta(days=2)).replace(second=0, microsecond=0)
    dated(meta, f"{start:%Y-%m-%d %H:%M}", f"{start + timedelta(hours=8):%Y-%m-%d %H:%M}",
          f"{start - timedelta(days=1):%Y-%m-%d %H:%M}")
    settings = replace(db_settings, content_dir=content)
    seed(settings, 20, seed_value=11)
    with running_engine(settings, redis_server.url, tmp_path) as engine:
        at = (datetime.now(UTC) + timedelta(seconds=8)).isoformat(timespec="seconds")
        campaign_id = engine.send(str(content / EVENT), "--at", at)
        assert engine.campaign(campaign_id).state == "scheduled"
        # Then the editor "fixes" the dates into last year, by mistake: the invitation must not go out.
        dated(meta, "2026-04-14 09:00", "2026-04-14 17:30", "2026-04-01 16:00")
        engine.start_worker()
        engine.start_beat()
        failed = engine.wait_state(campaign_id, "failed", "sent", seconds=90)
        assert failed.state == "failed"
        assert re.fullmatch(re.escape(ENDED.format(message="invitation", when="WHEN")).replace(
            "WHEN", NOW_IN_BUCHAREST), failed.reason), failed.reason
        time.sleep(2)
        assert engine.received_count(campaign_id) == 0 and engine.counts(campaign_id)["targeted"] == 0


def test_herald_send_as_a_subprocess_refuses_in_one_line_and_exits_non_zero(db_settings, content, redis_server):
    """The issue's case as an operator met it: the `herald` command itself, no traceback."""
    env = {"HERALD_CONTENT_DIR": str(content), "HERALD_DATABASE_URL": db_settings.database_url,
           "HERALD_REDIS_URL": redis_server.url, "COLUMNS": "250"}
    result = subprocess.run([sys.executable, "-m", "worker.cli", "send", "--yes", str(content / EVENT), "--at",
                             "2099-11-01 10:00"], env={**os.environ, **env}, capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=60, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert " ".join(result.stderr.split()) == ENDED.format(message="invitation",
                                                           when="2099-11-01 10:00 Europe/Bucharest")
