"""iCalendar invitations: RFC 5545 objects as iTIP messages (RFC 5546) for email (iMIP, RFC 6047).

Pure: no I/O. The engine prepares one `CalendarTemplate` per (campaign, language) and asks it for
each recipient's bytes; only the ATTENDEE line differs between recipients, so that is all that is
built per person.

    times = EventTimes.of(item.meta)
    template = CalendarTemplate.prepare(times, method="REQUEST", uid=uid_for(item.slug, "herald.example"),
                                        sequence=0, dtstamp=now_utc, organiser=(name, email),
                                        summary=title, description=details, location=place, url=link)
    body = template.for_attendee(person_name, person_email)   # bytes, CRLF, folded

The VTIMEZONE is written in RRULE form (one STANDARD and one DAYLIGHT for a zone with the EU
rules), derived from the zone's real transitions (zoneinfo) from the year before the event to
the year after it. A long RDATE list would be shorter to derive, but Mozilla's parser (ical.js,
in Thunderbird) gets RDATE lists wrong.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from worker.authoring.content import EventMeta

Method = Literal["REQUEST", "PUBLISH", "CANCEL"]
Status = Literal["CONFIRMED", "CANCELLED"]
Party = tuple[str, str]  # (display name, email address)

PRODID = "-//Herald//Herald invitations//EN"
METHODS: tuple[str, ...] = ("REQUEST", "PUBLISH", "CANCEL")
LINE_OCTETS = 75  # RFC 5545 3.1: content lines are folded at 75 octets, excluding the CRLF

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # CTLs that TEXT may not hold (HTAB may; LF is escaped)
_ADDRESS = re.compile(r"[^\s@\"<>]+@[^\s@\"<>]+")
_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
_SCAN_STEP = 6 * 3600  # seconds between samples when looking for a zone's transitions


# ---- the event's times --------------------------------------------------------------------

@dataclass(frozen=True)
class EventTimes:
    """When an event is: wall-clock start and end as the editor wrote them (naive), and its IANA zone.

    A wall-clock time that a zone skips or repeats means what RFC 5545 3.3.5 says it means (the
    offset before the change, the first of the two), which is also what zoneinfo's fold=0 gives.
    """

    start: datetime
    end: datetime
    timezone: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("EventTimes takes wall-clock times without tzinfo; the zone goes in `timezone`")
        ZoneInfo(self.timezone)  # raises for a name that is not an IANA zone
        if self.end_utc <= self.start_utc:
            raise ValueError(f"the event ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def of(cls, meta: EventMeta) -> EventTimes:
        return cls(start=meta.start, end=meta.end, timezone=meta.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start_utc(self) -> datetime:
        return self.start.replace(tzinfo=self.zone).astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.replace(tzinfo=self.zone).astimezone(UTC)


# ---- content lines ------------------------------------------------------------------------

def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newline escaped, other CTLs dropped."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return _CONTROLS.sub("", value)


def param_value(value: str) -> str:
    """A parameter value: RFC 6868 for ^, newline and double quote; quoted when it holds , ; : or a backslash, or
    starts or ends with a space (parsers strip an unquoted value's)."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.replace("^", "^^").replace("\n", "^n").replace('"', "^'")
    value = _CONTROLS.sub("", value)
    return f'"{value}"' if any(ch in value for ch in ',;:\\') or value != value.strip() else value


def fold(line: str) -> bytes:
    """One content line as UTF-8 with its CRLF, folded at 75 octets, never inside a character."""
    data = line.encode("utf-8")
    pieces: list[bytes] = []
    start, room = 0, LINE_OCTETS
    while len(data) - start > room:
        cut = start + room
        while data[cut] & 0xC0 == 0x80:  # a continuation byte: the cut would split a character
            cut -= 1
        pieces.append(data[start:cut])
        start, room = cut, LINE_OCTETS - 1  # a continuation line starts with a space
    pieces.append(data[start:])
    return b"\r\n ".join(pieces) + b"\r\n"


def _address(email: str) -> str:
    if not _ADDRESS.fullmatch(email):
        raise ValueError(f"{email!r} is not an email address")
    return f"mailto:{email}"


def _party(prop: str, party: Party, extra: str = "") -> bytes:
    name, email = party
    cn = f";CN={param_value(name)}" if name.strip() else ""
    return fold(f"{prop}{cn}{extra}:{_address(email)}")


def _utc_stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("dtstamp must be an aware datetime (UTC)")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _local_stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _when(name: str, local: datetime, timezone: str) -> str:
    """DTSTART/DTEND for a wall-clock time, written so that every reader finds the instant RFC 5545 means.

    A time the zone skips means the offset before the gap (RFC 5545 3.3.5), but ical.js and
    dateutil read it with the offset after: it is written as the wall-clock time it really is
    (03:30 on the spring night in Bucharest is 04:30). A time the zone repeats means its first
    occurrence, but those readers take the second: it is written in UTC. Everything else is
    written as given, with its TZID.
    """
    zone = ZoneInfo(timezone)
    first = local.replace(tzinfo=zone, fold=0)
    actual = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None, fold=0)
    if actual != local:  # skipped
        local = actual
    elif local.replace(tzinfo=zone, fold=1).utcoffset() != first.utcoffset():  # repeated
        return f"{name}:{_utc_stamp(first)}"
    return f"{name};TZID={timezone}:{_local_stamp(local)}"


