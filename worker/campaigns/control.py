"""What an operator can do to a campaign, the same from the CLI and from the HTTP API.

Each action validates first and changes the database in one commit, then tells the workers
(enqueues a task) only after that commit, so a task never looks for a row that is not there yet.

A trigger is planned before anything is recorded (`plan`), so that an operator never mails the same
people twice by accident: one campaign per (item, message, audience) unless they say `again` (with a
reason, stored); a manual send moves the item's pending scheduled campaign instead of adding one; no
time in the past, nothing about an event that has ended; and a campaign that starts now is recorded
only once the broker answers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from foundation import clock
from foundation.problems import ContentInvalid, Problem, display_path
from foundation.settings import Settings, unsafe_for_mail
from foundation.yamldoc import parse_yaml
from subscribers.models import Subscriber
from subscribers.profile import clean_text
from subscribers.segments import segment_named
from worker.authoring.content import Item, find_items, in_content, load_item
from worker.campaigns import ledger
from worker.campaigns.models import Campaign
from worker.delivery.dkim import unusable_keys
from worker.events import lifecycle
from worker.rendering.render import CONFIRMATION, EDITIONS, MESSAGES, messages_of

# One campaign per (item, message, audience): the messages an operator could send twice by accident. An update,
# a cancellation and a waitlist message have rules of their own (events.py): each tells something new, once.
ONCE = (*MESSAGES["newsletter"], lifecycle.INVITATION, lifecycle.REMINDER, lifecycle.FOLLOW_UP)
ABOUT_THE_EVENT = (lifecycle.INVITATION, lifecycle.REMINDER, lifecycle.UPDATE)  # pointless once the event has ended
REPEAT_REASON_LIMIT = 500  # characters of an `again` reason
BROKER_TIMEOUT = 3.0  # seconds a trigger waits for the broker's PING before refusing


@dataclass(frozen=True)
class Request:
    """A campaign as asked for: the item folder, and what to override of its meta."""

    item: Path
    segment: str | None = None  # default: the item's audience
    message: str | None = None  # default: the item's first message (newsletter, invitation)
    edition: str | None = None  # default: each subscriber's language
    send_at: datetime | None = None  # default: now (a ready item's own send_at is beat's)
    now: bool = False  # send the pending scheduled campaign of this audience now, instead of at its time
    again: str | None = None  # why to mail an audience that a campaign already covers


@dataclass(frozen=True)
class Words:
    """How an interface names what the operator can do, so that a refusal says what to type there."""

    at: str  # the option that gives a time
    move: str  # how to move a scheduled campaign
    now: str
    again: str
    follow: str  # how to follow campaign {id}
    resume: str  # how to resume campaign {id}


CLI = Words(at="--at", move='--at "YYYY-MM-DD HH:MM"', now="--now", again='--again "why"',
            follow="`herald status {id}`", resume="`herald resume {id}`")
API = Words(at="send_at", move='a later "send_at"', now='"now": true', again='"again": "why"',
            follow="GET /api/campaigns/{id}", resume="POST /api/campaigns/{id}/resume")


class Covered(ValueError):
    """A campaign already covers this item's message to this audience; the API answers 409."""


class BrokerDown(RuntimeError):
    """The broker does not answer, so nothing was recorded; the API answers 503."""


class NotQueued(RuntimeError):
    """The campaign is recorded and sending, but the broker did not take its start: beat's sweep starts it."""

    def __init__(self, campaign: Campaign, message: str) -> None:
        super().__init__(message)
        self.campaign = campaign


@dataclass(frozen=True)
class Plan:
    """What a trigger will do, decided before anything is recorded (and shown to the operator first)."""

    item: Item
    key: str  # the item as campaigns name it
    segment: str
    message: str
    edition: str | None
    send_at: datetime | None  # None: now
    takes_over: Campaign | None = None  # the pending scheduled campaign this trigger moves instead of adding one
    again: str | None = None  # why, when a campaign before covers the same audience


