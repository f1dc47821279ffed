"""The event lifecycle's database steps on SQLite and PostgreSQL: revisions, what is owed to invitees,
reminder schedules that follow the event, answers with a waitlist, and who each message reaches."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine import seed
from sqlalchemy import select

from foundation.settings import PROJECT_ROOT
from subscribers.models import Subscriber
from worker.authoring.content import load_item
from worker.campaigns import control, ledger
from worker.campaigns.models import Campaign, Delivery
from worker.events import lifecycle

ITEM = "events/di4c-partners-meeting-botosani"
NOW = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)  # after the invitation's send_at, weeks before the event


@pytest.fixture
def invited(db_settings, sessions, tmp_path):
    """An editable copy of the content, 30 people, and the Botoșani invitation sent to all of them."""
    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", content)
    settings = replace(db_settings, content_dir=content)
    seed(settings, 30, seed_value=5)
    with sessions() as session:
        invitation = ledger.create(session, item=ITEM, message="invitation", segment="all-subscribers",
                                      edition=None, send_at=None, origin="cli", now=NOW)
        item = load_item(content / ITEM)
        invitation.revision = lifecycle.revision_for(session, invitation, item, NOW)
        people = list(session.scalars(select(Subscriber.id).where(Subscriber.status == "confirmed")
                                      .order_by(Subscriber.id)))
        session.add_all(Delivery(campaign_id=invitation.id, subscriber_id=person, state="sent", attempts=1,
                                 error="") for person in people)
        session.commit()
    return settings, content / ITEM / "meta.yaml", people


def edit(meta: Path, old: str, new: str) -> None:
    text = meta.read_text(encoding="utf-8")
    assert old in text
    meta.write_text(text.replace(old, new), encoding="utf-8")


def reached(session, campaign: Campaign, settings) -> list[int]:
    item = load_item(settings.content_dir / ITEM)
    return list(session.scalars(select(Subscriber.id).where(control.audience_of(campaign, item, settings))
                                .order_by(Subscriber.id)))


def test_the_invitation_is_revision_0_and_schedules_the_reminders(invited, sessions):
    settings, _, _ = invited
    with sessions() as session:
        reminders = {c.schedule_key: c.send_at for c in session.scalars(
            select(Campaign).where(Campaign.message == "reminder"))}
        assert lifecycle.unannounced(session, ITEM, load_item(settings.content_dir / ITEM).meta) == ()
    start = datetime(2027, 2, 23, 7, 0, tzinfo=UTC)  # 09:00 in Bucharest
    assert sorted(send_at.astimezone(UTC) for send_at in reminders.values()) == [start - timedelta(days=7),
                                                                                 start - timedelta(days=1)]
    assert set(reminders) == {f"{ITEM}:reminder:10080m", f"{ITEM}:reminder:1440m"}


def test_a_moved_event_owes_an_update_and_its_reminders_move(invited, sessions):
    settings, meta, people = invited
    edit(meta, "start: 2027-02-23 09:00", "start: 2027-02-23 10:30")
    edit(meta, "city: Botoșani", "city: Suceava")
    with sessions() as session:
        item = load_item(settings.content_dir / ITEM)
        assert lifecycle.unannounced(session, ITEM, item.meta) == ("time", "place")
        assert lifecycle.next_message(session, ITEM, item.meta) == "update"
        decliner = lifecycle.event_of(session, ITEM)
        lifecycle.record(session, decliner, people[0], "no", None, NOW)
        session.commit()
        # control.create would also enqueue the start task; its database steps are these two.
        campaign = ledger.create(session, item=ITEM, message="update", segment="update", edition=None,
                                    send_at=None, origin="test", now=NOW)
        control.announce(session, campaign, item, NOW)
        session.commit()
        assert campaign.revision == 1
        assert lifecycle.unannounced(session, ITEM, item.meta) == ()
        now, before = lifecycle.announced_revision(session, ITEM, 1)
        assert now.changes_from(before) == ("time", "place")
        assert reached(session, campaign, settings) == people[1:]  # every invitee but the one who declined
        moved = datetime(2027, 2, 23, 8, 30, tzinfo=UTC)
        reminders = sorted(c.send_at.astimezone(UTC) for c in session.scalars(
            select(Campaign).where(Campaign.message == "reminder", Campaign.state == "scheduled")))
        assert reminders == [moved - timedelta(days=7), moved - timedelta(days=1)]


def test_reminders_follow_the_offsets_in_meta_and_skip_the_past(invited, sessions):
    settings, meta, _ = invited
    meta.write_text(meta.read_text(encoding="utf-8") + "reminders: [3d, 2h]\n", encoding="utf-8")
    later = datetime(2027, 2, 21, 9, 0, tzinfo=UTC)  # the 3-day reminder's time has passed
    with sessions() as session:
        lifecycle.schedule(session, load_item(settings.content_dir / ITEM), ITEM, later)
        session.commit()
        states = {c.schedule_key.rpartition(":")[2]: (c.state, c.send_at.astimezone(UTC)) for c in
                  session.scalars(select(Campaign).where(Campaign.message == "reminder"))}
    assert states["10080m"][0] == states["1440m"][0] == "cancelled"  # left meta.yaml
    assert "4320m" not in states  # already past: never created
    assert states["120m"] == ("scheduled", datetime(2027, 2, 23, 5, 0, tzinfo=UTC))


def test_a_full_event_keeps_a_waitlist_and_a_freed_place_goes_to_the_first_in_line(invited, sessions):
    settings, _, people = invited
    with sessions() as session:
        event = lifecycle.event_of(session, ITEM)
        for number, person in enumerate(people[:4]):
            answer = lifecycle.record(session, event, person, "yes", 2, NOW + timedelta(minutes=number))
            assert answer.waitlist_position == (None, None, 1, 2)[number]
        session.commit()
        assert lifecycle.record(session, event, people[2], "yes", 2, NOW).waitlist_position == 1  # asking again keeps the place in line
        lifecycle.record(session, event, people[1], "maybe", 2, NOW + timedelta(hours=1))
        session.commit()
        assert lifecycle.answer_of(session, event, people[2]).waitlist_position is None
        assert lifecycle.answer_of(session, event, people[3]).waitlist_position == 1
        waitlist = Campaign(item=ITEM, message="waitlist", segment="waitlist")
        assert reached(session, waitlist, settings) == [people[2]]
        started = lifecycle.promotions_due(session, NOW)
        assert len(started) == 1 and lifecycle.promotions_due(session, NOW) == []  # one under way is enough
        attendees, counts = lifecycle.attendees(session, ITEM)
    assert [a.answer for a in attendees] == ["yes", "yes", "waitlist", "maybe"]
    assert counts == {"yes": 2, "waitlist": 1, "maybe": 1, "no": 0, "invited": len(people),
                      "unanswered": len(people) - 4}


def test_reminders_reach_those_who_accepted_and_optionally_those_who_did_not_answer(invited, sessions):
    settings, meta, people = invited
    reminder = Campaign(item=ITEM, message="reminder", segment="reminder")
    with sessions() as session:
        event = lifecycle.event_of(session, ITEM)
        lifecycle.record(session, event, people[0], "yes", None, NOW)
        lifecycle.record(session, event, people[1], "maybe", None, NOW)
        lifecycle.record(session, event, people[2], "no", None, NOW)
        session.commit()
        assert reached(session, reminder, settings) == [people[0]]
        meta.write_text(meta.read_text(encoding="utf-8") + "remind_unanswered: true\n", encoding="utf-8")
        assert reached(session, reminder, settings) == [people[0], *people[3:]]


def test_cancelling_in_meta_stops_the_reminders_and_owes_a_cancellation(invited, sessions):
    settings, meta, people = invited
    meta.write_text(meta.read_text(encoding="utf-8") + "status: cancelled\n", encoding="utf-8")
    with sessions() as session:
        item = load_item(settings.content_dir / ITEM)
        assert lifecycle.next_message(session, ITEM, item.meta) == "cancellation"
        with pytest.raises(ValueError, match="not gone out|nothing changed"):
            control._check_following(session, ITEM, item, "update")
        campaign = ledger.create(session, item=ITEM, message="cancellation", segment="cancellation",
                                    edition=None, send_at=None, origin="test", now=NOW)
        control.announce(session, campaign, item, NOW)
        session.commit()
        assert campaign.revision == 1 and lifecycle.is_cancelled(session, ITEM)
        assert {c.state for c in session.scalars(select(Campaign).where(Campaign.message == "reminder"))} == \
            {"cancelled"}
        assert reached(session, campaign, settings) == people
        with pytest.raises(ValueError, match="went out already"):
            control._check_following(session, ITEM, item, "cancellation")


def test_messages_after_the_invitation_need_one(db_settings, sessions):
    with sessions() as session:
        item = load_item(PROJECT_ROOT / "content" / ITEM)
        assert lifecycle.next_message(session, ITEM, item.meta) == "invitation"
        with pytest.raises(ValueError, match="has not gone out yet"):
            control.resolve(control.Request(PROJECT_ROOT / "content" / ITEM, message="update"), db_settings, session)
        with pytest.raises(ValueError, match="leave out the segment"):
            control.resolve(control.Request(PROJECT_ROOT / "content" / ITEM, message="reminder",
                                            segment="all-subscribers"), db_settings, session)
