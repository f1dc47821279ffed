"""The Celery application: a Redis broker, late acknowledgement, and beat's two periodic scans.

Tasks are acknowledged after they finish (`acks_late`) and requeued when a worker process dies,
so a killed worker's batch runs again; the ledger makes that rerun skip whoever was already sent.
No task waits in the broker with a long ETA: with Redis, one that outlives the visibility timeout
is delivered twice. Waiting (a schedule, a retry's backoff) lives in the database, and beat's
sweep looks for what has come due.

The queue, and every other key the broker writes, lives under the installation's prefix in Redis
(kombu's `global_keyprefix`, worker/campaigns/installation.py): a process names its installation before it
publishes or consumes anything (`namespaced`). Task names stay the same in every installation.
"""

from __future__ import annotations

from celery import Celery
from kombu import pools

from foundation.settings import Settings, load_settings
from worker.campaigns.installation import Keys

QUEUE = "herald"  # in Redis: herald:<installation id>:herald
# The task that fans a campaign out: what control.py sends by name, so that it never imports the tasks module.
START = "herald.start"
SWEEP = "herald.sweep"  # beat's periodic scan; beat records when it sends it (worker/commands/services.py)


def make_app(settings: Settings) -> Celery:
    app = Celery("herald", include=["worker.campaigns.tasks"])
    app.conf.update(
        broker_url=settings.redis_url,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a restarted Redis is waited for, not given up on
        # A batch is redelivered by the broker only after this; the sweep usually requeues its rows sooner.
        broker_transport_options={"visibility_timeout": max(300, int(settings.lease_seconds * 3))},
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_schedule={
            "sweep": {"task": SWEEP, "schedule": settings.sweep_seconds},
            "sync": {"task": "herald.sync", "schedule": max(settings.sweep_seconds, 60.0)},
        },
    )
    return app


app = make_app(load_settings())


def namespaced(keys: Keys) -> Celery:
    """The app with its queue and kombu's keys under this installation's prefix, before it connects.

    A process that changes installation (tests do) drops its pooled connections, which carry the old prefix.
    """
    options = app.conf.broker_transport_options
    if options.get("global_keyprefix") != keys.prefix:
        app.conf.broker_transport_options = {**options, "global_keyprefix": keys.prefix}
        forget_connections()
    return app


def forget_connections() -> None:
    """Drop the connection and producer pools, which keep the broker URL and options they were made with."""
    pools.reset()  # closes and forgets every kombu connection and producer pool of this process
    app._pool = None
    app.amqp._producer_pool = None
