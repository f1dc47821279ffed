"""The engine's log lines: one per delivery that did not simply go out, one per batch and per fan-out.

Each line about a delivery carries the campaign's, the delivery's and the subscriber's ids (foundation/logs.py
writes them as fields); the address appears only at DEBUG, where a sent message gets its line too.
"""

from __future__ import annotations

import logging

from foundation.logs import about
from worker.campaigns.ledger import Claimed
from worker.delivery.smtp import Outcome

log = logging.getLogger("herald.delivery")
# By Outcome.status: how loud, and in which words.
_SAID = {"sent": (logging.DEBUG, "sent"),
         "permanent": (logging.INFO, "bounced"),
         "temporary": (logging.INFO, "not sent for now, to be retried"),
         "rejected": (logging.WARNING, "refused by the server, failed"),
         "configuration": (logging.WARNING, "not sent: HERALD_SMTP_URL does not fit the server")}


def outcome(campaign_id: int, row: Claimed, result: Outcome) -> None:
    level, words = _SAID[result.status]
    ids = about(campaign_id, row.delivery_id, row.subscriber_id)
    log.log(level, "%s: %s", words, result.detail, extra=ids)
    log.debug("delivery %s was to %s", row.delivery_id, row.email, extra=ids)


def not_sent(campaign_id: int, row: Claimed, why: str) -> None:
    log.info("not sent: %s", why, extra=about(campaign_id, row.delivery_id, row.subscriber_id))


def batch_done(campaign_id: int, first: int, last: int, rows: int, seconds: float) -> None:
    log.info("batch of subscribers %s-%s: %s rows in %.2f s", first, last, rows, seconds, extra=about(campaign_id))


def fanout_done(campaign_id: int, seconds: float) -> None:
    log.info("fan-out done in %.2f s", seconds, extra=about(campaign_id))
