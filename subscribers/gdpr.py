"""A person's rights over their data: everything held about them (access), and erasure.

Erasure deletes the subscriber, their topics and consent records, keeps only the keyed hash
that stops future mail, and then makes the database forget the deleted bytes: SQLite already
zeroes them (`secure_delete`), and its write-ahead log is truncated; PostgreSQL vacuums.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from subscribers.models import (
    Consent,
    Subscriber,
    SubscriberTopic,
    SubscriptionRequest,
    Topic,
)
from subscribers.store import erase, find, is_suppressed


def person_record(session: Session, secret_key: str, email: str) -> dict[str, Any] | None:
    """Every field, topic (with its names) and consent record held about `email`, as JSON-ready data."""
    subscriber = find(session, email)
    if subscriber is None:
        return None
    session.refresh(subscriber, ["topics", "consents"])
    names = {topic.slug: topic for topic in session.scalars(select(Topic))}
    stamp = lambda moment: moment.isoformat() if moment else None  # noqa: E731 - local shorthand
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "organisation": subscriber.organisation,
        "organisation_type": subscriber.organisation_type,
        "city": subscriber.city,
        "country": subscriber.country,
        "timezone": subscriber.timezone,
        "language": subscriber.language,
        "topics": [{"slug": link.topic, "ro": names[link.topic].name_ro, "en": names[link.topic].name_en}
                   for link in sorted(subscriber.topics, key=lambda link: link.topic)],
        "attributes": dict(subscriber.attributes),
        "status": subscriber.status,
        "status_history": {
            "created_at": stamp(subscriber.created_at), "updated_at": stamp(subscriber.updated_at),
            "confirmed_at": stamp(subscriber.confirmed_at), "unsubscribed_at": stamp(subscriber.unsubscribed_at),
            "bounced_at": stamp(subscriber.bounced_at), "complained_at": stamp(subscriber.complained_at),
        },
        "consents": [
            {"purpose": consent.purpose, "text_version": consent.text_version,
             "given_at": stamp(consent.given_at), "channel": consent.channel, "source": consent.source}
            for consent in subscriber.consents
        ],
        "subscription_requests": [
            {"language": request.language, "name": request.name, "organisation": request.organisation,
             "organisation_type": request.organisation_type, "topics": request.topics,
             "consent_text": request.consent_text, "consent_version": request.consent_version,
             "source": request.source, "created_at": stamp(request.created_at),
             "confirmed_at": stamp(request.confirmed_at)}
            for request in session.scalars(select(SubscriptionRequest).where(
                SubscriptionRequest.subscriber_id == subscriber.id).order_by(SubscriptionRequest.id))
        ],
        "suppressed": is_suppressed(session, secret_key, email),
    }


def forget_deleted(engine: Engine) -> None:
    """Make deleted rows unrecoverable from the database files, not just invisible."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        else:
            for table in (Subscriber.__tablename__, SubscriberTopic.__tablename__, Consent.__tablename__):
                connection.execute(text(f"VACUUM {table}"))


def erase_person(sessions: sessionmaker[Session], secret_key: str, email: str, now: datetime) -> bool:
    """Erase `email` (and suppress it even if it was never a subscriber); True when someone was deleted."""
    with sessions.begin() as session:
        deleted = erase(session, secret_key, email, now)
    forget_deleted(sessions.kw["bind"])
    return deleted
