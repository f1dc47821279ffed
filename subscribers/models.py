"""The subscriber store's tables (SQLAlchemy 2); the migrations in foundation/migrations follow them.

Emails are unique by `email_key` (trimmed, lower-cased) so `Ana@X.ro ` and `ana@x.ro` are one
person. `email_hash` is the keyed hash the suppression list holds, so a suppressed address is
recognised without keeping it in clear.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from foundation.tables import Base, one_of
from subscribers.tokens import new_link_key
from subscribers.vocabulary import ORGANISATION_TYPES, STATUSES, SUBSCRIBER_LANGUAGES


class SubscriberTopic(Base):
    __tablename__ = "subscriber_topics"
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    topic: Mapped[str] = mapped_column(ForeignKey("topics.slug", ondelete="CASCADE"), primary_key=True)
    __table_args__ = (Index("ix_subscriber_topics_topic", "topic", "subscriber_id"),)


class Subscriber(Base):
    """A person. Ids are never handed out twice (AUTOINCREMENT on SQLite; a sequence on PostgreSQL), and
    `link_key`, random and destroyed with the row, is what every signed link must carry (subscribers.tokens)."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_key: Mapped[str] = mapped_column(String(16), default=new_link_key)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str] = mapped_column(String(300), default="")
    organisation_type: Mapped[str | None] = mapped_column(String(20), index=True)
    city: Mapped[str] = mapped_column(String(120), default="")
    country: Mapped[str | None] = mapped_column(String(2), index=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(4), index=True)
    attributes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    bounced_at: Mapped[datetime | None]
    complained_at: Mapped[datetime | None]

    topics: Mapped[list[SubscriberTopic]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    consents: Mapped[list[Consent]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                   order_by="Consent.id")

    __table_args__ = (
        one_of("language", SUBSCRIBER_LANGUAGES),
        one_of("status", STATUSES),
        one_of("organisation_type", ORGANISATION_TYPES),
        {"sqlite_autoincrement": True},
    )


class Consent(Base):
    """What a person agreed to, in which wording, when, through which channel and from which source."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    text_version: Mapped[str] = mapped_column(String(64))
    given_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(20))  # import, form, api
    source: Mapped[str] = mapped_column(Text)


class Topic(Base):
    __tablename__ = "topics"
    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_ro: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))


class Suppression(Base):
    """Addresses never mailed again, held only as keyed hashes."""

    __tablename__ = "suppressions"
    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))  # erased, unsubscribed, bounced, complained, manual
    created_at: Mapped[datetime]


class SubscriptionRequest(Base):
    """What someone asked for on the subscribe form, held until the address's owner confirms it by email.

    Nothing in it applies before the confirmation: a new person stays pending, an unsubscribed one
    stays unsubscribed, and topics are added only then. The consent wording shown is kept with it.
    """

    __tablename__ = "subscription_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str] = mapped_column(String(300), default="")
    organisation_type: Mapped[str | None] = mapped_column(String(20))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    consent_text: Mapped[str] = mapped_column(Text)
    consent_version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)  # the page it came from: the form, or the embedded form
    created_at: Mapped[datetime]
    asked_in: Mapped[int | None]  # the confirmation campaign that mailed the request; None: not yet
    confirmed_at: Mapped[datetime | None]
