"""What `herald doctor` found: one line per check, with the fix when something needs one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# unchecked: the check could not be made (no network, a server that did not answer): neither good nor bad.
Status = Literal["ok", "warning", "error", "unchecked"]
LABELS: dict[Status, str] = {"ok": "ok", "warning": "warning", "error": "ERROR", "unchecked": "could not check"}


@dataclass(frozen=True)
class Finding:
    check: str  # what was checked, e.g. "SPF" or "DKIM 2026a._domainkey.example.org"
    status: Status
    found: str  # what Herald found, in a sentence
    fix: str = ""  # what to do about it; empty when nothing needs doing


def ok(check: str, found: str) -> Finding:
    return Finding(check, "ok", found)


def warning(check: str, found: str, fix: str) -> Finding:
    return Finding(check, "warning", found, fix)


def error(check: str, found: str, fix: str) -> Finding:
    return Finding(check, "error", found, fix)


def unchecked(check: str, found: str, fix: str = "") -> Finding:
    return Finding(check, "unchecked", found, fix)
