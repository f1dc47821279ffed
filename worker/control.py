"""What an operator can do to a campaign, the same from the CLI and from the HTTP API.

Each action validates first and changes the database in one commit, then tells the workers
(enqueues a task) only after that commit, so a task never looks for a row that is not there yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from subscribers.models import Subscriber
from subscribers.segments import segment_named
from worker import campaigns, clock, events
from worker.content import Item, find_items, in_content, load_item
from worker.models import Campaign
from worker.problems import ContentInvalid, display_path
from worker.render import CONFIRMATION, EDITIONS, messages_of
from worker.settings import Settings, unsafe_for_mail


@dataclass(frozen=True)
class Request:
    """A campaign as asked for: the item folder, and what to override of its meta."""

    item: Path
    segment: str | None = None  # default: the item's audience
    message: str | None = None  # default: the item's first message (newsletter, invitation)
    edition: str | None = None  # default: each subscriber's language
    send_at: datetime | None = None  # default: now (the item's own send_at is `herald sync`'s)


def resolve(request: Request, settings: Settings, session: Session) -> tuple[Item, str, str]:
    """The item, segment and message a request means; ContentInvalid or ValueError say what is wrong.

    An event's default message is what its invitees have not been told yet: the invitation, then an
    update or the cancellation. Messages after the invitation go to the invitees' answers, not a segment.
    """
    item = load_item(request.item)
    if not in_content(item, settings.content_dir):
        raise ValueError(f"{display_path(item.path)} is outside the content folder, HERALD_CONTENT_DIR "
                         f"({display_path(settings.content_dir)}): only an item inside it can be sent. Move the folder "
                         "there, or set HERALD_CONTENT_DIR to the folder that holds it; `herald check` and "
                         "`herald render` work on a draft anywhere.")
    key = campaigns.item_key(item, settings.content_dir)
    message = request.message or (events.next_message(session, key, item.meta) if item.kind == "event"
                                  else messages_of(item)[0])
    if message not in messages_of(item):
        raise ValueError(f"a {item.kind} has no '{message}' message; use {', '.join(messages_of(item))}")
    if request.edition is not None and request.edition not in EDITIONS:
        raise ValueError(f"'{request.edition}' is not an edition; use {', '.join(EDITIONS)}")
    if message in events.FOLLOWING:
        if request.segment:
            raise ValueError(f"a{'n' if message[0] in 'aeiou' else ''} {message} goes to the event's invitees by "
                             "their answers; leave out the segment")
        _check_following(session, key, item, message)
        return item, message, message
    segment = request.segment or item.meta.audience
    segment_named(settings.content_dir, segment)
    return item, segment, message


def _check_following(session: Session, key: str, item: Item, message: str) -> None:
    pending = events.unannounced(session, key, item.meta)
    if pending is None:
        raise ValueError(f"the invitation to {item.slug} has not gone out yet; send the invitation first")
    if message == events.CANCELLATION and "cancelled" not in pending:
        raise ValueError(f"{item.slug} is not cancelled: set `status: cancelled` in its meta.yaml first"
                         if item.meta.status != "cancelled" else f"the cancellation of {item.slug} went out already")
    if message == events.UPDATE and not [change for change in pending if change != "cancelled"]:
        raise ValueError(f"nothing changed in the time, place or join link of {item.slug} since invitees "
                         "were last told; edit meta.yaml first")


def check_mail_settings(settings: Settings) -> None:
    """ValueError when real mail must not go out with these settings (an http base URL in public), so
    `herald send`, its test copies and the API refuse alike; a dry run or a render sends nothing and may."""
    reason = unsafe_for_mail(settings)
    if reason is not None:
        raise ValueError(reason)


def create(session: Session, request: Request, settings: Settings, origin: str) -> Campaign:
    check_mail_settings(settings)
    item, segment, message = resolve(request, settings, session)
    key = campaigns.item_key(item, settings.content_dir)
    now = clock.now()
    campaign = campaigns.create(session, item=key, message=message, segment=segment, edition=request.edition,
                                send_at=request.send_at, origin=origin, now=now)
    if message in (events.UPDATE, events.CANCELLATION):
        announce(session, campaign, item, now)
    session.commit()
    if campaign.state == "sending":
        _start(campaign.id)
    return campaign


def announce(session: Session, campaign: Campaign, item: Item, now: datetime) -> None:
    """An update or cancellation is a new revision (SEQUENCE + 1) at once, so `herald check` stops flagging
    it; the reminders follow the event, or stop with it."""
    campaign.revision = events.publish(session, campaign.item, item.meta, now).sequence
    if campaign.message == events.CANCELLATION:
        events.stop_pending(session, campaign.item, now, "the event is cancelled")
    else:
        events.schedule(session, item, campaign.item, now)


def audience_of(campaign: Campaign, item: Item | None, settings: Settings) -> ColumnElement[bool]:
    """Whom a campaign addresses: a segment, the people awaiting confirmation, or an event's invitees
    by their answers. ContentInvalid when its segment is not in segments.yaml."""
    if campaign.message in events.FOLLOWING:
        return events.audience(campaign, item.meta)
    return campaigns.audience(campaign, settings.content_dir)


def pause(session: Session, campaign_id: int) -> Campaign:
    return _move(session, campaign_id, "paused", "paused by the operator")


def resume(session: Session, campaign_id: int) -> Campaign:
    campaign = _get(session, campaign_id)
    if campaign.state != "paused":  # a scheduled one waits for its time; `herald send` sends now
        raise campaigns.StateError(f"campaign {campaign_id} is {campaign.state}; only a paused campaign resumes")
    campaigns.move(campaign, "sending", clock.now())
    session.commit()
    _start(campaign.id)  # dispatches the rows left pending, then continues the fan-out
    return campaign


def cancel(session: Session, campaign_id: int) -> Campaign:
    return _move(session, campaign_id, "cancelled", "cancelled by the operator")


def _move(session: Session, campaign_id: int, to: str, reason: str) -> Campaign:
    campaign = _get(session, campaign_id)
    campaigns.move(campaign, to, clock.now(), reason)
    session.commit()
    return campaign


def ask_pending(session: Session) -> Campaign | None:
    """Ask every pending subscriber not yet asked to confirm; the confirmation campaign under way, if any.

    Beat's sweep does the same on its own; this lets a command start it now and follow it.
    """
    new = campaigns.confirmation_due(session, clock.now())
    if new is not None:
        _start(new)
    return session.scalar(select(Campaign).where(Campaign.message == CONFIRMATION,
                                                 Campaign.state.in_(("sending", "paused")))
                          .order_by(Campaign.id.desc()).limit(1))


def _start(campaign_id: int) -> None:
    from worker.tasks import (
        start,  # the Celery app is only loaded by actions that enqueue
    )

    start.delay(campaign_id)


def _get(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise LookupError(f"no campaign {campaign_id}; `herald campaigns list` shows them")
    return campaign


def describe(session: Session, campaign: Campaign) -> dict[str, Any]:
    """A campaign as the CLI tables and the API show it, with its live counts."""
    return {
        "id": campaign.id, "item": campaign.item, "message": campaign.message, "segment": campaign.segment,
        "edition": campaign.edition, "state": campaign.state, "reason": campaign.reason, "origin": campaign.origin,
        "send_at": campaign.send_at, "created_at": campaign.created_at, "started_at": campaign.started_at,
        "finished_at": campaign.finished_at, "counts": campaigns.counts(session, campaign.id),
    }


def sync(session: Session, settings: Settings) -> tuple[list[Campaign], list[ContentInvalid]]:
    """Every valid item's send_at into a scheduled campaign; the invalid ones come back unscheduled.

    Events follow their meta.yaml too: reminders and the follow-up move with the event, and
    `status: cancelled` stops what is pending and sends the cancellation to whoever was invited.
    """
    items, broken = [], []
    for folder in find_items(settings.content_dir):
        try:
            items.append(load_item(folder))
        except ContentInvalid as error:
            broken.append(error)
    now = clock.now()
    changed = campaigns.sync_schedules(session, [item for item in items if not _cancelled(item)],
                                       settings.content_dir, now)
    cancellations = []
    for item in items:
        if item.kind != "event":
            continue
        key = campaigns.item_key(item, settings.content_dir)
        pending = events.unannounced(session, key, item.meta)
        if _cancelled(item) and pending is None:
            events.stop_pending(session, key, now, "the event is cancelled")  # nobody was invited: nothing to say
        elif _cancelled(item) and "cancelled" in pending:
            campaign = campaigns.create(session, item=key, message=events.CANCELLATION, segment=events.CANCELLATION,
                                        edition=None, send_at=None, origin="schedule", now=now)
            announce(session, campaign, item, now)
            cancellations.append(campaign)
        elif pending is not None and not _cancelled(item):
            events.schedule(session, item, key, now)
    session.commit()
    for campaign in cancellations:
        _start(campaign.id)
    return changed + cancellations, broken


def _cancelled(item: Item) -> bool:
    return item.kind == "event" and item.meta.status == "cancelled"


def listing(session: Session, limit: int = 50) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit)))


def audience(session: Session, settings: Settings, item: Item, segment: str,
             message: str) -> tuple[dict[str, int], list[Subscriber]]:
    """For a dry run: mailable members by language (= edition), and the first few of them."""
    where = audience_of(Campaign(item=campaigns.item_key(item, settings.content_dir), message=message,
                                 segment=segment), item, settings)
    by_language = dict(session.execute(select(Subscriber.language, func.count()).where(where)
                                       .group_by(Subscriber.language)).all())
    first = list(session.scalars(select(Subscriber).where(where).order_by(Subscriber.id).limit(10)))
    return by_language, first
