"""What invitees are told about an event, and what differs between two tellings (pure).

An update names only what changed since the invitees last heard, so each telling is kept (as an
event revision) and compared field by field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from worker.authoring.content import EventMeta
from worker.campaigns.models import EventRevision

CHANGEABLE = ("time", "place", "join_url")  # what an update tells, in this order


@dataclass(frozen=True)
class Announced:
    """What a revision tells invitees; two of them differ in the CHANGEABLE fields they name."""

    starts_at: datetime  # UTC
    ends_at: datetime
    timezone: str
    place: str
    join_url: str
    cancelled: bool = False

    @classmethod
    def of(cls, meta: EventMeta) -> Announced:
        place = f"{meta.venue.address}, {meta.venue.city}" if meta.venue else ""
        return cls(meta.aware(meta.start).astimezone(UTC), meta.aware(meta.end).astimezone(UTC), meta.timezone,
                   place, meta.online_url or "", meta.status == "cancelled")

    @classmethod
    def stored(cls, row: EventRevision) -> Announced:
        return cls(row.starts_at.astimezone(UTC), row.ends_at.astimezone(UTC), row.timezone, row.place,
                   row.join_url, row.cancelled)

    def changes_from(self, before: Announced) -> tuple[str, ...]:
        changed = {"time": (self.starts_at, self.ends_at, self.timezone) != (before.starts_at, before.ends_at,
                                                                             before.timezone),
                   "place": self.place != before.place, "join_url": self.join_url != before.join_url}
        return tuple(name for name in CHANGEABLE if changed[name])
