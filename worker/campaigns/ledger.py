"""Campaigns and the delivery ledger: the state machine and every database step of a send.

No Celery and no SMTP here: tasks.py calls these functions, so each step is one small transaction
that a crash can interrupt anywhere without losing or doubling a recipient.

    draft ─► scheduled ─► sending ⇄ paused ─► sent
                 │           │        │
                 ▼           ▼        ▼
               missed     failed   cancelled (from draft, scheduled, sending or paused)

A ledger row goes pending ─► sending (claimed by one batch, with a lease) ─► sent, retry (back to
pending when due), failed, bounced or suppressed. A row is claimed only while pending, due for a
retry, or held by a lease that ran out, so two batches never hold one row.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from subscribers import store
from subscribers.models import Subscriber, SubscriptionRequest
from subscribers.segments import mailable, members, segment_named
from worker.authoring.content import Item
from worker.campaigns.models import Campaign, Delivery
from worker.rendering.render import CONFIRMATION, MESSAGES

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"scheduled", "sending", "cancelled"}),
    "scheduled": frozenset({"sending", "missed", "cancelled"}),
    "sending": frozenset({"paused", "sent", "failed", "cancelled"}),
    "paused": frozenset({"sending", "cancelled"}),
}
FINAL_STATES = frozenset({"sent", "cancelled", "failed", "missed"})
COVERING = ("scheduled", "sending", "paused", "sent")  # a campaign in these has (or will have) mailed its audience
UNFINISHED = ("pending", "sending", "retry")
FANOUT_PAGE = 2000
# The ledger's UPDATEs touch rows no session holds as objects: skipping the ORM's synchronisation of
# its identity map saves a third of a mark-sent (bench/README.md, "profile-driven fixes").
_PLAIN = {"synchronize_session": False}


class StateError(ValueError):
    """An operator asked for a move the state machine does not allow; the message says what can be done."""


@dataclass(frozen=True)
class Batch:
    """A slice of one campaign's ledger by subscriber id; whatever in it is claimable is sent."""

    campaign_id: int
    first: int
    last: int


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    language: str
    timezone: str | None
    link_key: str
    mailable: bool


def move(campaign: Campaign, to: str, now: datetime, reason: str = "") -> None:
    if to not in TRANSITIONS.get(campaign.state, frozenset()):
        if campaign.state in FINAL_STATES:
            verb = {"paused": "pause", "sending": "resume", "cancelled": "cancel"}.get(to, f"move to {to}")
            raise StateError(f"campaign {campaign.id} is {campaign.state}, so it is over; there is nothing to {verb}")
        allowed = ", ".join(sorted(TRANSITIONS.get(campaign.state, ())))
        raise StateError(f"campaign {campaign.id} is {campaign.state}; it can move to {allowed}, not {to}")
    campaign.state, campaign.reason, campaign.updated_at = to, reason, now
    if to == "sending" and campaign.started_at is None:
        campaign.started_at = now
    if to in FINAL_STATES:
        campaign.finished_at = now


def create(session: Session, *, item: str, message: str, segment: str, edition: str | None,
           send_at: datetime | None, origin: str, now: datetime, schedule_key: str | None = None,
           repeat_reason: str | None = None) -> Campaign:
    campaign = Campaign(item=item, message=message, segment=segment, edition=edition, send_at=send_at,
                        state="draft", origin=origin, schedule_key=schedule_key, created_at=now, updated_at=now,
                        repeat_reason=repeat_reason)
    session.add(campaign)
    session.flush()
    move(campaign, "scheduled" if send_at is not None and send_at > now else "sending", now)
    return campaign


def item_key(item: Item, content_dir: Path) -> str:
    """How a campaign names its content: the item folder relative to the content directory."""
    return item.path.resolve().relative_to(content_dir.resolve()).as_posix()


