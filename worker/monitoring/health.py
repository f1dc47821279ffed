"""Whether each part of Herald can do its work: what /readyz and `herald health` ask.

A check answers in seconds and never raises: each gives a sentence an operator can act on, and the error behind
it apart (`cause`), since /readyz answers anyone and an error may name internal hosts. The web needs
the database and Redis; a worker those and the SMTP relay; beat those, and to have swept within
LATE_AFTER_SWEEPS of its intervals. Beat records when it last sent the sweep (`record_sweep`) in Redis,
where the web, on any machine, reads it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from kombu.utils.url import maybe_sanitize_url
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from foundation.settings import Settings
from foundation.smtp_url import parse_smtp_url
from worker.campaigns.installation import Keys
from worker.delivery.smtp import SmtpSender

TIMEOUT_SECONDS = 3.0
LATE_AFTER_SWEEPS = 3  # beat is late when it has not swept for this many of its intervals


@dataclass(frozen=True)
class Check:
    name: str  # database, redis, smtp, beat
    ok: bool
    detail: str  # "ok", or what is wrong
    cause: str = ""  # the error behind a failure, for the operator and the log only


def database(sessions: sessionmaker[Session]) -> Check:
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure of the driver is the answer
        return Check("database", False, "the database does not answer", _cause(error))
    return Check("database", True, "ok")


def redis_client(url: str) -> redis.Redis:
    """A client that gives up after TIMEOUT_SECONDS instead of retrying: a check must answer."""
    return redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS,
                                retry=Retry(NoBackoff(), 0))


def redis_answers(client: redis.Redis, url: str) -> Check:
    try:
        client.ping()
    except redis.RedisError as error:
        return Check("redis", False, "Redis does not answer", f"{maybe_sanitize_url(url)}: {_cause(error)}")
    return Check("redis", True, "ok")


def smtp_relay(settings: Settings) -> Check:
    """Connects, says EHLO, sets up TLS and logs in as a worker's first send would, then QUITs."""
    target = parse_smtp_url(settings.smtp_url)
    sender = SmtpSender(target, timeout=TIMEOUT_SECONDS)
    try:
        sender.check()
    except Exception as error:  # noqa: BLE001 - refused, timed out, TLS, login: each is the answer
        return Check("smtp", False, "the SMTP relay does not take mail", f"{target.host}:{target.port}: {_cause(error)}")
    finally:
        sender.close()
    return Check("smtp", True, "ok")


def _cause(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())  # one line


def _sweep_key(keys: Keys) -> str:
    return keys("beat", "swept_at")


def record_sweep(client: redis.Redis, keys: Keys, at: float) -> None:
    client.set(_sweep_key(keys), repr(at))


def last_sweep(client: redis.Redis, keys: Keys) -> float | None:
    """When beat last sent the sweep (a Unix time), or None when it has not since this Redis started."""
    value = client.get(_sweep_key(keys))
    return float(value) if value is not None else None


def beat(client: redis.Redis, keys: Keys, sweep_seconds: float, *, required: bool) -> Check:
    """Late after LATE_AFTER_SWEEPS intervals without a sweep. Never swept since this Redis started is a failure
    only when `required` (beat's own check: it sweeps as it starts), not for the web, which may start first."""
    try:
        swept = last_sweep(client, keys)
    except redis.RedisError as error:
        return Check("beat", False, "when beat last swept is unknown: Redis does not answer", _cause(error))
    if swept is None:
        return Check("beat", not required, "beat has not swept since this Redis started")
    ago = time.time() - swept
    if ago > LATE_AFTER_SWEEPS * sweep_seconds:
        return Check("beat", False, f"beat is late: it last swept {ago:.0f} s ago, and sweeps every "
                                    f"{sweep_seconds:g} s (HERALD_SWEEP_SECONDS); is `herald beat` running?")
    return Check("beat", True, f"ok, last swept {ago:.0f} s ago")
