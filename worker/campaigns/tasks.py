"""Celery tasks: start (fan-out), batch (render, send, record), sweep (due, requeue, finish), sync.

Exactly once rests on the ledger, not on the broker. A batch claims its rows, sends each message
on one reused SMTP connection, and marks the row sent in its own commit as soon as the server has
accepted the message. A batch that runs twice (redelivered after a crash or a Redis restart,
requeued by the sweep, or enqueued again on resume) finds those rows sent and skips them.

The one window left: the server has accepted a message (it answered 250 to DATA) and the worker
dies before the commit that marks the row sent, a few hundred microseconds later. That message is
sent again when the row's lease runs out; at most one per killed connection, and it carries the
same Message-ID, so most mail clients show it once.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache, partial

import redis
from celery.utils.log import get_task_logger
from sqlalchemy.orm import Session, sessionmaker

from foundation import clock
from foundation.db import open_store
from foundation.problems import ContentInvalid
from foundation.settings import Settings, load_settings
from foundation.smtp_url import parse_smtp_url
from subscribers.tokens import EXPIRES, Signer
from worker.authoring.content import Item, load_item
from worker.campaigns import control, delivery_log, ledger
from worker.campaigns.celery_app import QUEUE, START, SWEEP, app, namespaced
from worker.campaigns.installation import Keys, claim, keys_of
from worker.campaigns.models import Campaign
from worker.delivery.dkim import signer_for
from worker.delivery.mime import Skeleton
from worker.delivery.ratelimit import RateLimiter
from worker.delivery.smtp import SmtpSender
from worker.events import event_calendar, lifecycle
from worker.monitoring.observed import BATCH_SECONDS, FANOUT_SECONDS, Observations
from worker.rendering.render import CONFIRMATION, EDITIONS, Recipient, Renderer
from worker.rendering.views import Change

log = get_task_logger(__name__)
CHECK_STATE_SECONDS = 0.5  # how soon a running batch notices a pause or cancel
# Why a campaign paused after failures in a row, by the last one's kind (worker/delivery/smtp.py's Outcome.status).
PAUSE_REASONS = {"rejected": ("refused", "the server refuses what Herald sends"),
                 "temporary": ("temporary", "the server looks down"),
                 "configuration": ("TLS or login", "HERALD_SMTP_URL's security= or login does not fit the server")}


@dataclass
class Resources:
    """What one worker process opens once and keeps: settings, store, renderer, signer, Redis and its keys."""

    settings: Settings
    sessions: sessionmaker[Session]
    renderer: Renderer
    signer: Signer
    redis: redis.Redis
    keys: Keys  # this installation's, in that Redis
    limiter: RateLimiter
    observed: Observations  # what the ledger does not keep, for /metrics


@cache
def resources() -> Resources:
    settings = load_settings()
    sessions = open_store(settings)
    with sessions() as session:
        keys = keys_of(session)
    namespaced(keys)  # what the tasks enqueue goes to this installation's queue
    client = redis.Redis.from_url(settings.redis_url)
    return Resources(settings, sessions, Renderer(settings), Signer.from_settings(settings), client, keys,
                     RateLimiter(client, keys("rate"), settings.rate_limit), Observations(client, keys))


# ---- content of a campaign ------------------------------------------------------------------------

@dataclass(frozen=True)
class Edition:
    skeleton: Skeleton
    link_purposes: tuple[str, ...]


def _campaign_editions(session: Session, campaign: Campaign) -> dict[str, Edition]:
    change = None
    if campaign.message == lifecycle.UPDATE:
        now, before = lifecycle.announced_revision(session, campaign.item, campaign.revision)
        change = (before, now) if before else None
    return _editions(campaign.id, campaign.item, campaign.message, campaign.revision, campaign.started_at, change)


@lru_cache(maxsize=16)  # a worker lives through many campaigns; a few are sending at once
def _editions(campaign_id: int, item_path: str, message: str, revision: int | None, started_at: datetime | None,
              change: Change | None) -> dict[str, Edition]:
    """Each edition compiled once per worker process and campaign (stage 1), with its MIME skeleton and,
    for an invitation, update or cancellation, its calendar (SEQUENCE = the campaign's revision)."""
    r = resources()
    item = None
    if message == CONFIRMATION:
        expires = (clock.now() + EXPIRES["confirm"]).date()  # links signed later expire later still
        compile_edition = partial(r.renderer.compile_confirmation, expires=expires)
    else:
        item = load_item(r.settings.content_dir / item_path)
        compile_edition = partial(r.renderer.compile, item, message=message, change=change)
    editions = {}
    for edition in EDITIONS:
        compiled = compile_edition(edition=edition)
        calendar = None
        if item is not None and item.kind == "event":
            calendar = event_calendar.for_message(item, compiled.language, message, revision or 0, r.settings,
                                                  started_at or clock.now())
        skeleton = Skeleton.prepare(compiled, r.settings, feedback_id=f"campaign-{campaign_id}:{message}:{edition}",
                                    calendar=calendar)
        editions[edition] = Edition(skeleton, compiled.link_purposes)
    return editions


def _problems(error: ContentInvalid) -> str:
    return "; ".join(str(problem) for problem in error.problems[:5])


# ---- tasks -----------------------------------------------------------------------------------------

@app.task(name=START)
def start(campaign_id: int) -> None:
    """Fan a sending campaign out to its segment, page by page, enqueuing a batch per `batch_size` rows."""
    r = resources()
    with r.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or campaign.state != "sending":
            return
        try:
            item = None if campaign.message == CONFIRMATION else load_item(r.settings.content_dir / campaign.item)
            if item is not None and item.kind == "event" and not _event_ready(session, campaign, item):
                return
            where = control.audience_of(campaign, item, r.settings)
            _campaign_editions(session, campaign)
        except ContentInvalid as error:
            ledger.move(campaign, "failed", clock.now(), f"content is invalid, nothing was sent: {_problems(error)}")
            session.commit()
            return
        dispatch(session, campaign_id)  # rows from before a pause or crash that no batch holds any more
        began, fanning_out = time.monotonic(), not campaign.fanout_done
        while not campaign.fanout_done:
            if ledger.state_of(session, campaign_id) != "sending":
                return  # paused or cancelled: resume starts the fan-out again from its cursor
            ids = ledger.fan_out_page(session, campaign, where, clock.now())
            for batch in ledger.batches(campaign_id, ids, r.settings.batch_size):
                send_batch.delay(batch.campaign_id, batch.first, batch.last)
            session.refresh(campaign)
        if fanning_out:
            _fanned_out(r, campaign_id, time.monotonic() - began)
        ledger.finish_if_done(session, campaign_id, clock.now())


def _fanned_out(r: Resources, campaign_id: int, seconds: float) -> None:
    r.observed.observe(FANOUT_SECONDS, seconds)
    r.observed.flush()
    delivery_log.fanout_done(campaign_id, seconds)


def _event_ready(session: Session, campaign: Campaign, item: Item) -> bool:
    """Fix the revision an event message carries; an invitation or reminder of a cancelled event stops here,
    and an invitation, reminder or update of an event that has ended fails with the dates (a wrong year?)."""
    if campaign.message in lifecycle.STOPPED_BY_CANCELLATION and lifecycle.is_cancelled(session, campaign.item):
        ledger.move(campaign, "cancelled", clock.now(), "the event is cancelled")
        session.commit()
        return False
    if ended := control.after_event(item, campaign.message, clock.now()):
        ledger.move(campaign, "failed", clock.now(), ended)
        session.commit()
        return False
    if campaign.revision is None:
        campaign.revision = lifecycle.revision_for(session, campaign, item, clock.now())
        session.commit()
    return True


def dispatch(session: Session, campaign_id: int, tag: str | None = None) -> None:
    """Enqueue a batch for every pending row (or every row requeued with `tag`)."""
    for batch in ledger.pending_batches(session, campaign_id, resources().settings.batch_size, tag):
        send_batch.delay(batch.campaign_id, batch.first, batch.last)


@app.task(name="herald.batch")
def send_batch(campaign_id: int, first: int, last: int) -> None:
    r = resources()
    settings = r.settings
    lease = timedelta(seconds=settings.lease_seconds)
    # One connection for the whole batch: a session returns its connection to the pool at each commit,
    # and on PostgreSQL taking it out again costs a ping, a round trip per message (bench/README.md).
    with r.sessions.kw["bind"].connect() as connection, Session(bind=connection, expire_on_commit=False) as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or campaign.state != "sending":
            return
        try:
            editions = _campaign_editions(session, campaign)
        except ContentInvalid as error:
            ledger.pause(session, campaign_id, clock.now(), f"content became invalid: {_problems(error)}")
            return
        token, rows = ledger.claim(session, ledger.Batch(campaign_id, first, last), clock.now(), lease,
                                      ledger.eligible(campaign))
        if rows:
            began = time.monotonic()
            _send(session, r, campaign, editions, token, rows, lease)
            r.observed.observe(BATCH_SECONDS, time.monotonic() - began)
            r.observed.flush()
            delivery_log.batch_done(campaign_id, first, last, len(rows), time.monotonic() - began)
        ledger.finish_if_done(session, campaign_id, clock.now())


def _send(session: Session, r: Resources, campaign: Campaign, editions: dict[str, Edition], token: str,
          rows: list[ledger.Claimed], lease: timedelta) -> None:
    settings = r.settings
    streak = FailureStreak(r.redis, r.keys("campaign", campaign.id, "failures"))
    dkim = signer_for(settings)  # its keys were read once, when the worker started
    checked = renewed = time.monotonic()
    with SmtpSender(parse_smtp_url(settings.smtp_url)) as smtp:
        for row in rows:
            if time.monotonic() - checked > CHECK_STATE_SECONDS:
                checked = time.monotonic()
                streak.flush()
                r.observed.flush()
                if ledger.state_of(session, campaign.id) != "sending":
                    ledger.release(session, token)
                    return
            if time.monotonic() - renewed > lease.total_seconds() / 3:
                renewed = time.monotonic()
                ledger.extend_lease(session, token, clock.now(), lease)
            if not row.mailable:  # unsubscribed, bounced or erased since the fan-out (or confirmed, for a confirmation)
                ledger.mark_suppressed(session, row.delivery_id, token)
                delivery_log.not_sent(campaign.id, row, "the person may no longer be mailed")
                continue
            edition = editions[campaign.edition or row.language]
            links = r.signer.links(settings.base_url, row.subscriber_id, row.link_key, campaign.id,
                                   edition.link_purposes)
            recipient = Recipient(email=row.email, name=row.name, timezone=row.timezone, links=links)
            try:
                # The same Message-ID on a resend, so a client that got the first copy shows one.
                message = dkim.signing(edition.skeleton.build(  # signed while the SMTP envelope's round trip waits
                    recipient, message_id=delivery_message_id(campaign, row, edition.skeleton.domain), sent_at=clock.now()))
            except ValueError as error:  # an address whose domain has no A-label (IDNA 2008)
                ledger.mark_failed(session, row.delivery_id, token, str(error).replace(row.email, "address"))
                delivery_log.not_sent(campaign.id, row, "the address's domain has no ASCII form (IDNA 2008)")
                continue
            r.observed.rate_limit_wait(r.limiter.acquire())
            sending = time.perf_counter()
            outcome = smtp.send(settings.org_email, row.email, message)
            r.observed.smtp_reply(outcome.code, time.perf_counter() - sending)
            delivery_log.outcome(campaign.id, row, outcome)
            if outcome.status == "sent":
                ledger.mark_sent(session, row.delivery_id, token, clock.now())
                streak.success()
            elif outcome.status == "permanent":
                ledger.mark_bounced(session, row.delivery_id, token, row.subscriber_id, outcome.detail,
                                       clock.now(), settings.bounce_threshold, settings.secret_key)
            else:
                rejected = outcome.status == "rejected"  # the message or its sender refused: the person is not at fault
                if rejected:
                    ledger.mark_failed(session, row.delivery_id, token, outcome.detail)
                else:
                    attempts = ledger.attempts_of(session, row.delivery_id)
                    wait = ledger.backoff(attempts + 1, settings.retry_base_seconds, settings.retry_max_seconds)
                    ledger.mark_temporary(session, row.delivery_id, token, clock.now(), outcome.detail,
                                             attempts, settings.max_attempts, wait)
                if streak.failure() >= settings.pause_after_failures:
                    kind, diagnosis = PAUSE_REASONS[outcome.status]
                    ledger.pause(session, campaign.id, clock.now(),
                                    f"{settings.pause_after_failures} {kind} SMTP failures in a row (last: "
                                    f"{outcome.detail}); {diagnosis}. Fix it, then resume.")
                    streak.reset()
                    ledger.release(session, token)
                    return
    streak.flush()


def delivery_message_id(campaign: Campaign, row: ledger.Claimed, domain: str) -> str:
    """The same on a resend of one delivery, so a client that got the first copy shows one; the campaign's
    random key keeps it unique after a reinstall numbers campaigns and deliveries from 1 again."""
    key = f".{campaign.message_key}" if campaign.message_key else ""  # None: a campaign from before keys
    return f"<c{campaign.id}.d{row.delivery_id}{key}@{domain}>"


class FailureStreak:
    """Temporary or refused failures in a row, shared by every worker of a campaign (a Redis counter).

    A success resets it; telling Redis about each one cost a round trip per message, so a worker
    remembers it and resets the counter before its next failure, at its next state check, or when
    its batch ends: another worker's success reaches the count within CHECK_STATE_SECONDS.
    """

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key, self._succeeded = client, key, False

    def success(self) -> None:
        self._succeeded = True

    def failure(self) -> int:
        """The streak after this failure."""
        self.flush()
        return self.client.incr(self.key)

    def flush(self) -> None:
        if self._succeeded:
            self.reset()

    def reset(self) -> None:
        self._succeeded = False
        self.client.delete(self.key)


@app.task(name=SWEEP)
def sweep() -> None:
    """Start what is due, mark what was missed, requeue what a crash or a backoff left, finish what is done."""
    r = resources()
    if other := claim(r.redis, r.keys.installation_id):  # again after a Redis restart, which forgets the owner
        log.error("this Redis is used by Herald installation %s too, and this is %s: give each its own Redis",
                  other, r.keys.installation_id)
    if not r.redis.set(r.keys("sweep"), "1", nx=True, ex=max(30, int(r.settings.sweep_seconds * 4))):
        return  # another sweep is still at it
    try:
        with r.sessions() as session:
            now = clock.now()
            started, missed = ledger.start_due(session, now, timedelta(hours=r.settings.grace_hours))
            session.commit()
            for campaign_id in missed:
                log.warning("campaign %s missed its time: %s", campaign_id, session.get(Campaign, campaign_id).reason)
            confirmation = ledger.confirmation_due(session, now)
            if confirmation is not None:
                started.append(confirmation)
            started += lifecycle.promotions_due(session, now)  # tell whoever moved up from a waitlist
            for campaign_id in started:
                start.delay(campaign_id)
            stale = now - timedelta(seconds=r.settings.lease_seconds)
            queue_empty = r.redis.llen(r.keys(QUEUE)) == 0
            for campaign in ledger.sending_campaigns(session):
                if campaign.id in started:
                    continue
                if not campaign.fanout_done:
                    if campaign.fanout_seen_at is None or campaign.fanout_seen_at < stale:
                        start.delay(campaign.id)  # its fan-out died with a worker or with Redis
                    continue
                tag = f"requeue-{secrets.token_hex(4)}"
                if queue_empty:  # lost with a restarted Redis, or never enqueued: send whatever is pending
                    ledger.requeue(session, campaign.id, now)
                    dispatch(session, campaign.id)
                elif ledger.requeue(session, campaign.id, now, tag):  # the rest is already queued
                    dispatch(session, campaign.id, tag)
                ledger.finish_if_done(session, campaign.id, now)
    finally:
        r.redis.delete(r.keys("sweep"))


@app.task(name="herald.sync")
def sync() -> None:
    """Ready items' `send_at` into scheduled campaigns; an invalid item is reported and left unscheduled."""
    r = resources()
    with r.sessions() as session:
        broken = control.sync(session, r.settings).broken
    for error in broken:
        log.warning("not scheduled, fix it first: %s", _problems(error))


logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # one line per task would drown the log