def local(moment: datetime, item: Item) -> str:
    """A time as the operator reads it: the date and time in the item's zone, which is named."""
    return f"{moment.astimezone(item.meta.zone):%Y-%m-%d %H:%M} {item.meta.timezone}"


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
    key = ledger.item_key(item, settings.content_dir)
    message = request.message or (lifecycle.next_message(session, key, item.meta) if item.kind == "event"
                                  else messages_of(item)[0])
    if message not in messages_of(item):
        raise ValueError(f"a {item.kind} has no '{message}' message; use {', '.join(messages_of(item))}")
    if request.edition is not None and request.edition not in EDITIONS:
        raise ValueError(f"'{request.edition}' is not an edition; use {', '.join(EDITIONS)}")
    if message in lifecycle.FOLLOWING:
        if request.segment:
            raise ValueError(f"a{'n' if message[0] in 'aeiou' else ''} {message} goes to the event's invitees by "
                             "their answers; leave out the segment")
        _check_following(session, key, item, message)
        return item, message, message
    segment = request.segment or item.meta.audience
    segment_named(settings.content_dir, segment)
    return item, segment, message


def _check_following(session: Session, key: str, item: Item, message: str) -> None:
    pending = lifecycle.unannounced(session, key, item.meta)
    if pending is None:
        raise ValueError(f"the invitation to {item.slug} has not gone out yet; send the invitation first")
    if message == lifecycle.CANCELLATION and "cancelled" not in pending:
        raise ValueError(f"{item.slug} is not cancelled: set `status: cancelled` in its meta.yaml first"
                         if item.meta.status != "cancelled" else f"the cancellation of {item.slug} went out already")
    if message == lifecycle.UPDATE and not [change for change in pending if change != "cancelled"]:
        raise ValueError(f"nothing changed in the time, place or join link of {item.slug} since invitees "
                         "were last told; edit meta.yaml first")


def check_mail_settings(settings: Settings) -> None:
    """ValueError when real mail must not go out with these settings (an http base URL in public), so
    `herald send`, its test copies and the API refuse alike; a dry run or a render sends nothing and may.
    Also when a DKIM key of HERALD_DKIM_KEYS cannot sign: mail must never go out unsigned by mistake."""
    reason = unsafe_for_mail(settings) or unusable_keys(settings)
    if reason is not None:
        raise ValueError(reason)


def plan(session: Session, request: Request, settings: Settings, words: Words = CLI) -> Plan:
    """What `request` would do, or why it must not: ContentInvalid, ValueError, or Covered (a campaign before
    covers the audience; its sentence says which, its state and time, and what the operator can do)."""
    if request.now and request.send_at is not None:
        raise ValueError(f"give {words.at} or {words.now}, not both")
    item, segment, message = resolve(request, settings, session)
    key = ledger.item_key(item, settings.content_dir)
    now = clock.now()
    if request.send_at is not None and request.send_at < now:
        raise ValueError(f"{words.at} {local(request.send_at, item)} is in the past (it is {local(now, item)} now); "
                         f"give a later time, or leave out {words.at} to send now")
    if ended := after_event(item, message, request.send_at or now):
        raise ValueError(ended)
    again = _reason(request.again, words)
    covered = [campaign for campaign in ledger.of_audience(session, key, message, segment)
               if campaign.state in ledger.COVERING] if message in ONCE else []
    pending = min((c for c in covered if c.state == "scheduled"), key=lambda c: c.send_at, default=None)
    chosen = Plan(item, key, segment, message, request.edition, request.send_at)
    if again is not None:
        return replace(chosen, again=again if covered else None)
    if pending is not None and (request.now or request.send_at is not None):
        return replace(chosen, takes_over=pending)
    if covered:
        raise Covered(_covered(item, key, message, segment, pending or covered[-1], words))
    return chosen


