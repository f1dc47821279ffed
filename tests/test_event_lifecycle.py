"""An event's whole life through the real parts: worker and beat processes, Redis, the web app over
HTTP and the SMTP sink. Invite 50, 20 accept and 5 decline through their links, the event moves by an
hour (the update goes to the 45 who did not decline, SEQUENCE 1), the reminders fire at the moved
times on an injected clock, and a cancellation stops the last reminder.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape

import httpx
import icalendar
import pytest
from engine import recipients, running_engine, seed
from live_server import live_server
from sqlalchemy import select, update

from foundation.settings import PROJECT_ROOT
from subscribers.models import Subscriber
from worker.campaigns.models import Campaign, Rsvp

ITEM = "events/di4c-partners-meeting-botosani"
OTHER_EVENTS = ("capacities-transnational-alliance-webinar", "eui-online-qa-session")
ZONE_OFFSET = timedelta(hours=2)  # Europe/Bucharest in winter, where the test puts the event


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the ledger steps run on both in other tests
def test_invite_answer_move_remind_cancel(db_settings, redis_server, tmp_path):
    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", content,  # this event alone: nothing else gets scheduled
                    ignore=lambda folder, names: [n for n in names if n in ("newsletters", *OTHER_EVENTS)])
    meta = content / ITEM / "meta.yaml"
    start = (datetime.now(UTC) + timedelta(days=20)).replace(hour=8, minute=0, second=0, microsecond=0)
    start = start.replace(month=1, day=12, year=start.year + 1)  # a winter Tuesday-ish date, far from any DST change
    write_times(meta, start, start + timedelta(hours=8), start - timedelta(days=3))
    settings = replace(db_settings, content_dir=content)
    invited = seed_exactly(settings, 50)

    with live_server(settings) as web, running_engine(settings, redis_server.url, tmp_path,
                                                       HERALD_BASE_URL=web.url) as engine:
        engine.start_worker()
        engine.start_beat()

        # 1. The invitation: 50 people, each with their own REQUEST.
        invitation = engine.send(str(content / ITEM))
        engine.wait_state(invitation, "sent")
        messages = engine.received(invitation)
        assert recipients(messages) == {address: 1 for address in invited}
        for message in messages:
            calendar = calendar_of(message, "REQUEST")
            event = calendar.walk("VEVENT")[0]
            assert event["SEQUENCE"] == 0 and event["DTSTART"].dt.astimezone(UTC) == start
            assert str(event["ATTENDEE"]).lower() == f"mailto:{address_of(message)}"
        uids = {str(calendar_of(message, "REQUEST").walk("VEVENT")[0]["UID"]) for message in messages}
        assert uids == {f"di4c-partners-meeting-botosani@{settings.org_email.rpartition('@')[2]}"}

        # 2. 20 accept and 5 decline, over HTTP, through the links in their own messages.
        by_address = {address_of(message): message for message in messages}
        addresses = sorted(by_address)
        accepting, declining = addresses[:20], addresses[20:25]
        with httpx.Client(timeout=20) as client:
            for address in accepting:
                answer(client, by_address[address], "yes")
            for address in declining:
                answer(client, by_address[address], "no")
        with engine.sessions() as session:
            answers = dict(session.execute(select(Subscriber.email, Rsvp.answer)
                                           .join(Rsvp, Rsvp.subscriber_id == Subscriber.id)).all())
        assert answers == {**{a: "yes" for a in accepting}, **{a: "no" for a in declining}}
        reminders = reminder_times(engine)
        assert sorted(reminders.values()) == [start - timedelta(days=7), start - timedelta(days=1)]

        # 3. The event moves by an hour: check flags it, send sends the update to the 45.
        moved = start + timedelta(hours=1)
        write_times(meta, moved, moved + timedelta(hours=8), start - timedelta(days=3))
        flagged = engine.herald("check", str(content / ITEM))
        assert "start changed since the invitations went out" in flagged.stderr
        update_id = engine.send(str(content / ITEM))
        engine.wait_state(update_id, "sent")
        updates = engine.received(update_id)
        assert recipients(updates) == {address: 1 for address in invited if address not in declining}
        assert len(updates) == 45
        for message in updates:
            assert message["Subject"].startswith(("Actualizare: ", "Updated: "))
            event = calendar_of(message, "REQUEST").walk("VEVENT")[0]
            assert event["SEQUENCE"] == 1 and event["DTSTART"].dt.astimezone(UTC) == moved
            assert {str(event["UID"])} == uids  # the same calendar entry, moved
            text = message.get_body(("plain",)).get_content()
            assert re.search(r"(acum|now): [^\n]*11:00[^\n]*\((înainte|was): [^\n]*10:00", text)
        reminders = reminder_times(engine)
        assert sorted(reminders.values()) == [moved - timedelta(days=7), moved - timedelta(days=1)]

        # 4. The week-before reminder: not at the old time, at the new one, to the 20 who accepted.
        week_before, day_before = sorted(reminders, key=reminders.get)
        engine.set_clock((start - timedelta(days=7) - datetime.now(UTC)).total_seconds() + 60)
        time.sleep(4)  # several sweeps at a time past the old reminder time
        assert engine.campaign(week_before).state == "scheduled" and engine.received_count(week_before) == 0
        engine.set_clock((reminders[week_before] - datetime.now(UTC)).total_seconds() + 1)
        fired = engine.wait_state(week_before, "sent", seconds=60)
        assert fired.started_at >= reminders[week_before]
        assert recipients(engine.received(week_before)) == {address: 1 for address in accepting}
        for message in engine.received(week_before):
            assert not message.get_content_type().startswith("multipart/mixed")  # a reminder carries no calendar

        # 5. Cancelled in meta.yaml: the sync sends the CANCEL and stops the last reminder.
        meta.write_text(meta.read_text(encoding="utf-8") + "status: cancelled\n", encoding="utf-8")
        engine.herald("sync")
        with engine.sessions() as session:
            cancel_id = session.scalar(select(Campaign.id).where(Campaign.message == "cancellation"))
        engine.wait_state(cancel_id, "sent")
        cancellations = engine.received(cancel_id)
        assert recipients(cancellations) == {address: 1 for address in invited if address not in declining}
        for message in cancellations:
            event = calendar_of(message, "CANCEL").walk("VEVENT")[0]
            assert event["SEQUENCE"] == 2 and str(event["STATUS"]) == "CANCELLED" and {str(event["UID"])} == uids
        assert engine.campaign(day_before).state == "cancelled"
        engine.set_clock((reminders[day_before] - datetime.now(UTC)).total_seconds() + 60)
        time.sleep(4)
        assert engine.campaign(day_before).state == "cancelled" and engine.received_count(day_before) == 0
        with engine.sessions() as session:
            sent_after = session.scalars(select(Campaign).where(Campaign.message == "reminder",
                                                                Campaign.state == "sent")).all()
        assert [campaign.id for campaign in sent_after] == [week_before]


def write_times(meta, start: datetime, end: datetime, deadline: datetime) -> None:
    """The test's event in Bucharest time (meta.yaml holds local times), without a send_at of its own."""
    local = {name: (moment + ZONE_OFFSET).strftime("%Y-%m-%d %H:%M")
             for name, moment in (("start", start), ("end", end), ("rsvp_deadline", deadline))}
    lines = [line for line in meta.read_text(encoding="utf-8").splitlines()
             if not line.startswith(("start:", "end:", "rsvp_deadline:", "send_at:"))]
    lines += [f"{name}: {value}" for name, value in local.items()]
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")