def of_audience(session: Session, item: str, message: str, segment: str) -> list[Campaign]:
    """Every campaign of an item's message to one audience, oldest first (whatever its state)."""
    return list(session.scalars(select(Campaign).where(Campaign.item == item, Campaign.message == message,
                                                       Campaign.segment == segment).order_by(Campaign.id)))


def sync_schedules(session: Session, items: list[Item], content_dir: Path, now: datetime) -> list[Campaign]:
    """Make one scheduled campaign per item with a `send_at`; a moved `send_at` moves a campaign not yet started.

    Returns the campaigns created or moved. An item whose campaign already started or ended is left alone, and so
    is one that an operator's campaign covers (any campaign of its message to its audience) or took over (its
    origin is no longer `schedule`): beat never adds a second campaign beside a manual send, nor moves one.
    """
    changed = []
    for item in items:
        if item.meta.send_at is None:
            continue
        message = MESSAGES[item.kind][0]
        folder = item_key(item, content_dir)
        key = f"{folder}:{message}"
        send_at = item.meta.aware(item.meta.send_at)
        campaign = session.scalar(select(Campaign).where(Campaign.schedule_key == key))
        if campaign is None and not of_audience(session, folder, message, item.meta.audience):
            campaign = Campaign(item=folder, message=message, segment=item.meta.audience,
                                edition=None, send_at=send_at, state="scheduled", origin="schedule",
                                schedule_key=key, created_at=now, updated_at=now)
            session.add(campaign)
            changed.append(campaign)
        elif campaign is None or campaign.origin != "schedule":
            continue
        elif campaign.state == "scheduled" and (campaign.send_at != send_at or campaign.segment != item.meta.audience):
            campaign.send_at, campaign.segment, campaign.updated_at = send_at, item.meta.audience, now
            changed.append(campaign)
    session.flush()
    return changed


def start_due(session: Session, now: datetime, grace: timedelta) -> tuple[list[int], list[int]]:
    """Scheduled campaigns whose time has come: (started, missed). Too late is missed, never sent late silently."""
    started, missed = [], []
    for campaign in session.scalars(select(Campaign).where(Campaign.state == "scheduled", Campaign.send_at <= now)
                                    .with_for_update(skip_locked=True)):
        late = now - campaign.send_at
        if late > grace:
            due = campaign.send_at.astimezone(UTC)  # a campaign made in this session may hold another zone
            move(campaign, "missed", now, f"due {due:%Y-%m-%d %H:%M} UTC, {_hours(late)} late; "
                                          f"past the {_hours(grace)} grace window, so it was not sent")
            missed.append(campaign.id)
        else:
            move(campaign, "sending", now)
            started.append(campaign.id)
    return started, missed


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


# ---- fan-out ---------------------------------------------------------------------------------

def _insert_ignoring_duplicates(session: Session):  # noqa: ANN202 - a dialect's Insert
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(Delivery).on_conflict_do_nothing(index_elements=["campaign_id", "subscriber_id"])


def _reachable() -> ColumnElement[bool]:
    """May be asked to confirm: not suppressed, and never bounced or complained."""
    return and_(store.not_suppressed(), Subscriber.status.not_in(("bounced", "complained")))


def _open_request(unasked: bool) -> ColumnElement[bool]:
    conditions = [SubscriptionRequest.subscriber_id == Subscriber.id, SubscriptionRequest.confirmed_at.is_(None)]
    if unasked:
        conditions.append(SubscriptionRequest.asked_in.is_(None))
    return select(SubscriptionRequest.id).where(*conditions).exists()


def awaiting_confirmation() -> ColumnElement[bool]:
    """A confirmation campaign's audience: pending people never yet asked (an import without consent),
    and anyone with a request from the subscribe form not yet mailed."""
    asked = (select(Delivery.id).join(Campaign, Campaign.id == Delivery.campaign_id)
             .where(Campaign.message == CONFIRMATION, Delivery.subscriber_id == Subscriber.id))
    never_asked = and_(Subscriber.status == "pending", ~asked.exists())
    return and_(_reachable(), or_(never_asked, _open_request(unasked=True)))