def _reason(again: str | None, words: Words) -> str | None:
    if again is None:
        return None
    reason = clean_text(again)
    if not reason:
        raise ValueError(f"{words.again}: say why this audience gets the message again; the reason is kept with "
                         "the campaign")
    if len(reason) > REPEAT_REASON_LIMIT:
        raise ValueError(f"the reason for sending again holds at most {REPEAT_REASON_LIMIT} characters; "
                         f"this one holds {len(reason)}")
    return reason


def _covered(item: Item, key: str, message: str, segment: str, campaign: Campaign, words: Words) -> str:
    """One sentence: which campaign covers the audience, its state and when, and what the operator can do."""
    what = f"{key} already has campaign {campaign.id} for its {message} to '{segment}'"
    again = f"send another one on purpose with {words.again}"
    if campaign.state == "scheduled":
        return (f"{what}, scheduled for {local(campaign.send_at, item)}: move it with {words.move}, "
                f"send it now with {words.now}, or {again}.")
    if campaign.state == "paused":
        why = f" ({campaign.reason})" if campaign.reason else ""
        return (f"{what}, paused since {local(campaign.updated_at, item)}{why}: resume it with "
                f"{words.resume.format(id=campaign.id)}, or {again}.")
    if campaign.state == "sending":
        return (f"{what}, sending since {local(campaign.started_at or campaign.updated_at, item)}: follow it with "
                f"{words.follow.format(id=campaign.id)}, or {again}.")
    return f"{what}, sent on {local(campaign.finished_at or campaign.updated_at, item)}: {again}."


def after_event(item: Item, message: str, when: datetime) -> str | None:
    """Why `message` must not go out at `when`: the event it is about has ended by then (a wrong year, often)."""
    if item.kind != "event" or message not in ABOUT_THE_EVENT:
        return None
    end = item.meta.aware(item.meta.end)
    if when < end:
        return None
    return (f"{item.slug} ends {local(end, item)}, before this {message} would go out ({local(when, item)}): "
            "nothing is sent about an event that has ended; check start and end in its meta.yaml (a wrong year?)")


