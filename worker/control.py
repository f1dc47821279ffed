"""What an operator can do to a campaign, the same from the CLI and from the HTTP API.

Each action validates first and changes the database in one commit, then tells the workers
(enqueues a task) only after that commit, so a task never looks for a row that is not there yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from subscribers.models import Subscriber
from subscribers.segments import members, segment_named
from worker import campaigns, clock
from worker.content import Item, find_items, load_item
from worker.models import Campaign
from worker.problems import ContentInvalid
from worker.render import CONFIRMATION, EDITIONS, MESSAGES
from worker.settings import Settings


@dataclass(frozen=True)
class Request:
    """A campaign as asked for: the item folder, and what to override of its meta."""

    item: Path
    segment: str | None = None  # default: the item's audience
    message: str | None = None  # default: the item's first message (newsletter, invitation)
    edition: str | None = None  # default: each subscriber's language
    send_at: datetime | None = None  # default: now (the item's own send_at is `herald sync`'s)


def resolve(request: Request, settings: Settings) -> tuple[Item, str, str]:
    """The item, segment and message a request means; ContentInvalid or ValueError say what is wrong."""
    item = load_item(request.item)
    message = request.message or MESSAGES[item.kind][0]
    if message not in MESSAGES[item.kind]:
        raise ValueError(f"a {item.kind} has no '{message}' message; use {', '.join(MESSAGES[item.kind])}")
    if request.edition is not None and request.edition not in EDITIONS:
        raise ValueError(f"'{request.edition}' is not an edition; use {', '.join(EDITIONS)}")
    segment = request.segment or item.meta.audience
    segment_named(settings.content_dir, segment)
    return item, segment, message


def create(session: Session, request: Request, settings: Settings, origin: str) -> Campaign:
    item, segment, message = resolve(request, settings)
    campaign = campaigns.create(session, item=campaigns.item_key(item, settings.content_dir), message=message,
                                segment=segment, edition=request.edition, send_at=request.send_at, origin=origin,
                                now=clock.now())
    session.commit()
    if campaign.state == "sending":
        _start(campaign.id)
    return campaign


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
    """Every valid item's send_at into a scheduled campaign; the invalid ones come back unscheduled."""
    items, broken = [], []
    for folder in find_items(settings.content_dir):
        try:
            items.append(load_item(folder))
        except ContentInvalid as error:
            broken.append(error)
    changed = campaigns.sync_schedules(session, items, settings.content_dir, clock.now())
    session.commit()
    return changed, broken


def listing(session: Session, limit: int = 50) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit)))


def audience(session: Session, settings: Settings, segment: str) -> tuple[dict[str, int], list[Subscriber]]:
    """For a dry run: mailable members by language (= edition), and the first few of them."""
    where = members(segment_named(settings.content_dir, segment))
    by_language = dict(session.execute(select(Subscriber.language, func.count()).where(where)
                                       .group_by(Subscriber.language)).all())
    first = list(session.scalars(select(Subscriber).where(where).order_by(Subscriber.id).limit(10)))
    return by_language, first