def audience(campaign: Campaign, content_dir: Path) -> ColumnElement[bool]:
    """Whom the campaign addresses; ContentInvalid when its segment is not in segments.yaml."""
    if campaign.message == CONFIRMATION:
        return awaiting_confirmation()
    return members(segment_named(content_dir, campaign.segment))


def eligible(campaign: Campaign) -> ColumnElement[bool]:
    """Who may still receive it when their row comes up: the mailable; for a confirmation, whoever still has
    something to confirm."""
    if campaign.message == CONFIRMATION:
        return and_(_reachable(), or_(Subscriber.status == "pending", _open_request(unasked=False)))
    return mailable()


def fan_out_page(session: Session, campaign: Campaign, where: ColumnElement[bool], now: datetime,
                 size: int = FANOUT_PAGE) -> list[int]:
    """Give the next page of the audience (`where`) a pending ledger row; returns their subscriber ids.

    Idempotent: the cursor only moves forward and the ledger is unique on (campaign, subscriber), so a
    fan-out restarted after a crash continues where the last committed page ended.
    """
    cursor = session.scalar(select(Campaign.fanout_cursor).where(Campaign.id == campaign.id))
    ids = list(session.scalars(select(Subscriber.id).where(where, Subscriber.id > cursor)
                               .order_by(Subscriber.id).limit(size)))
    if ids:  # copied inside the database: the ids do not travel back as 2,000 parameter sets
        page = select(literal(campaign.id), Subscriber.id, literal("pending"), literal(0), literal("")).where(
            where, Subscriber.id.between(ids[0], ids[-1]))
        session.execute(_insert_ignoring_duplicates(session).from_select(
            ["campaign_id", "subscriber_id", "state", "attempts", "error"], page))
    if ids and campaign.message == CONFIRMATION:  # these requests are being mailed now
        session.execute(update(SubscriptionRequest).where(
            SubscriptionRequest.subscriber_id.in_(ids), SubscriptionRequest.asked_in.is_(None),
            SubscriptionRequest.confirmed_at.is_(None)).values(asked_in=campaign.id))
    cursor = Campaign.fanout_cursor
    session.execute(update(Campaign).where(Campaign.id == campaign.id).values(
        fanout_cursor=case((cursor < ids[-1], ids[-1]), else_=cursor) if ids else cursor,
        fanout_done=len(ids) < size, fanout_seen_at=now))
    session.commit()
    return ids


def batches(campaign_id: int, subscriber_ids: list[int], size: int) -> Iterator[Batch]:
    for start in range(0, len(subscriber_ids), size):
        chunk = subscriber_ids[start:start + size]
        yield Batch(campaign_id, chunk[0], chunk[-1])


# ---- a batch -----------------------------------------------------------------------------------

def claimable(now: datetime) -> object:
    return or_(Delivery.state == "pending",
               and_(Delivery.state == "retry", Delivery.next_attempt_at <= now),
               and_(Delivery.state == "sending", Delivery.lease_until < now))


def claim(session: Session, batch: Batch, now: datetime, lease: timedelta,
          allowed: ColumnElement[bool] | None = None) -> tuple[str, list[Claimed]]:
    """Take every claimable row of the batch for this caller alone, with the person it addresses.

    `mailable` on each says whether the person is still `allowed` (default: mailable) to receive it.
    """
    token = secrets.token_hex(8)
    session.execute(update(Delivery).where(
        Delivery.campaign_id == batch.campaign_id, Delivery.subscriber_id.between(batch.first, batch.last),
        claimable(now)).values(state="sending", claim=token, lease_until=now + lease), execution_options=_PLAIN)
    rows = session.execute(
        select(Delivery.id, Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.language,
               Subscriber.timezone, Subscriber.link_key, (mailable() if allowed is None else allowed).label("mailable"))
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.claim == token, Delivery.state == "sending").order_by(Subscriber.id))
    claimed = [Claimed(*row) for row in rows]
    session.commit()
    return token, claimed


