"""'Add to calendar' links for the web calendars people use most, built from an event's times."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def google(title: str, start: datetime, end: datetime, location: str, details: str) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    query = {"action": "TEMPLATE", "text": title,
             "dates": f"{_utc(start).strftime(stamp)}/{_utc(end).strftime(stamp)}",
             "location": location, "details": details}
    return "https://calendar.google.com/calendar/render?" + urlencode(query)


def outlook(title: str, start: datetime, end: datetime, location: str, details: str) -> str:
    query = {"path": "/calendar/action/compose", "rru": "addevent", "subject": title,
             "startdt": _utc(start).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "enddt": _utc(end).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "location": location, "body": details}
    return "https://outlook.live.com/calendar/0/action/compose?" + urlencode(query)
