"""The Celery broker as a test sees it: the app pointed at the test's Redis, and what waits in its queue."""

from __future__ import annotations

import base64
import json

import redis

from worker.campaigns.celery_app import QUEUE, forget_connections  # noqa: F401 - forget_connections: re-exported
from worker.campaigns.installation import Keys


def queue_keys(client: redis.Redis) -> list[bytes]:
    """Every installation's queue in this Redis (herald:<id>:herald)."""
    return [key for key in client.scan_iter(match=Keys("*")(QUEUE)) if client.type(key) == b"list"]


def empty_queues(client: redis.Redis) -> None:
    for queue in queue_keys(client):
        client.delete(queue)


def enqueued(client: redis.Redis, keys: Keys | None = None) -> list[tuple[str, list, dict]]:
    """(task name, args, kwargs) of every message waiting in the installation's queue (`keys`; default: whichever
    installation's queue holds messages, there being at most one), oldest first."""
    if keys is None:
        holding = [key for key in queue_keys(client) if client.llen(key)]
        assert len(holding) <= 1, f"tasks in the queues of several installations: {holding}"
        queue = holding[0] if holding else None
    else:
        queue = keys(QUEUE)
    found = []
    for raw in reversed(client.lrange(queue, 0, -1) if queue else []):  # kombu LPUSHes, so the oldest is last
        message = json.loads(raw)
        assert message["content-type"] == "application/json"
        assert message["properties"]["body_encoding"] == "base64"
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        assert headers["argsrepr"] == repr(tuple(args))
        found.append((headers["task"], args, kwargs))
    return found
