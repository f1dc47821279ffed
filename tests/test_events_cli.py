"""`herald events attendees` on a store with answers recorded, on SQLite and PostgreSQL: the table, the
counts, the CSV read back with the csv module, and an unknown event refused."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from engine import seed
from sqlalchemy import select
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT, Settings
from subscribers.models import Subscriber
from worker.authoring.content import load_item
from worker.campaigns import ledger
from worker.campaigns.models import Delivery
from worker.cli import app
from worker.events import lifecycle

EVENT = "events/di4c-partners-meeting-botosani"
SLUG = EVENT.rpartition("/")[2]
ANSWERED = datetime(2027, 2, 1, 9, 30, tzinfo=UTC)


def herald(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250",
                                                   "HERALD_CONTENT_DIR": str(PROJECT_ROOT / "content")})


@pytest.fixture
def answered(db_settings: Settings, sessions) -> dict[str, list[Subscriber]]:
    """Twelve people invited (their invitation sent), capacity 2: two yes, one waiting, two maybe, one no,
    six silent."""
    seed(db_settings, 20, seed_value=7)
    meta = load_item(PROJECT_ROOT / "content" / EVENT).meta
    with sessions() as session:
        people = list(session.scalars(select(Subscriber).order_by(Subscriber.id).limit(12)))
        campaign = ledger.create(session, item=EVENT, message="invitation", segment="all-subscribers",
                                    edition=None, send_at=None, origin="cli", now=ANSWERED)
        session.add_all(Delivery(campaign_id=campaign.id, subscriber_id=person.id, state="sent") for person in people)
        lifecycle.publish(session, EVENT, meta, ANSWERED)
        event = lifecycle.event_of(session, EVENT)
        for minutes, (person, answer) in enumerate(zip(people, ["yes", "no", "yes", "maybe", "yes", "maybe"])):
            lifecycle.record(session, event, person.id, answer, 2, ANSWERED + timedelta(minutes=minutes))
        session.commit()
    return {"yes": [people[0], people[2]], "waitlist": [people[4]], "maybe": [people[3], people[5]],
            "no": [people[1]]}


def test_the_table_lists_every_answer_in_order_with_the_counts(answered):
    result = herald("events", "attendees", SLUG)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = [next(i for i, line in enumerate(lines) if person.name in line) for answer in answered
            for person in answered[answer]]
    assert rows == sorted(rows), "yes, then the waiting list, maybe, no"
    yes = next(line for line in lines if answered["yes"][0].name in line)
    assert "yes" in yes and "2027-02-01 09:30" in yes and (answered["yes"][0].organisation or "") in yes
    waiting = next(line for line in lines if answered["waitlist"][0].name in line)
    assert "waitlist" in waiting and "2027-02-01 09:34" in waiting
    assert "answered (UTC)" in result.stdout
    assert lines[-1] == "yes 2, waitlist 1, maybe 2, no 1, unanswered 6 of 12 invited"


def test_csv_is_all_that_goes_to_stdout_and_reads_back(answered):
    result = herald("events", "attendees", SLUG, "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["name", "organisation", "country", "email", "answer", "answered_at"]
    assert [(row["email"], row["answer"]) for row in rows] == [
        (person.email, answer) for answer in ("yes", "waitlist", "maybe", "no") for person in answered[answer]]
    first = answered["yes"][0]
    assert rows[0] == {"name": first.name, "organisation": first.organisation or "", "country": first.country or "",
                       "email": first.email, "answer": "yes", "answered_at": "2027-02-01T09:30:00+00:00"}
    assert all(datetime.fromisoformat(row["answered_at"]).tzinfo is not None for row in rows)


def test_an_event_without_answers_yet_lists_nobody_and_an_unknown_one_is_refused(db_settings):
    quiet = herald("events", "attendees", "eui-online-qa-session")
    assert quiet.exit_code == 0 and "unanswered 0 of 0 invited" in quiet.stdout
    unknown = herald("events", "attendees", "no-such-event")
    assert unknown.exit_code == 1 and unknown.stdout == ""
    assert unknown.stderr.startswith("no such item: 'no-such-event'; ") and SLUG in unknown.stderr
    assert herald("events", "attendees", "no-such-event", "--csv").exit_code == 1
