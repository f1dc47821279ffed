"""An event item as iCalendar: which METHOD each message carries, and the object's words in one language.

The UID is the item's slug at the organisation's domain, so every message about the event (and the
public `/events/{slug}.ics`) updates the same calendar entry; SEQUENCE is the stored revision.
"""

from __future__ import annotations

from datetime import UTC, datetime

from foundation.settings import Settings
from worker.authoring.content import EventMeta, Item
from worker.events.ics import CalendarTemplate, EventTimes, Method, uid_for
from worker.events.lifecycle import CANCELLATION, INVITATION, UPDATE
from worker.rendering.views import place_of


def method_for(meta: EventMeta, message: str) -> Method | None:
    """The iTIP method of a message, or None for the messages without a calendar (reminders and the rest)."""
    if message == CANCELLATION:
        return "CANCEL"
    if message in (INVITATION, UPDATE):
        return "REQUEST" if meta.invitation == "personal" else "PUBLISH"
    return None


def prepare(item: Item, language: str, method: Method, sequence: int, settings: Settings,
            dtstamp: datetime) -> CalendarTemplate:
    meta: EventMeta = item.meta
    front = item.text(language).front
    place = place_of(meta, front)
    details = [front.organiser, meta.online_url or "", meta.website or ""]
    return CalendarTemplate.prepare(
        EventTimes.of(meta), method=method, uid=uid_for(item.slug, settings.org_email.rpartition("@")[2]),
        sequence=sequence, dtstamp=dtstamp, organiser=(settings.org_name, settings.org_email),
        summary=front.title, description="\n".join(line for line in details if line),
        location=place or meta.online_url or "", url=meta.online_url or meta.website,
        status="CANCELLED" if meta.status == "cancelled" else None)


def for_message(item: Item, language: str, message: str, sequence: int, settings: Settings,
                dtstamp: datetime) -> CalendarTemplate | None:
    """The calendar a campaign's edition attaches (filled per recipient), or None."""
    method = method_for(item.meta, message)
    return None if method is None else prepare(item, language, method, sequence, settings, dtstamp)


def public(item: Item, language: str, sequence: int, settings: Settings, now: datetime) -> bytes:
    """The event for anyone to subscribe to (`/events/{slug}.ics`): PUBLISH, cancelled when it is off."""
    return prepare(item, language, "PUBLISH", sequence, settings, now).without_attendee()


def preview_calendar(item: Item, language: str, message: str, settings: Settings) -> CalendarTemplate | None:
    """The calendar of a preview or test copy (`herald render`, `herald send --test-to`): SEQUENCE 0, stamped now."""
    if item.kind != "event":
        return None
    return for_message(item, language, message, 0, settings, datetime.now(UTC))