def check_broker() -> None:
    """BrokerDown unless the broker the tasks go to answers a PING within BROKER_TIMEOUT: checked before a
    campaign that starts now is recorded, so a trigger without a broker leaves nothing behind to retry twice."""
    from worker.campaigns.celery_app import app

    url = app.conf.broker_url
    client = redis.Redis.from_url(url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as error:
        raise BrokerDown(f"Nothing was recorded: the broker at HERALD_REDIS_URL={_shown(url)} does not answer "
                         f"({error}). Start it (`herald up` runs one), or set HERALD_REDIS_URL to yours, then "
                         "try again.") from None
    finally:
        client.close()


def _shown(url: str) -> str:
    """A URL without its password, fit for a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit(parts._replace(netloc=netloc))


def create(session: Session, request: Request, settings: Settings, origin: str, words: Words = CLI) -> Campaign:
    """Plan the request and carry it out: Covered, ValueError, ContentInvalid or BrokerDown leave nothing
    recorded; NotQueued says the campaign is recorded and beat's sweep will start it."""
    check_mail_settings(settings)
    chosen = plan(session, request, settings, words)
    now = clock.now()
    if chosen.send_at is None or chosen.send_at <= now:
        check_broker()
    if chosen.takes_over is not None:
        campaign = _take_over(chosen.takes_over, chosen, origin, now)
    else:
        campaign = ledger.create(session, item=chosen.key, message=chosen.message, segment=chosen.segment,
                                    edition=chosen.edition, send_at=chosen.send_at, origin=origin, now=now,
                                    repeat_reason=chosen.again)
    if chosen.message in (lifecycle.UPDATE, lifecycle.CANCELLATION):
        announce(session, campaign, chosen.item, now)
    session.commit()
    if campaign.state == "sending":
        _enqueue(session, campaign)
    return campaign


def _take_over(campaign: Campaign, chosen: Plan, origin: str, now: datetime) -> Campaign:
    """Move a pending scheduled campaign to the operator's time. Its origin becomes theirs, and from then on
    beat's sync and the event's schedule leave it alone: they move only campaigns whose origin is `schedule`."""
    campaign.origin, campaign.updated_at = origin, now
    if chosen.edition is not None:
        campaign.edition = chosen.edition
    if chosen.send_at is None or chosen.send_at <= now:
        campaign.send_at = None
        ledger.move(campaign, "sending", now)
    else:
        campaign.send_at = chosen.send_at
    return campaign


def announce(session: Session, campaign: Campaign, item: Item, now: datetime) -> None:
    """An update or cancellation is a new revision (SEQUENCE + 1) at once, so `herald check` stops flagging
    it; the reminders follow the event, or stop with it."""
    campaign.revision = lifecycle.publish(session, campaign.item, item.meta, now).sequence
    if campaign.message == lifecycle.CANCELLATION:
        lifecycle.stop_pending(session, campaign.item, now, "the event is cancelled")
    else:
        lifecycle.schedule(session, item, campaign.item, now)


def audience_of(campaign: Campaign, item: Item | None, settings: Settings) -> ColumnElement[bool]:
    """Whom a campaign addresses: a segment, the people awaiting confirmation, or an event's invitees
    by their answers. ContentInvalid when its segment is not in segments.yaml."""
    if campaign.message in lifecycle.FOLLOWING:
        return lifecycle.audience(campaign, item.meta)
    return ledger.audience(campaign, settings.content_dir)


def pause(session: Session, campaign_id: int) -> Campaign:
    return _move(session, campaign_id, "paused", "paused by the operator")


def resume(session: Session, campaign_id: int) -> Campaign:
    campaign = _get(session, campaign_id)
    if campaign.state != "paused":  # a scheduled one waits for its time; `herald send` sends now
        raise ledger.StateError(f"campaign {campaign_id} is {campaign.state}; only a paused campaign resumes")
    ledger.move(campaign, "sending", clock.now())
    session.commit()
    _enqueue(session, campaign)  # dispatches the rows left pending, then continues the fan-out
    return campaign


def cancel(session: Session, campaign_id: int) -> Campaign:
    return _move(session, campaign_id, "cancelled", "cancelled by the operator")


def _move(session: Session, campaign_id: int, to: str, reason: str) -> Campaign:
    campaign = _get(session, campaign_id)
    ledger.move(campaign, to, clock.now(), reason)
    session.commit()
    return campaign


def ask_pending(session: Session) -> Campaign | None:
    """Ask every pending subscriber not yet asked to confirm; the confirmation campaign under way, if any.

    Beat's sweep does the same on its own; this lets a command start it now and follow it.
    """
    new = ledger.confirmation_due(session, clock.now())
    if new is not None:
        _start(session, new)
    return session.scalar(select(Campaign).where(Campaign.message == CONFIRMATION,
                                                 Campaign.state.in_(("sending", "paused")))
                          .order_by(Campaign.id.desc()).limit(1))


def _start(session: Session, campaign_id: int) -> str | None:
    """Enqueue the campaign's start task on the queue of the installation whose database `session` opens; None, or
    why the broker did not take it (beat's sweep then starts a sending campaign whose fan-out never began, so
    nothing is lost)."""
    from kombu.exceptions import OperationalError

    from worker.campaigns.celery_app import START, namespaced
    from worker.campaigns.installation import keys_of

    try:
        namespaced(keys_of(session)).send_task(START, args=(campaign_id,))
    except OperationalError as error:
        return str(error)
    return None


def _enqueue(session: Session, campaign: Campaign) -> None:
    """Start a committed campaign; NotQueued, with the reason kept on the campaign, when the broker did not take it."""
    refused = _start(session, campaign.id)
    if refused is None:
        return
    campaign.reason = (f"not queued when triggered (the broker did not answer: {refused}); beat's sweep starts it "
                       "once Redis answers")
    session.commit()
    raise NotQueued(campaign, f"Campaign {campaign.id} is recorded, but the broker did not take its start "
                              f"({refused}): beat's sweep starts it once Redis answers. Do not send it again; "
                              f"`herald status {campaign.id}` follows it.")


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
        "finished_at": campaign.finished_at, "repeat_reason": campaign.repeat_reason,
        "counts": ledger.counts(session, campaign.id),
    }