def seed_exactly(settings, count: int) -> set[str]:
    """Fictional people of whom exactly `count` are mailable (the rest unsubscribed); their addresses."""
    from foundation.db import open_store

    seed(settings, count + 15, seed_value=61)
    with open_store(settings)() as session:
        confirmed = list(session.scalars(select(Subscriber).where(Subscriber.status == "confirmed")
                                         .order_by(Subscriber.id)))
        assert len(confirmed) >= count
        session.execute(update(Subscriber).where(Subscriber.id.in_([p.id for p in confirmed[count:]]))
                        .values(status="unsubscribed"))
        session.commit()
        return {person.email.lower() for person in confirmed[:count]}


def address_of(message: EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec).lower()


def calendar_of(message: EmailMessage, method: str) -> icalendar.Calendar:
    """The inline text/calendar part (its method parameter must match METHOD) and the same bytes attached."""
    inline = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    attached = [part for part in message.walk() if part.get_filename() == "invite.ics"]
    assert len(inline) == 1 and len(attached) == 1
    assert inline[0].get_param("method") == method
    body = inline[0].get_payload(decode=True)
    assert attached[0].get_payload(decode=True) == body
    calendar = icalendar.Calendar.from_ical(body)
    assert str(calendar["METHOD"]) == method
    return calendar


def answer(client: httpx.Client, message: EmailMessage, choice: str) -> None:
    """Follow the message's own RSVP link: the page preselects the choice; the form records it."""
    text = message.get_body(("plain",)).get_content()
    link = re.search(rf"(http://\S+/r/\S+\?answer={choice})", text).group(1)
    page = client.get(link)
    assert page.status_code == 200
    form = unescape(page.text)
    assert re.search(rf'value="{choice}"[^>]*checked', form), "the link's answer is preselected"
    fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form))
    action = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', form) or \
        re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', form)
    target = httpx.URL(link).join(action.group(1)) if action else link.split("?")[0]
    done = client.post(str(target), data={**fields, "answer": choice})
    assert done.status_code == 200, done.text[:500]


def reminder_times(engine) -> dict[int, datetime]:
    with engine.sessions() as session:
        rows = session.execute(select(Campaign.id, Campaign.send_at).where(
            Campaign.message == "reminder", Campaign.state == "scheduled")).all()
    return {campaign_id: send_at.astimezone(UTC) for campaign_id, send_at in rows}
