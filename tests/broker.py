"""The Celery broker as a test sees it: the app pointed at the test's Redis, and what waits in its queue."""

from __future__ import annotations

import base64
import json

import redis
from kombu import pools

from worker.celery_app import QUEUE
from worker.celery_app import app as celery_app


def forget_connections() -> None:
    """The Celery app keeps the connection pools of the broker URL it first used; drop them so a new URL counts."""
    pools.reset()  # closes and forgets every kombu connection and producer pool of this process
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def enqueued(client: redis.Redis) -> list[tuple[str, list, dict]]:
    """(task name, args, kwargs) of every message waiting in the queue, oldest first."""
    found = []
    for raw in reversed(client.lrange(QUEUE, 0, -1)):  # kombu LPUSHes, so the oldest is last
        message = json.loads(raw)
        assert message["content-type"] == "application/json"
        assert message["properties"]["body_encoding"] == "base64"
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        assert headers["argsrepr"] == repr(tuple(args))
        found.append((headers["task"], args, kwargs))
    return found
