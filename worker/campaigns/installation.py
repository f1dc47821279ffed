"""Which Herald this is: the random id in its database (migration 0006) names its part of Redis.

Every key Herald writes (the rate limiter, the sweep's lock, failure streaks, the subscribe form's counters)
and every key Celery's broker writes (the queue, unacknowledged tasks, bindings) starts with
`herald:<id>:`, so two installations that share a Redis never take each other's work. One key stands
outside every namespace, `herald:installation`: the id of the installation whose workers use this Redis.
A worker or beat that finds another id there refuses to start (worker/commands/startup.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.tables import Installation

OWNER_KEY = "herald:installation"


@dataclass(frozen=True)
class Keys:
    """The Redis keys of one installation: `keys("sweep")` is `herald:<id>:sweep`."""

    installation_id: str

    @property
    def prefix(self) -> str:
        return f"herald:{self.installation_id}:"

    def __call__(self, *parts: str | int) -> str:
        return self.prefix + ":".join(str(part) for part in parts)


def installation_id(session: Session) -> str:
    return session.scalar(select(Installation.id))


def keys_of(session: Session) -> Keys:
    return Keys(installation_id(session))


def claim(client: redis.Redis, installation_id: str) -> str | None:
    """Mark this Redis as the installation's, unless it is another's already: then that one's id."""
    client.set(OWNER_KEY, installation_id, nx=True)
    owner = client.get(OWNER_KEY)
    owner_id = owner.decode() if owner is not None else installation_id  # flushed in between: nobody else's
    return None if owner_id == installation_id else owner_id