def _offset(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{seconds:02d}" if seconds else "")


# ---- VTIMEZONE from zoneinfo ----------------------------------------------------------------

@dataclass(frozen=True)
class _Transition:
    at: datetime  # the UTC instant of the change
    before: timedelta  # UTC offset until then
    after: timedelta  # UTC offset from then on
    name: str  # TZNAME from then on
    daylight: bool  # summer time (DST > 0); Dublin's negative winter DST is written as STANDARD

    @property
    def onset(self) -> datetime:
        """The change as a wall-clock time in the offset before it (RFC 5545 3.6.5: DTSTART of an observance)."""
        return (self.at + self.before).replace(tzinfo=None)

    def rule(self) -> tuple:
        """What a yearly RRULE would have to repeat: kind, offsets, name, month, nth weekday, time of day."""
        onset = self.onset
        days = monthrange(onset.year, onset.month)[1]
        nth = -1 if onset.day > days - 7 else (onset.day - 1) // 7 + 1
        return (self.daylight, self.before, self.after, self.name, onset.month, nth, onset.weekday(), onset.time())


def _state(zone: ZoneInfo, timestamp: int) -> tuple[timedelta, timedelta, str]:
    moment = datetime.fromtimestamp(timestamp, tz=zone)
    return moment.utcoffset(), moment.dst(), moment.tzname()


def _transitions(zone: ZoneInfo, first: int, last: int) -> list[_Transition]:
    """Every change of offset, DST or name between two timestamps, each found to the second."""
    found: list[_Transition] = []
    here, state = first, _state(zone, first)
    while here < last:
        there = min(here + _SCAN_STEP, last)
        if _state(zone, there) == state:
            here = there
            continue
        low, high = here, there  # state holds at low, no longer at high
        while high - low > 1:
            middle = (low + high) // 2
            if _state(zone, middle) == state:
                low = middle
            else:
                high = middle
        after = _state(zone, high)
        found.append(_Transition(at=datetime.fromtimestamp(high, UTC), before=state[0], after=after[0],
                                 name=after[2], daylight=after[1] > timedelta(0)))
        here, state = high, after
    return found


def _observance(daylight: bool, onset: datetime, before: timedelta, after: timedelta, name: str,
                rrule: str | None = None) -> list[str]:
    kind = "DAYLIGHT" if daylight else "STANDARD"
    lines = [f"BEGIN:{kind}", f"DTSTART:{_local_stamp(onset)}", f"TZOFFSETFROM:{_offset(before)}",
             f"TZOFFSETTO:{_offset(after)}"]
    if rrule:
        lines.append(f"RRULE:{rrule}")
    if name:
        lines.append(f"TZNAME:{escape_text(name)}")
    return [*lines, f"END:{kind}"]


@lru_cache(maxsize=64)
def vtimezone_lines(timezone: str, first_year: int, last_year: int) -> tuple[str, ...]:
    """A VTIMEZONE (unfolded lines) true for `timezone` from first_year - 1 to last_year + 1.

    Changes that recur on the same rule in consecutive years become one observance with a yearly
    RRULE (open-ended when the rule still holds at the end of the window, else with UNTIL);
    anything else is an observance of its own. A zone without changes gets a single STANDARD.
    The search starts a year earlier still, so that a time in first_year - 1 comes after an onset.
    """
    zone = ZoneInfo(timezone)
    window_start = datetime(first_year - 2, 1, 1, tzinfo=UTC)
    window_end = datetime(last_year + 2, 1, 1, tzinfo=UTC) + timedelta(days=1)
    changes = _transitions(zone, int(window_start.timestamp()), int(window_end.timestamp()))
    final_year = last_year + 1

    runs: list[list[_Transition]] = []  # consecutive years, same rule
    open_runs: dict[tuple, list[_Transition]] = {}
    for change in changes:
        run = open_runs.get(change.rule())
        if run is not None and change.onset.year == run[-1].onset.year + 1:
            run.append(change)
        else:
            run = [change]
            runs.append(run)
            open_runs[change.rule()] = run

    observances: list[tuple[datetime, list[str]]] = []
    if not changes or changes[0].at > datetime(first_year - 1, 1, 1, tzinfo=UTC) - timedelta(days=1):
        # No change early enough to start from: state what holds at the start of the search.
        local = window_start.astimezone(zone)
        observances.append((window_start, _observance(local.dst() > timedelta(0), local.replace(tzinfo=None),
                                                      local.utcoffset(), local.utcoffset(), local.tzname() or "")))
    for run in runs:
        head = run[0]
        rrule = None
        if len(run) > 1:
            _, _, _, _, month, nth, weekday, _ = head.rule()
            rrule = f"FREQ=YEARLY;BYMONTH={month};BYDAY={nth}{_WEEKDAYS[weekday]}"
            if run[-1].onset.year < final_year:
                rrule += f";UNTIL={_utc_stamp(run[-1].at)}"
        observances.append((head.at, _observance(head.daylight, head.onset, head.before, head.after, head.name, rrule)))
    observances.sort(key=lambda pair: pair[0])
    lines = ["BEGIN:VTIMEZONE", f"TZID:{timezone}"]
    for _, block in observances:
        lines.extend(block)
    lines.append("END:VTIMEZONE")
    return tuple(lines)


# ---- the calendar --------------------------------------------------------------------------

def uid_for(slug: str, domain: str) -> str:
    """The event's UID, the same for every message about it (invitation, update, cancellation)."""
    domain = domain.lower().rstrip(".")
    if not _SLUG.fullmatch(slug):
        raise ValueError(f"{slug!r} is not an item slug")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"{domain!r} is not a domain name")
    return f"{slug}@{domain}"