def extend_lease(session: Session, token: str, now: datetime, lease: timedelta) -> int:
    """Keep holding what is still ours; returns how many rows that is."""
    result = session.execute(update(Delivery).where(Delivery.claim == token, Delivery.state == "sending")
                             .values(lease_until=now + lease))
    session.commit()
    return result.rowcount


def release(session: Session, token: str) -> None:
    """Hand unsent rows back (a pause or cancel stopped the batch): pending again, for whoever resumes."""
    session.execute(update(Delivery).where(Delivery.claim == token, Delivery.state == "sending")
                    .values(state="pending", claim=None, lease_until=None))
    session.commit()


def _settle(session: Session, delivery_id: int, token: str, *, count_attempt: bool = False, **values: object) -> bool:
    """Record a row's outcome if this batch still holds it; commits at once, so the ledger is the truth.

    `count_attempt` adds one to the row's attempts in the same statement (else `values` may set them).
    """
    statement = _settle_statement(tuple(sorted(values)), count_attempt)
    result = session.execute(statement, {"delivery_id": delivery_id, "token": token, **values})
    session.commit()
    return result.rowcount == 1


@cache
def _settle_statement(names: tuple[str, ...], count_attempt: bool) -> Update:
    """One prepared UPDATE per kind of outcome, on the table, not the ORM class: building the statement and its
    cache key for every message cost ten times the UPDATE itself (bench/README.md, "profile-driven fixes")."""
    table = Delivery.__table__
    values: dict[str, object] = {"claim": None, "lease_until": None}
    values.update({name: bindparam(name, type_=table.c[name].type) for name in names})
    if count_attempt:
        values["attempts"] = table.c.attempts + 1
    return (table.update().where(table.c.id == bindparam("delivery_id"), table.c.claim == bindparam("token"))
            .values(values))


def mark_sent(session: Session, delivery_id: int, token: str, now: datetime) -> bool:
    return _settle(session, delivery_id, token, count_attempt=True, state="sent", sent_at=now, error="")


def mark_suppressed(session: Session, delivery_id: int, token: str) -> bool:
    return _settle(session, delivery_id, token, state="suppressed")


