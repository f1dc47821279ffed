"""The engine's one clock, so that schedules can be tested without waiting for them.

Every decision about time (is a campaign due, has a lease run out, is a retry due) reads `now()`.
In production it is the system clock. A test that must move time for running worker and beat
processes writes a number of seconds into the file named by HERALD_CLOCK_OFFSET_FILE; every
process then reads the system clock shifted by that much. Time keeps flowing, so leases,
backoffs and beat behave as they would, only later.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

OFFSET_FILE_ENV = "HERALD_CLOCK_OFFSET_FILE"


def _offset() -> timedelta:
    name = os.environ.get(OFFSET_FILE_ENV)
    if not name:
        return timedelta(0)
    try:
        return timedelta(seconds=float(Path(name).read_text(encoding="ascii").strip() or 0))
    except FileNotFoundError:
        return timedelta(0)


def now() -> datetime:
    return datetime.now(UTC) + _offset()