@dataclass(frozen=True)
class Synced:
    changed: list[Campaign]  # scheduled, moved, or cancellations started
    broken: list[ContentInvalid]  # invalid items, and ready events whose invitation would come after the event
    drafts: list[str]  # items with a send_at that stay unscheduled: their status is draft


def sync(session: Session, settings: Settings) -> Synced:
    """Every ready item's send_at into a scheduled campaign; drafts and invalid items stay unscheduled.

    Only `status: ready` lets beat send an item by itself, so a new folder is never mailed because it exists.
    Events follow their meta.yaml too, whatever their status once invited: reminders and the follow-up move with
    the event, and `status: cancelled` stops what is pending and sends the cancellation to whoever was invited.
    """
    items, broken = [], []
    for folder in find_items(settings.content_dir):
        try:
            items.append(load_item(folder))
        except ContentInvalid as error:
            broken.append(error)
    now = clock.now()
    ready = []
    for item in (item for item in items if item.meta.status == "ready" and item.meta.send_at is not None):
        ended = after_event(item, MESSAGES[item.kind][0], max(item.meta.aware(item.meta.send_at), now))
        if ended is None:
            ready.append(item)
        elif not ledger.of_audience(session, ledger.item_key(item, settings.content_dir), lifecycle.INVITATION,
                                       item.meta.audience):
            broken.append(ContentInvalid([Problem(item.path / "meta.yaml", _line_of(item, "send_at"),
                                                  f"not scheduled: {ended}")]))
    changed = ledger.sync_schedules(session, ready, settings.content_dir, now)
    cancellations = []
    for item in items:
        if item.kind != "event":
            continue
        key = ledger.item_key(item, settings.content_dir)
        pending = lifecycle.unannounced(session, key, item.meta)
        if _cancelled(item) and pending is None:
            lifecycle.stop_pending(session, key, now, "the event is cancelled")  # nobody was invited: nothing to say
        elif _cancelled(item) and "cancelled" in pending:
            campaign = ledger.create(session, item=key, message=lifecycle.CANCELLATION, segment=lifecycle.CANCELLATION,
                                        edition=None, send_at=None, origin="schedule", now=now)
            announce(session, campaign, item, now)
            cancellations.append(campaign)
        elif pending is not None and not _cancelled(item):
            lifecycle.schedule(session, item, key, now)
    session.commit()
    for campaign in cancellations:
        _start(session, campaign.id)  # without a broker, beat's sweep starts it once there is one
    drafts = [ledger.item_key(item, settings.content_dir) for item in items
              if item.meta.status == "draft" and item.meta.send_at is not None]
    return Synced(changed + cancellations, broken, drafts)


def _line_of(item: Item, name: str) -> int:
    return parse_yaml((item.path / "meta.yaml").read_text(encoding="utf-8"), 1).line_of((name,))


def _cancelled(item: Item) -> bool:
    return item.kind == "event" and item.meta.status == "cancelled"


def listing(session: Session, limit: int = 50) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit)))


def audience(session: Session, settings: Settings, item: Item, segment: str,
             message: str) -> tuple[dict[str, int], list[Subscriber]]:
    """For a dry run: mailable members by language (= edition), and the first few of them."""
    where = audience_of(Campaign(item=ledger.item_key(item, settings.content_dir), message=message,
                                 segment=segment), item, settings)
    by_language = dict(session.execute(select(Subscriber.language, func.count()).where(where)
                                       .group_by(Subscriber.language)).all())
    first = list(session.scalars(select(Subscriber).where(where).order_by(Subscriber.id).limit(10)))
    return by_language, first
