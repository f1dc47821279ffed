"""What workers see that the ledger does not keep: SMTP replies and their latency, batch and fan-out
durations, rate-limiter waits. Added up in Redis for every process of every worker machine, and read
back by the web's /metrics (worker/monitoring/metrics.py).

Why Redis rather than prometheus-client's multiprocess mode: that mode adds up the processes of one
machine through files in a folder they share, so every worker machine would need a scrape endpoint of its
own; every worker on every machine already shares this Redis, so one /metrics sees them all. A process
keeps its counts in memory and adds them to Redis in one pipeline at its batch's state checks (every
CHECK_STATE_SECONDS) and when a batch or fan-out ends: a round trip per half second, not per message.
A Redis replaced by an empty one starts these counters again from zero, which Prometheus reads as a
counter reset (rate() and increase() expect them). Nothing here can stop a send: a Redis error drops the
counts, and the ledger stays the truth.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from dataclasses import dataclass

import redis

from worker.campaigns.installation import Keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Histogram:
    name: str  # herald_<name>, in seconds
    help: str
    buckets: tuple[float, ...]  # upper bounds; +Inf is implied


SMTP_SECONDS = Histogram("smtp_send_seconds", "Time to hand one message to the SMTP relay, connecting included.",
                         (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
BATCH_SECONDS = Histogram("batch_seconds", "Time a batch task took, from claiming its rows to its last one.",
                          (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0))
FANOUT_SECONDS = Histogram("fanout_seconds", "Time a campaign's fan-out took to give its audience ledger rows.",
                           (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0))
HISTOGRAMS = (SMTP_SECONDS, BATCH_SECONDS, FANOUT_SECONDS)
# Counters: name -> (help, label or None). A labelled counter keeps one Redis hash field per label value.
SMTP_REPLIES = "smtp_replies"
RATE_LIMIT_WAITS = "rate_limit_waits"
RATE_LIMIT_WAIT_SECONDS = "rate_limit_wait_seconds"
COUNTERS: dict[str, tuple[str, str | None]] = {
    SMTP_REPLIES: ("SMTP replies to the last command of each message, by code (none: no reply at all).", "code"),
    RATE_LIMIT_WAITS: ("Sends that waited for the shared rate limiter (HERALD_RATE_LIMIT).", None),
    RATE_LIMIT_WAIT_SECONDS: ("Seconds sends waited for the shared rate limiter.", None),
}
TOTAL = "total"  # the one field of a counter without a label


def _key(keys: Keys, name: str) -> str:
    return keys("metrics", name)


class Observations:
    """One process's counts since its last `flush`, which adds them to this installation's Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys
        self._pending: defaultdict[tuple[str, str], float] = defaultdict(float)

    def count(self, name: str, label: str = TOTAL, amount: float = 1.0) -> None:
        self._pending[name, label] += amount

    def observe(self, histogram: Histogram, seconds: float) -> None:
        self._pending[histogram.name, str(bisect.bisect_left(histogram.buckets, seconds))] += 1
        self._pending[histogram.name, "sum"] += seconds

    def smtp_reply(self, code: int | None, seconds: float) -> None:
        self.count(SMTP_REPLIES, str(code) if code is not None else "none")
        self.observe(SMTP_SECONDS, seconds)

    def rate_limit_wait(self, seconds: float) -> None:
        if seconds > 0:
            self.count(RATE_LIMIT_WAITS)
            self.count(RATE_LIMIT_WAIT_SECONDS, amount=seconds)

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(float)
        pipeline = self.client.pipeline(transaction=False)
        for (name, field), amount in pending.items():
            pipeline.hincrbyfloat(_key(self.keys, name), field, amount)
        try:
            pipeline.execute()
        except redis.RedisError as error:
            log.warning("metrics not recorded, Redis did not take them: %s", error)


def read(client: redis.Redis, keys: Keys) -> dict[str, dict[str, float]]:
    """Every counter and histogram as Redis holds it: name -> {field: value}."""
    names = [*COUNTERS, *(histogram.name for histogram in HISTOGRAMS)]
    pipeline = client.pipeline(transaction=False)
    for name in names:
        pipeline.hgetall(_key(keys, name))
    return {name: {field.decode(): float(value) for field, value in fields.items()}
            for name, fields in zip(names, pipeline.execute(), strict=True)}


def cumulative(histogram: Histogram, fields: dict[str, float]) -> tuple[list[tuple[str, float]], float]:
    """Prometheus's buckets (cumulative, ending at +Inf) and the sum, from the per-bucket counts kept in Redis."""
    running, buckets = 0.0, []
    for index, bound in enumerate([*histogram.buckets, float("inf")]):
        running += fields.get(str(index), 0.0)
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return buckets, fields.get("sum", 0.0)