def mark_failed(session: Session, delivery_id: int, token: str, detail: str) -> bool:
    """A message that can never be sent to this address (no retry would help)."""
    return _settle(session, delivery_id, token, count_attempt=True, state="failed", error=detail)


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> timedelta:
    """Exponential, bounded, with full-half jitter so retries from many workers do not arrive together."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return timedelta(seconds=ceiling * (rng or random).uniform(0.5, 1.0))


def mark_temporary(session: Session, delivery_id: int, token: str, now: datetime, detail: str,
                   attempts_so_far: int, max_attempts: int, wait: timedelta) -> str:
    """A 4xx or a lost connection: retry later, or give up after `max_attempts`. Returns the new state."""
    attempt = attempts_so_far + 1
    state = "failed" if attempt >= max_attempts else "retry"
    _settle(session, delivery_id, token, state=state, attempts=attempt, error=detail,
            next_attempt_at=None if state == "failed" else now + wait)
    return state


def attempts_of(session: Session, delivery_id: int) -> int:
    return session.scalar(select(Delivery.attempts).where(Delivery.id == delivery_id)) or 0


def mark_bounced(session: Session, delivery_id: int, token: str, subscriber_id: int, detail: str, now: datetime,
                 threshold: int, secret_key: str) -> bool:
    """A 5xx for this address. At `threshold` hard bounces the person is bounced and suppressed; True then."""
    _settle(session, delivery_id, token, count_attempt=True, state="bounced", error=detail)
    bounces = session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.subscriber_id == subscriber_id, Delivery.state == "bounced"))
    if bounces < threshold:
        return False
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return False
    if subscriber.status == "confirmed":
        subscriber.status, subscriber.bounced_at, subscriber.updated_at = "bounced", now, now
    store.suppress(session, secret_key, subscriber.email, "bounced", now)
    session.commit()
    return True


# ---- progress, sweeping, finishing --------------------------------------------------------------

def counts(session: Session, campaign_id: int) -> dict[str, int]:
    """Live counts by ledger state, plus `targeted` (every row)."""
    by_state = dict(session.execute(select(Delivery.state, func.count()).where(Delivery.campaign_id == campaign_id)
                                    .group_by(Delivery.state)).all())
    result = {state: by_state.get(state, 0) for state in
              ("pending", "sending", "sent", "retry", "failed", "bounced", "suppressed")}
    result["targeted"] = sum(by_state.values())
    return result


def finish_if_done(session: Session, campaign_id: int, now: datetime) -> bool:
    """Sending → sent once the fan-out is over and no row is left to send; atomic, so any caller may try."""
    unfinished = exists().where(Delivery.campaign_id == campaign_id, Delivery.state.in_(UNFINISHED))
    result = session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.state == "sending",
                                                    Campaign.fanout_done.is_(True), ~unfinished)
                             .values(state="sent", finished_at=now, updated_at=now))
    session.commit()
    return result.rowcount == 1


def pause(session: Session, campaign_id: int, now: datetime, reason: str) -> bool:
    """Sending → paused, only if it is still sending (a worker may race the operator)."""
    result = session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.state == "sending")
                             .values(state="paused", reason=reason, updated_at=now))
    session.commit()
    return result.rowcount == 1


def state_of(session: Session, campaign_id: int) -> str | None:
    return session.scalar(select(Campaign.state).where(Campaign.id == campaign_id))


def requeue(session: Session, campaign_id: int, now: datetime, tag: str | None = None) -> int:
    """Rows due again (a retry's time came, or a lease ran out on a killed worker) become pending; how many.

    With a `tag`, they carry it until a batch claims them, so the caller can enqueue exactly these
    (`pending_batches(…, tag=tag)`) instead of every pending row.
    """
    result = session.execute(update(Delivery).where(
        Delivery.campaign_id == campaign_id,
        or_(and_(Delivery.state == "retry", Delivery.next_attempt_at <= now),
            and_(Delivery.state == "sending", Delivery.lease_until < now)))
        .values(state="pending", claim=tag, lease_until=None))
    session.commit()
    return result.rowcount


def pending_batches(session: Session, campaign_id: int, size: int, tag: str | None = None) -> Iterator[Batch]:
    """The campaign's pending rows (only those requeued with `tag`, if given) as batches, in keyset pages."""
    last = 0
    tagged = Delivery.claim == tag if tag is not None else true()
    while True:
        ids = list(session.scalars(select(Delivery.subscriber_id).where(
            Delivery.campaign_id == campaign_id, Delivery.state == "pending", tagged, Delivery.subscriber_id > last)
            .order_by(Delivery.subscriber_id).limit(FANOUT_PAGE)))
        if not ids:
            return
        yield from batches(campaign_id, ids, size)
        last = ids[-1]


def confirmation_due(session: Session, now: datetime) -> int | None:
    """A new confirmation campaign when pending people wait to be asked and none is under way; its id."""
    under_way = exists().where(Campaign.message == CONFIRMATION, Campaign.state.in_(("sending", "paused")))
    if session.scalar(select(under_way)) or not session.scalar(select(exists().where(awaiting_confirmation()))):
        return None
    campaign = create(session, item="", message=CONFIRMATION, segment="awaiting-confirmation", edition=None,
                      send_at=None, origin="engine", now=now)
    session.commit()
    return campaign.id


def sending_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).where(Campaign.state == "sending").order_by(Campaign.id)))
