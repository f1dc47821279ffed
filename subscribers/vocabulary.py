"""The closed sets a subscriber's fields draw from, shared by the store, the import and segments."""

from __future__ import annotations

from foundation.languages import LANGUAGES

# The edition a subscriber receives: one language, or both side by side (worker.rendering.render.EDITIONS).
SUBSCRIBER_LANGUAGES: tuple[str, ...] = (*LANGUAGES, "both")

ORGANISATION_TYPES: tuple[str, ...] = (
    "municipality", "ministry", "agency", "university", "ngo", "company", "other",
)

STATUSES: tuple[str, ...] = ("pending", "confirmed", "unsubscribed", "bounced", "complained")

# Statuses a person leaves only by their own action: an import never overwrites them.
FINAL_STATUSES: frozenset[str] = frozenset({"unsubscribed", "bounced", "complained"})
