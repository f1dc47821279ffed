"""Logging for the long-running processes (web, worker, beat): one line per event, text or JSON.

A line about one delivery carries the campaign's and the delivery's ids (`about`), and the subscriber's id
where it helps; never the address or the name. Only DEBUG may name an address: above it, anything shaped
like one is replaced by the word `address` as the line is written, whoever logged it (Celery, smtplib,
a library), so a log shipped to a collector holds no personal data beyond ids.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# The ids a line about a send carries, in this order, when the record has them.
CONTEXT = ("campaign_id", "delivery_id", "subscriber_id")
# local@domain.tld, the top-level domain in letters: a host written as an IP (redis://:**@127.0.0.1) is not one.
_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]@]+@(?:[^\s<>\"'(),;:\[\]@./]+\.)+[^\W\d_]{2,}\b")


def about(campaign_id: int, delivery_id: int | None = None, subscriber_id: int | None = None) -> dict[str, int]:
    """`extra=` for a line about a campaign, or one delivery of it."""
    ids = {"campaign_id": campaign_id, "delivery_id": delivery_id, "subscriber_id": subscriber_id}
    return {name: value for name, value in ids.items() if value is not None}


def _message(record: logging.LogRecord) -> str:
    """The record's message, without addresses unless it is DEBUG; a traceback stays in the same line."""
    message = record.getMessage()
    if record.exc_info:
        message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
    return message if record.levelno <= logging.DEBUG else _ADDRESS.sub("address", message)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and the ids of `CONTEXT` it has."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": _message(record)}
        line.update({name: getattr(record, name) for name in CONTEXT if hasattr(record, name)})
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2027-01-20 10:00:00,123 INFO herald.batch: bounced … [campaign=3 delivery=17 subscriber=42]`, one line."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{name.removesuffix('_id')}={getattr(record, name)}" for name in CONTEXT
                       if hasattr(record, name))
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {_message(record)}"
        return (f"{line} [{ids}]" if ids else line).replace("\n", "\\n")


def configure(log_format: str, level: str) -> None:
    """The root logger writes `log_format` lines at `level` to stderr; every other handler is removed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is an event like any other: one line, in the format
