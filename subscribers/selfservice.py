"""What a subscriber may do to their own subscription from a signed link, as database steps.

Every function takes the subscriber id a verified token named, changes only that person, and is
idempotent, so a double click or a mail client's retry of a one-click unsubscribe does no harm.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subscribers import store
from subscribers.models import Consent, Subscriber, SubscriberTopic, SubscriptionRequest
from subscribers.profile import email_hash, email_key
from subscribers.topics import Topic
from subscribers.vocabulary import SUBSCRIBER_LANGUAGES

# A person in these states has no subscription left to manage from a link (they bounced, complained or were erased).
_UNREACHABLE = frozenset({"bounced", "complained"})
# How long an unsubscribe can be taken back from the page that made it; later, subscribing again asks for consent.
UNDO_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True)
class Unsubscribed:
    """What one unsubscribe did, so the result page can offer to undo exactly that and nothing else.

    `at` is the moment it was recorded (the person's `unsubscribed_at` for `everything`); `changed` is
    False when it found nothing to change (already unsubscribed, or none of the topics held).
    """

    everything: bool
    topics: tuple[str, ...] = ()
    at: datetime | None = None
    changed: bool = True


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
        return Unsubscribed(everything=False, topics=tuple(sorted(held)), at=now, changed=bool(held))
    if subscriber.status == "unsubscribed":
        session.commit()
        return Unsubscribed(everything=True, at=subscriber.unsubscribed_at, changed=False)
    subscriber.status, subscriber.unsubscribed_at, subscriber.updated_at = "unsubscribed", now, now
    session.commit()
    return Unsubscribed(everything=True, at=now)


def undo(session: Session, subscriber: Subscriber, done: Unsubscribed, now: datetime) -> bool:
    """Take back the unsubscribe `done` describes, if it is that very one and recent; True if it was taken back.

    `done` must come from the page that recorded it (the caller checks its proof). It is taken back
    only within UNDO_WINDOW, and an "everything" only while the person is still unsubscribed by that
    very act (`unsubscribed_at` unchanged): an opt-out recorded since, by an import or another link,
    is never reversed, and an unconfirmed person is never confirmed by it. No new consent is needed.
    """
    if not done.changed or done.at is None or not timedelta(0) <= now - done.at <= UNDO_WINDOW:
        return False
    if done.everything:
        if not (subscriber.status == "unsubscribed" and subscriber.unsubscribed_at == done.at
                and subscriber.confirmed_at is not None):
            return False
        subscriber.status, subscriber.unsubscribed_at, subscriber.updated_at = "confirmed", None, now
    else:
        held = set(topics_of(session, subscriber.id))
        session.add_all(SubscriberTopic(subscriber_id=subscriber.id, topic=topic)
                        for topic in done.topics if topic not in held)
        subscriber.updated_at = now
    session.commit()
    return True


@dataclass(frozen=True)
class Request:
    """The subscribe form, validated (subscribers.profile) and ready to hold until confirmed."""

    email: str
    language: str
    name: str = ""
    organisation: str = ""
    organisation_type: str | None = None
    topics: tuple[str, ...] = ()
    consent_text: str = ""
    consent_version: str = ""
    source: str = "form"


def request_subscription(session: Session, secret_key: str, wanted: Request, now: datetime) -> bool:
    """Hold a form's request for the address's owner to confirm; True if a confirmation should go out.

    Nothing about an existing subscriber changes yet, and a suppressed address (erased, bounced,
    complained) is never mailed: the caller answers the same in every case, so the form tells no one
    who is subscribed.
    """
    subscriber = store.find(session, wanted.email)
    if store.is_suppressed(session, secret_key, wanted.email) or (subscriber and subscriber.status in _UNREACHABLE):
        return False
    if subscriber is None:
        subscriber = Subscriber(email=wanted.email, email_key=email_key(wanted.email),
                                email_hash=email_hash(secret_key, wanted.email), name=wanted.name,
                                organisation=wanted.organisation, organisation_type=wanted.organisation_type,
                                language=wanted.language, attributes={}, status="pending", created_at=now,
                                updated_at=now)
        session.add(subscriber)
        session.flush()
    elif subscriber.status == "confirmed" and set(wanted.topics) <= set(topics_of(session, subscriber.id)):
        return False  # nothing new to confirm
    session.add(SubscriptionRequest(
        subscriber_id=subscriber.id, language=wanted.language, name=wanted.name, organisation=wanted.organisation,
        organisation_type=wanted.organisation_type, topics=list(wanted.topics), consent_text=wanted.consent_text,
        consent_version=wanted.consent_version, source=wanted.source, created_at=now))
    session.commit()
    return True


def open_requests(session: Session, subscriber_id: int) -> list[SubscriptionRequest]:
    return list(session.scalars(select(SubscriptionRequest).where(
        SubscriptionRequest.subscriber_id == subscriber_id, SubscriptionRequest.confirmed_at.is_(None))
        .order_by(SubscriptionRequest.id)))


def needs_confirmation(session: Session, subscriber: Subscriber) -> bool:
    return subscriber.status == "pending" or bool(open_requests(session, subscriber.id))


def confirm(session: Session, subscriber: Subscriber, now: datetime, wording: str, source: str) -> None:
    """The owner of the address confirmed: apply what they asked for and record their consent.

    `wording` is what the confirmation email asked (for someone imported without consent); a request
    from the form keeps the consent text its page showed.
    """
    requests = open_requests(session, subscriber.id)
    for request in requests:
        subscriber.language = request.language
        subscriber.name = request.name or subscriber.name
        subscriber.organisation = request.organisation or subscriber.organisation
        subscriber.organisation_type = request.organisation_type or subscriber.organisation_type
        held = set(topics_of(session, subscriber.id))
        session.add_all(SubscriberTopic(subscriber_id=subscriber.id, topic=topic) for topic in request.topics
                        if topic not in held)
        session.flush()
        session.add(Consent(subscriber_id=subscriber.id, purpose=request.consent_text,
                            text_version=request.consent_version, given_at=now, channel="form", source=request.source))
        request.confirmed_at = now
    if not requests:
        session.add(Consent(subscriber_id=subscriber.id, purpose=wording, text_version="confirmation-email",
                            given_at=now, channel="email", source=source))
    subscriber.status, subscriber.confirmed_at, subscriber.unsubscribed_at, subscriber.updated_at = (
        "confirmed", now, None, now)
    session.commit()


def ask_again(session: Session, subscriber: Subscriber, now: datetime, wording: str, version: str) -> None:
    """A confirmation link expired: hold a new request, so the engine mails a fresh link."""
    latest = open_requests(session, subscriber.id)[-1:]
    if latest:
        latest[0].asked_in = None
    else:
        session.add(SubscriptionRequest(subscriber_id=subscriber.id, language=subscriber.language,
                                        topics=[], consent_text=wording, consent_version=version,
                                        source="a new confirmation link", created_at=now))
    session.commit()


@dataclass(frozen=True)
class Preferences:
    """What the preference centre's form sets, already cleaned by the page that read it."""

    language: str
    name: str
    organisation: str
    topics: frozenset[str]


def save_preferences(session: Session, subscriber: Subscriber, chosen: Preferences, catalogue: dict[str, Topic],
                     now: datetime) -> None:
    """Set the person's language, name and organisation, and replace their topics with the chosen ones.

    Only topics of `catalogue` (content/topics.yaml) are kept; the topics table is brought up to it
    first, so a topic added to the file since the last import can be chosen at once.
    """
    if chosen.language not in SUBSCRIBER_LANGUAGES:
        raise ValueError(f"'{chosen.language}' is not a subscriber language")
    store.sync_topics(session, catalogue)
    session.flush()
    wanted = chosen.topics & catalogue.keys()
    held = set(topics_of(session, subscriber.id))
    if held - wanted:
        session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber.id,
                                                      SubscriberTopic.topic.in_(held - wanted)))
    session.add_all(SubscriberTopic(subscriber_id=subscriber.id, topic=topic) for topic in sorted(wanted - held))
    subscriber.language, subscriber.name, subscriber.organisation = chosen.language, chosen.name, chosen.organisation
    subscriber.updated_at = now
    session.commit()
