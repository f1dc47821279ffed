"""An event's life after its invitation: revisions (the iCalendar SEQUENCE), answers, waitlist, reminders.

What the invitees were told is stored revision by revision, so an edit to meta.yaml is compared with
what they know, never with the previous file. Reminders and the follow-up are scheduled campaigns
keyed per (item, offset), so scheduling them again (when the event moves) moves them instead of
adding more. Who receives an event message is read from the ledger (who was invited) and the
answers, at fan-out time. No Celery and no SMTP here; each step is part of its caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from subscribers.models import Subscriber
from subscribers.segments import mailable
from worker.authoring.content import EventMeta, Item
from worker.campaigns import ledger
from worker.campaigns.models import Campaign, Delivery, Event, EventRevision, Rsvp
from worker.events.announcement import Announced

INVITATION, UPDATE, REMINDER, CANCELLATION, FOLLOW_UP, WAITLIST = (
    "invitation", "update", "reminder", "cancellation", "followup", "waitlist")
FOLLOWING = (UPDATE, REMINDER, CANCELLATION, FOLLOW_UP, WAITLIST)  # addressed by the invitation's answers
STOPPED_BY_CANCELLATION = (INVITATION, REMINDER, FOLLOW_UP, WAITLIST)
UNDER_WAY = ("scheduled", "sending", "paused")


# ---- revisions ----------------------------------------------------------------------------------

def event_of(session: Session, item_key: str) -> Event | None:
    return session.scalar(select(Event).where(Event.item == item_key))


def latest(session: Session, event: Event) -> EventRevision | None:
    return session.scalar(select(EventRevision).where(EventRevision.event_id == event.id)
                          .order_by(EventRevision.sequence.desc()).limit(1))


def announced_revision(session: Session, item_key: str, sequence: int) -> tuple[Announced, Announced | None]:
    """The revision `sequence` of an event and the one before it (None for the invitation's)."""
    event = event_of(session, item_key)
    rows = {row.sequence: Announced.stored(row) for row in session.scalars(
        select(EventRevision).where(EventRevision.event_id == event.id,
                                    EventRevision.sequence.in_((sequence - 1, sequence))))}
    return rows[sequence], rows.get(sequence - 1)


def publish(session: Session, item_key: str, meta: EventMeta, now: datetime) -> EventRevision:
    """Record what the next message about the event tells: revision 0 for the invitation, then +1 each time."""
    event = event_of(session, item_key)
    if event is None:
        event = Event(item=item_key, created_at=now)
        session.add(event)
        session.flush()
    before = latest(session, event)
    new = Announced.of(meta)
    row = EventRevision(event_id=event.id, sequence=0 if before is None else before.sequence + 1,
                        starts_at=new.starts_at, ends_at=new.ends_at, timezone=new.timezone, place=new.place,
                        join_url=new.join_url, cancelled=new.cancelled, created_at=now)
    session.add(row)
    session.flush()
    return row


def unannounced(session: Session, item_key: str, meta: EventMeta) -> tuple[str, ...] | None:
    """What invitees have not been told: None before the invitation, else the changed fields
    (plus "cancelled" when meta.yaml cancels an event they believe is on)."""
    event = event_of(session, item_key)
    last = latest(session, event) if event else None
    if last is None:
        return None
    told, now = Announced.stored(last), Announced.of(meta)
    if told.cancelled:
        return ()
    return (("cancelled",) if now.cancelled else ()) + now.changes_from(told)


def next_message(session: Session, item_key: str, meta: EventMeta) -> str:
    """What `herald send` sends for an event: the invitation, then an update or the cancellation when due."""
    pending = unannounced(session, item_key, meta)
    if pending is None or not pending:
        return INVITATION
    return CANCELLATION if "cancelled" in pending else UPDATE


def revision_for(session: Session, campaign: Campaign, item: Item, now: datetime) -> int:
    """The SEQUENCE a starting event campaign carries; an invitation's start publishes revision 0 and
    schedules the reminders. Updates and cancellations got theirs when they were created."""
    event = event_of(session, campaign.item)
    last = latest(session, event) if event else None
    if campaign.message == INVITATION and last is None:
        last = publish(session, campaign.item, item.meta, now)
    if campaign.message == INVITATION:
        schedule(session, item, campaign.item, now)
    return last.sequence if last else 0


def is_cancelled(session: Session, item_key: str) -> bool:
    event = event_of(session, item_key)
    last = latest(session, event) if event else None
    return bool(last and last.cancelled)


# ---- reminders and the follow-up ---------------------------------------------------------------

def _reminder_key(item_key: str, offset: timedelta) -> str:
    return f"{item_key}:{REMINDER}:{int(offset.total_seconds() // 60)}m"


def schedule(session: Session, item: Item, item_key: str, now: datetime) -> None:
    """One scheduled campaign per reminder offset still ahead, and the follow-up; moved when the event moves.

    A reminder whose offset left meta.yaml is cancelled; one that already went, or that an operator's send took
    over (`herald send --message reminder --at/--now`), is left alone.
    """
    meta: EventMeta = item.meta
    start = meta.aware(meta.start)
    wanted = {_reminder_key(item_key, offset): (REMINDER, start - offset) for offset in meta.reminder_offsets}
    if meta.follow_up:
        wanted[f"{item_key}:{FOLLOW_UP}"] = (FOLLOW_UP, meta.aware(meta.follow_up.send_at))
    existing = {campaign.schedule_key: campaign for campaign in session.scalars(select(Campaign).where(
        Campaign.item == item_key, Campaign.message.in_((REMINDER, FOLLOW_UP)), Campaign.schedule_key.is_not(None)))}
    for key, campaign in existing.items():
        if campaign.state != "scheduled" or campaign.origin != "schedule":  # over, or taken over by an operator
            continue
        if key not in wanted or wanted[key][1] <= now:
            ledger.move(campaign, "cancelled", now, "no longer in the event's schedule")
        elif campaign.send_at != wanted[key][1]:
            campaign.send_at, campaign.updated_at = wanted[key][1], now
    for key, (message, send_at) in wanted.items():
        if key not in existing and send_at > now:
            session.add(Campaign(item=item_key, message=message, segment=message, edition=None, send_at=send_at,
                                 state="scheduled", origin="schedule", schedule_key=key, created_at=now,
                                 updated_at=now))
    session.flush()


def stop_pending(session: Session, item_key: str, now: datetime, reason: str) -> list[Campaign]:
    """Cancel every reminder, follow-up and invitation of the event not sent yet (the event is off)."""
    stopped = list(session.scalars(select(Campaign).where(
        Campaign.item == item_key, Campaign.message.in_(STOPPED_BY_CANCELLATION),
        Campaign.state.in_(UNDER_WAY))))
    for campaign in stopped:
        ledger.move(campaign, "cancelled", now, reason)
    return stopped


# ---- who receives what --------------------------------------------------------------------------

def _invited(item_key: str) -> ColumnElement[bool]:
    return (select(Delivery.id).join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(Campaign.item == item_key, Campaign.message == INVITATION, Delivery.state == "sent",
                   Delivery.subscriber_id == Subscriber.id).exists())


def _answered(item_key: str, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return (select(Rsvp.id).join(Event, Event.id == Rsvp.event_id)
            .where(Event.item == item_key, Rsvp.subscriber_id == Subscriber.id, *conditions).exists())


def _attending(item_key: str) -> ColumnElement[bool]:
    return _answered(item_key, Rsvp.answer == "yes", Rsvp.queued_at.is_(None))


def audience(campaign: Campaign, meta: EventMeta) -> ColumnElement[bool]:
    """Whom an event message after the invitation addresses, within the mailable."""
    item = campaign.item
    if campaign.message in (UPDATE, CANCELLATION):
        who = and_(_invited(item), ~_answered(item, Rsvp.answer == "no"))
    elif campaign.message == REMINDER:
        who = _attending(item)
        if meta.remind_unanswered:
            who = or_(who, and_(_invited(item), ~_answered(item)))
    elif campaign.message == FOLLOW_UP:
        who = _attending(item)
    else:
        who = _moved_up_untold(item, campaign.id)
    return and_(mailable(), who)


def _moved_up_untold(item_key: str, other_than: int | None = None) -> ColumnElement[bool]:
    """Given a place from the waitlist, and not yet in a waitlist campaign (other than `other_than`)."""
    told = (select(Delivery.id).join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(Campaign.item == item_key, Campaign.message == WAITLIST, Campaign.id != (other_than or 0),
                   Delivery.subscriber_id == Subscriber.id).exists())
    return and_(_answered(item_key, Rsvp.promoted_at.is_not(None), Rsvp.queued_at.is_(None), Rsvp.answer == "yes"),
                ~told)


# ---- answers ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    answer: str  # yes, maybe, no
    answered_at: datetime
    waitlist_position: int | None  # 1 = next to get a place; None: not waiting


def answer_of(session: Session, event: Event, subscriber_id: int) -> Answer | None:
    rsvp = session.scalar(select(Rsvp).where(Rsvp.event_id == event.id, Rsvp.subscriber_id == subscriber_id))
    return None if rsvp is None else Answer(rsvp.answer, rsvp.answered_at, _position(session, rsvp))


def _position(session: Session, rsvp: Rsvp) -> int | None:
    if rsvp.queued_at is None:
        return None
    return session.scalar(select(func.count()).select_from(Rsvp).where(
        Rsvp.event_id == rsvp.event_id, Rsvp.queued_at.is_not(None),
        or_(Rsvp.queued_at < rsvp.queued_at, and_(Rsvp.queued_at == rsvp.queued_at, Rsvp.id <= rsvp.id))))


def record(session: Session, event: Event, subscriber_id: int, answer: str, capacity: int | None,
           now: datetime) -> Answer:
    """Record (or change) an answer. A yes beyond `capacity` joins the waitlist; a place given up goes to
    the first in line, whom the sweep then tells. The caller commits."""
    session.execute(select(Event.id).where(Event.id == event.id).with_for_update())  # one answer at a time
    rsvp = session.scalar(select(Rsvp).where(Rsvp.event_id == event.id, Rsvp.subscriber_id == subscriber_id))
    had_place = rsvp is not None and rsvp.answer == "yes" and rsvp.queued_at is None
    if rsvp is None:
        rsvp = Rsvp(event_id=event.id, subscriber_id=subscriber_id, answer=answer, answered_at=now)
        session.add(rsvp)
    rsvp.answer, rsvp.answered_at = answer, now
    session.flush()  # the row has its id before the places are counted without it
    if answer != "yes":
        rsvp.queued_at = rsvp.promoted_at = None
    elif not had_place and rsvp.queued_at is None:
        taken = session.scalar(select(func.count()).select_from(Rsvp).where(
            Rsvp.event_id == event.id, Rsvp.answer == "yes", Rsvp.queued_at.is_(None), Rsvp.id != rsvp.id))
        if capacity is not None and taken >= capacity:
            rsvp.queued_at = now
    session.flush()
    if had_place and answer != "yes":
        first = session.scalar(select(Rsvp).where(Rsvp.event_id == event.id, Rsvp.queued_at.is_not(None))
                               .order_by(Rsvp.queued_at, Rsvp.id).limit(1))
        if first is not None:
            first.queued_at, first.promoted_at = None, now
            session.flush()
    return Answer(rsvp.answer, rsvp.answered_at, _position(session, rsvp))


def promotions_due(session: Session, now: datetime) -> list[int]:
    """A waitlist campaign for each event with people moved up and not told, unless one is under way."""
    items = session.scalars(select(Event.item).join(Rsvp, Rsvp.event_id == Event.id)
                            .where(Rsvp.promoted_at.is_not(None), Rsvp.queued_at.is_(None)).distinct())
    started = []
    for item_key in list(items):
        busy = select(Campaign.id).where(Campaign.item == item_key, Campaign.message == WAITLIST,
                                         Campaign.state.in_(UNDER_WAY)).exists()
        if session.scalar(select(busy)) or not session.scalar(
                select(select(Subscriber.id).where(mailable(), _moved_up_untold(item_key)).exists())):
            continue
        campaign = ledger.create(session, item=item_key, message=WAITLIST, segment=WAITLIST, edition=None,
                                    send_at=None, origin="engine", now=now)
        started.append(campaign.id)
    session.commit()
    return started


# ---- the organiser's list ----------------------------------------------------------------------

@dataclass(frozen=True)
class Attendee:
    name: str
    organisation: str
    country: str
    email: str
    answer: str  # yes, maybe, no, waitlist
    answered_at: datetime


def attendees(session: Session, item_key: str) -> tuple[list[Attendee], dict[str, int]]:
    """Every answer (yes first, then the waitlist in order, maybe, no) and the counts, with the invitees
    who have not answered."""
    rows = session.execute(
        select(Subscriber.name, Subscriber.organisation, Subscriber.country, Subscriber.email, Rsvp.answer,
               Rsvp.queued_at, Rsvp.answered_at)
        .join(Rsvp, Rsvp.subscriber_id == Subscriber.id).join(Event, Event.id == Rsvp.event_id)
        .where(Event.item == item_key))
    people = [Attendee(name, organisation or "", country or "", email,
                       "waitlist" if queued_at is not None else answer, answered_at)
              for name, organisation, country, email, answer, queued_at, answered_at in rows]
    order = {"yes": 0, "waitlist": 1, "maybe": 2, "no": 3}
    people.sort(key=lambda person: (order[person.answer], person.answered_at, person.email))
    counts = {answer: sum(person.answer == answer for person in people) for answer in order}
    counts["invited"] = session.scalar(select(func.count()).select_from(Subscriber).where(_invited(item_key)))
    counts["unanswered"] = session.scalar(select(func.count()).select_from(Subscriber).where(
        _invited(item_key), ~_answered(item_key)))
    return people, counts