def content_type(method: Method) -> str:
    """The MIME type of the text/calendar part (RFC 6047 2.4: its method matches METHOD)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    return f'text/calendar; charset="UTF-8"; method={method}'


@dataclass(frozen=True)
class CalendarTemplate:
    """A VCALENDAR built once; `for_attendee` adds the one line that differs per recipient."""

    method: Method
    head: bytes  # from BEGIN:VCALENDAR to the ORGANIZER line, folded, CRLF
    tail: bytes  # END:VEVENT and END:VCALENDAR

    @classmethod
    def prepare(cls, times: EventTimes, *, method: Method, uid: str, sequence: int, dtstamp: datetime,
                organiser: Party, summary: str, description: str = "", location: str = "",
                url: str | None = None, status: Status | None = None) -> CalendarTemplate:
        """Everything but the attendee. `status` defaults to CANCELLED for CANCEL, else CONFIRMED.

        RFC 5546 3.2: a CANCEL is CANCELLED and a REQUEST is not; a PUBLISH may be either (a
        published event that was called off, as a public feed shows it).

        `uid` stays the same for every message about the event; `sequence` must grow with each
        change the recipients should apply (a CANCEL after a REQUEST has a higher one): keeping
        that count is the caller's job.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        status = status or ("CANCELLED" if method == "CANCEL" else "CONFIRMED")
        if (method == "CANCEL" and status != "CANCELLED") or (method == "REQUEST" and status == "CANCELLED"):
            raise ValueError(f"STATUS:{status} does not go with METHOD:{method} (RFC 5546 3.2: "
                             "CANCEL needs STATUS:CANCELLED, REQUEST may not have it, PUBLISH may)")
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
            raise ValueError(f"sequence must be a whole number >= 0, not {sequence!r}")
        if not uid or _CONTROLS.search(uid) or "\n" in uid or "\r" in uid:
            raise ValueError(f"{uid!r} is not a usable UID")
        if not summary.strip():
            raise ValueError("summary is empty")
        if url is not None and (not url or re.search(r"[\s\"<>\\^`{|}\x00-\x1f\x7f]", url)):
            raise ValueError(f"{url!r} is not a URI")

        lines = ["BEGIN:VCALENDAR", f"PRODID:{PRODID}", "VERSION:2.0", "CALSCALE:GREGORIAN", f"METHOD:{method}",
                 *vtimezone_lines(times.timezone, times.start.year, times.end.year),
                 "BEGIN:VEVENT",
                 f"UID:{escape_text(uid)}",
                 f"SEQUENCE:{sequence}",
                 f"DTSTAMP:{_utc_stamp(dtstamp)}",
                 _when("DTSTART", times.start, times.timezone),
                 _when("DTEND", times.end, times.timezone),
                 f"SUMMARY:{escape_text(summary.strip())}"]
        if description:
            lines.append(f"DESCRIPTION:{escape_text(description)}")
        if location:
            lines.append(f"LOCATION:{escape_text(location)}")
        if url:
            lines.append(f"URL:{url}")
        lines.append(f"STATUS:{status}")
        head = b"".join(fold(line) for line in lines) + _party("ORGANIZER", organiser)
        return cls(method=method, head=head, tail=b"END:VEVENT\r\nEND:VCALENDAR\r\n")

    def for_attendee(self, name: str, email: str) -> bytes:
        """The calendar for one recipient of a REQUEST (asked to reply) or a CANCEL."""
        if self.method == "PUBLISH":
            raise ValueError("a PUBLISH calendar has no attendees; use without_attendee()")
        extra = ";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE" if self.method == "REQUEST" \
            else ";ROLE=REQ-PARTICIPANT"
        return self.head + _party("ATTENDEE", (name, email), extra) + self.tail

    def without_attendee(self) -> bytes:
        """The calendar of a PUBLISH, the same for everyone."""
        if self.method != "PUBLISH":
            raise ValueError(f"METHOD:{self.method} names its attendee; use for_attendee()")
        return self.head + self.tail


def calendar(times: EventTimes, *, method: Method, uid: str, sequence: int, dtstamp: datetime,
             organiser: Party, attendee: Party | None, summary: str, description: str = "",
             location: str = "", url: str | None = None, status: Status | None = None) -> bytes:
    """One complete VCALENDAR; for many recipients prepare a CalendarTemplate once instead."""
    template = CalendarTemplate.prepare(times, method=method, uid=uid, sequence=sequence, dtstamp=dtstamp,
                                        organiser=organiser, summary=summary, description=description,
                                        location=location, url=url, status=status)
    if method == "PUBLISH":
        if attendee is not None:
            raise ValueError("a PUBLISH calendar has no attendee; pass attendee=None")
        return template.without_attendee()
    if attendee is None:
        raise ValueError(f"METHOD:{method} needs the attendee (RFC 5546 3.2)")
    return template.for_attendee(*attendee)
