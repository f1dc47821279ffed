"""Herald's metrics in Prometheus's terms, read at each scrape from where the truth is kept.

Deliveries, campaigns and subscribers are counted in the database at the moment of the scrape: the
ledger is the truth, so what /metrics says is exactly what the ledger says, whichever worker on whichever
machine wrote it. They are gauges, not counters: erasing a person removes their ledger rows. The queue's
depth and when beat last swept are read from Redis; what workers observe that the ledger does not keep
(SMTP replies and latency, batch and fan-out durations, rate-limiter waits) was added up in Redis by the
workers themselves (worker/monitoring/observed.py). A part that does not answer is reported as down
(`herald_dependency_up`) and its metrics are left out, so a scrape never fails for it.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from importlib.metadata import version

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from foundation.settings import Settings
from subscribers.models import Subscriber
from subscribers.vocabulary import STATUSES
from worker.campaigns.celery_app import QUEUE
from worker.campaigns.installation import Keys, keys_of
from worker.campaigns.models import CAMPAIGN_STATES, DELIVERY_STATES, Campaign, Delivery
from worker.monitoring import health, observed


def _deliveries(session: Session) -> Metric:
    family = GaugeMetricFamily("herald_deliveries", "Ledger rows by campaign kind (its message) and state, now.",
                               labels=["kind", "state"])
    counted = {(kind, state): count for kind, state, count in session.execute(
        select(Campaign.message, Delivery.state, func.count()).join(Campaign, Campaign.id == Delivery.campaign_id)
        .group_by(Campaign.message, Delivery.state))}
    for kind in sorted({kind for kind, _ in counted}):
        for state in DELIVERY_STATES:
            family.add_metric([kind, state], counted.get((kind, state), 0))
    return family


def _by_column(session: Session, name: str, documentation: str, column: InstrumentedAttribute[str],
               values: tuple[str, ...]) -> Metric:
    label = column.key
    family = GaugeMetricFamily(name, documentation, labels=[label])
    counted = dict(session.execute(select(column, func.count()).group_by(column)).all())
    for value in values:
        family.add_metric([value], counted.get(value, 0))
    return family


def _observed(fields: dict[str, dict[str, float]]) -> Iterator[Metric]:
    for name, (documentation, label) in observed.COUNTERS.items():
        family = CounterMetricFamily(f"herald_{name}", documentation, labels=[label] if label else [])
        for value, amount in sorted(fields[name].items()):
            family.add_metric([value] if label else [], amount)
        if not label and not fields[name]:
            family.add_metric([], 0.0)
        yield family
    for histogram in observed.HISTOGRAMS:
        buckets, total = observed.cumulative(histogram, fields[histogram.name])
        yield HistogramMetricFamily(f"herald_{histogram.name}", histogram.help, buckets=buckets, sum_value=total)


class HeraldCollector(Collector):
    """Everything /metrics shows, collected afresh at each scrape."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings, self.sessions = settings, sessions
        self.redis = health.redis_client(settings.redis_url)
        self._keys: Keys | None = None

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("herald_build", "The Herald that answers.")
        info.add_metric([], {"version": version("herald"), "python": platform.python_version()})
        yield info
        up = GaugeMetricFamily("herald_dependency_up", "Whether the database and Redis answered this scrape.",
                               labels=["dependency"])
        families: list[Metric] = []
        try:
            with self.sessions() as session:
                self._keys = self._keys or keys_of(session)
                families += [_deliveries(session),
                             _by_column(session, "herald_campaigns", "Campaigns by state, now.", Campaign.state,
                                        CAMPAIGN_STATES),
                             _by_column(session, "herald_subscribers", "Subscribers by status, now.",
                                        Subscriber.status, STATUSES)]
            up.add_metric(["database"], 1)
        except SQLAlchemyError:
            up.add_metric(["database"], 0)
        if self._keys is not None:
            try:
                families += list(self._from_redis(self._keys))
                up.add_metric(["redis"], 1)
            except redis.RedisError:
                up.add_metric(["redis"], 0)
        yield up
        yield from families

    def _from_redis(self, keys: Keys) -> Iterator[Metric]:
        depth = GaugeMetricFamily("herald_queue_depth", "Tasks waiting in the Celery queue.", labels=["queue"])
        depth.add_metric([QUEUE], self.redis.llen(keys(QUEUE)))
        yield depth
        yield GaugeMetricFamily("herald_sweep_interval_seconds", "How often beat sweeps (HERALD_SWEEP_SECONDS).",
                                value=self.settings.sweep_seconds)
        if (swept := health.last_sweep(self.redis, keys)) is not None:
            yield GaugeMetricFamily("herald_beat_last_sweep_timestamp_seconds",
                                    "When beat last sent the sweep (Unix time).", value=swept)
        yield from _observed(observed.read(self.redis, keys))
