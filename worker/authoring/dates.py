"""Dates and times as editors write them: `2027-03-11` and `2027-03-11 10:00`, and for anything else the fix.

Pydantic's own words ("invalid character in year", "not a time" for an April 31st) leave an editor guessing;
these say which day does not exist, or give the value back in the form Herald reads.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime

_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](.*))?")
_DAY_FIRST = re.compile(r"(\d{1,2})[./-](\d{1,2})[./-](\d{4})(?:\s+(.*))?")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def read_date(value: object) -> object:
    """A `date` from `YYYY-MM-DD` (or the date YAML made of it); ValueError says the fix."""
    if isinstance(value, datetime):  # pydantic reports a ValueError at the field's line; a TypeError would escape
        raise ValueError(f"{value:%Y-%m-%d %H:%M} is a time; write the day alone, {value:%Y-%m-%d}")  # noqa: TRY004
    if isinstance(value, date):
        return value
    text = str(value).strip()
    iso = _ISO.fullmatch(text)
    if iso and not iso.group(4):
        return _day(*map(int, iso.group(1, 2, 3)), text=text)
    if iso:
        raise ValueError(f"{text} is a time; write the day alone, {iso.group(1)}-{iso.group(2)}-{iso.group(3)}")
    raise ValueError(_unreadable(text, "write dates as {}", "YYYY-MM-DD, e.g. 2027-03-15", with_time=False))


def read_time(value: object) -> object:
    """A naive `datetime` from `YYYY-MM-DD HH:MM` (local to the item's zone); ValueError says the fix."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        raise ValueError(f"{value:%Y-%m-%d} has no time of day; write it as {value:%Y-%m-%d} 10:00 (HH:MM)")  # noqa: TRY004
    text = str(value).strip()
    iso = _ISO.fullmatch(text)
    clock = _CLOCK.fullmatch(iso.group(4).strip()) if iso and iso.group(4) else None
    if iso and clock:
        day = _day(*map(int, iso.group(1, 2, 3)), text=f"{iso.group(1)}-{iso.group(2)}-{iso.group(3)}")
        return datetime(day.year, day.month, day.day, int(clock.group(1)), int(clock.group(2)))
    raise ValueError(_unreadable(text, "write times as {}", "YYYY-MM-DD HH:MM, e.g. 2027-03-15 10:00", with_time=True))


def _day(year: int, month: int, day: int, text: str) -> date:
    if not 1 <= month <= 12:
        raise ValueError(f"{text} is not a date: a year has 12 months; write dates as YYYY-MM-DD")
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        month_name = calendar.month_name[month] + (f" {year}" if month == 2 else "")
        raise ValueError(f"{text} is not a date: {month_name} has {days} days")
    return date(year, month, day)


def _unreadable(text: str, fix: str, form: str, with_time: bool) -> str:
    """The value in Herald's form when it reads as day.month.year (how dates are written in Romania), else the form."""
    written = _DAY_FIRST.fullmatch(text)
    clock = _CLOCK.fullmatch(written.group(4) or "") if written else None
    try:
        day = date(int(written.group(3)), int(written.group(2)), int(written.group(1))) if written else None
    except ValueError:
        day = None
    if day and (clock or not written.group(4)):
        if not with_time:
            return f"{fix.format(f'{day:%Y-%m-%d}')} (year-month-day), not {text}"
        time = f"{int(clock.group(1)):02d}:{clock.group(2)}" if clock else "HH:MM"
        return f"{fix.format(f'{day:%Y-%m-%d} {time}')} (year-month-day hour:minute), not {text}"
    shown = text if len(text) <= 40 else text[:40] + "…"
    return f"'{shown}' is not a {'time' if with_time else 'date'}; write it as {form}"
