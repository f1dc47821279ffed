"""The campaign engine's tables: campaigns and their delivery ledger.

The ledger holds one row per (campaign, subscriber), unique, so a redelivered or repeated task can
never address a person twice: a batch claims rows, sends, and marks each row sent as soon as the
SMTP server accepted it. Counts shown to the operator are read from it, never kept beside it.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from foundation.tables import Base, one_of

CAMPAIGN_STATES: tuple[str, ...] = ("draft", "scheduled", "sending", "paused", "sent", "cancelled", "failed", "missed")
DELIVERY_STATES: tuple[str, ...] = ("pending", "sending", "sent", "retry", "failed", "bounced", "suppressed")


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item: Mapped[str] = mapped_column(String(300))  # the content folder, relative to the content directory
    message: Mapped[str] = mapped_column(String(20))  # newsletter, invitation, reminder, ...
    segment: Mapped[str] = mapped_column(String(100))
    edition: Mapped[str | None] = mapped_column(String(4))  # None: each subscriber's own language
    send_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(12), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")  # why it paused, failed or was missed
    origin: Mapped[str] = mapped_column(String(10))  # schedule (content meta), cli, api
    # For campaigns synced from a content item's send_at: one per (item, message), so a sync is idempotent.
    schedule_key: Mapped[str | None] = mapped_column(String(330), unique=True)
    fanout_cursor: Mapped[int] = mapped_column(BigInteger, default=0)  # last subscriber id given a ledger row
    fanout_done: Mapped[bool] = mapped_column(default=False)
    fanout_seen_at: Mapped[datetime | None]  # the fan-out's heartbeat; a stale one is restarted by the sweep
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # An event message's revision of the event (its iCalendar SEQUENCE), fixed when it starts sending.
    revision: Mapped[int | None] = mapped_column(Integer)
    # Random, in every Message-ID of the campaign: ids stay unique after a reinstall starts counting campaigns
    # and deliveries from 1 again. None only for campaigns made before it existed (their ids keep the old form).
    message_key: Mapped[str | None] = mapped_column(String(16), default=lambda: secrets.token_hex(6))
    # Why this campaign mails an item's message to an audience that a campaign before it covered (`--again`).
    repeat_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (one_of("state", CAMPAIGN_STATES),)


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # An erased subscriber takes their ledger rows along: nothing about them stays.
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claim: Mapped[str | None] = mapped_column(String(32))  # the batch holding the row (or the sweep that requeued it)
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    error: Mapped[str] = mapped_column(Text, default="")  # the last SMTP reply, without the address

    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id", name="uq_deliveries_campaign_subscriber"),
        Index("ix_deliveries_campaign_state", "campaign_id", "state", "subscriber_id"),
        one_of("state", DELIVERY_STATES),
    )


RSVP_ANSWERS: tuple[str, ...] = ("yes", "maybe", "no")


class Event(Base):
    """An event whose invitation went out: what was announced, revision by revision, and the answers."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item: Mapped[str] = mapped_column(String(300), unique=True)  # as Campaign.item
    created_at: Mapped[datetime]


class EventRevision(Base):
    """What the invitees were told, as of one SEQUENCE: 0 the invitation, then each update and the cancellation."""

    __tablename__ = "event_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    timezone: Mapped[str] = mapped_column(String(64))
    place: Mapped[str] = mapped_column(Text, default="")  # venue address and city, as in meta.yaml
    join_url: Mapped[str] = mapped_column(Text, default="")
    cancelled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("event_id", "sequence", name="uq_event_revisions_sequence"),)


class Rsvp(Base):
    """One invitee's answer. A yes over capacity waits in line (`queued_at`) until a place frees up."""

    __tablename__ = "rsvps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    answer: Mapped[str] = mapped_column(String(8))
    answered_at: Mapped[datetime]
    queued_at: Mapped[datetime | None]  # on the waitlist since; None once they have a place (or said maybe/no)
    promoted_at: Mapped[datetime | None]  # moved from the waitlist to a place; the sweep tells them

    __table_args__ = (
        UniqueConstraint("event_id", "subscriber_id", name="uq_rsvps_event_subscriber"),
        Index("ix_rsvps_event_answer", "event_id", "answer"),
        one_of("answer", RSVP_ANSWERS),
    )
