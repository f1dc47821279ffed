"""What worker, beat and web check before they start; each failure is one line on stderr and exit 1.

The settings are refused where they are read (foundation/settings.py, a HERALD_SMTP_URL that cannot be read
among them) and the database where every command opens it (foundation/db.py). Here: the Redis they
need answers, and for worker and beat, which take work from it, it is this installation's.
"""

from __future__ import annotations

import redis
from kombu.utils.url import maybe_sanitize_url
from redis.backoff import NoBackoff
from redis.retry import Retry

from foundation.db import open_store
from foundation.settings import Settings
from worker.campaigns.installation import Keys, claim, keys_of

REDIS_TIMEOUT = 3.0  # seconds to connect and to answer PING


def redis_answering(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
                                  retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        raise SystemExit(f"Redis at HERALD_REDIS_URL={maybe_sanitize_url(url)} does not answer ({error}): start "
                         "it (`herald up` runs one), or fix HERALD_REDIS_URL.") from None
    return client


def installation_keys(settings: Settings) -> Keys:
    sessions = open_store(settings)
    try:
        with sessions() as session:
            return keys_of(session)
    finally:
        sessions.kw["bind"].dispose()


def working_keys(settings: Settings) -> Keys:
    """This installation's keys, once its Redis answers and is not another installation's."""
    keys = installation_keys(settings)
    with redis_answering(settings.redis_url) as client:
        other = claim(client, keys.installation_id)
    if other:
        raise SystemExit(f"Redis at HERALD_REDIS_URL={maybe_sanitize_url(settings.redis_url)} holds the work of "
                         f"Herald installation {other}, and this is installation {keys.installation_id}: give each "
                         "installation its own Redis, or its own database number (redis://host:6379/1).")
    return keys
