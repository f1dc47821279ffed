"""What a subscriber may do to their own subscription from a signed link, as database steps.

Every function takes the subscriber id a verified token named, changes only that person, and is
idempotent, so a double click or a mail client's retry of a one-click unsubscribe does no harm.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subscribers.models import Subscriber, SubscriberTopic

# A person in these states has no subscription left to manage from a link (they bounced, complained or were erased).
_UNREACHABLE = frozenset({"bounced", "complained"})


@dataclass(frozen=True)
class Unsubscribed:
    """What one unsubscribe did, so the result page can offer to undo exactly that."""

    everything: bool
    topics: tuple[str, ...] = ()


def get(session: Session, subscriber_id: int) -> Subscriber | None:
    subscriber = session.get(Subscriber, subscriber_id)
    return None if subscriber is None or subscriber.status in _UNREACHABLE else subscriber


def topics_of(session: Session, subscriber_id: int) -> list[str]:
    return list(session.scalars(select(SubscriberTopic.topic).where(SubscriberTopic.subscriber_id == subscriber_id)
                                .order_by(SubscriberTopic.topic)))


def unsubscribe(session: Session, subscriber: Subscriber, now: datetime, topics: tuple[str, ...] = ()) -> Unsubscribed:
    """From `topics` only (the person stays subscribed to the rest), or, with none given, from everything."""
    if topics:
        held = set(topics_of(session, subscriber.id)) & set(topics)
        session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber.id,
                                                      SubscriberTopic.topic.in_(held)))
        subscriber.updated_at = now
        session.commit()
        return Unsubscribed(everything=False, topics=tuple(sorted(held)))
    if subscriber.status != "unsubscribed":
        subscriber.status, subscriber.unsubscribed_at, subscriber.updated_at = "unsubscribed", now, now
    session.commit()
    return Unsubscribed(everything=True)


def undo(session: Session, subscriber: Subscriber, done: Unsubscribed, now: datetime) -> None:
    """Take back an unsubscribe made a moment ago from the same link: no new consent is needed for that."""
    if done.everything:
        if subscriber.status == "unsubscribed" and subscriber.confirmed_at is not None:  # never confirms the unconfirmed
            subscriber.status, subscriber.unsubscribed_at, subscriber.updated_at = "confirmed", None, now
    else:
        held = set(topics_of(session, subscriber.id))
        session.add_all(SubscriberTopic(subscriber_id=subscriber.id, topic=topic)
                        for topic in done.topics if topic not in held)
        subscriber.updated_at = now
    session.commit()
