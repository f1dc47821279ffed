"""What a machine asks of the web: /healthz (the process answers), /readyz (it can work) and /metrics.

/metrics is behind a bearer token of its own (HERALD_METRICS_TOKEN), not a separate port: it then goes
through the same TLS proxy as everything else, one port stays open, and Prometheus sends the token with its
`authorization` scrape setting. Without a token set, /metrics refuses everyone, as the API does.

/readyz answers 503 when the web cannot work: its database or Redis does not answer (what failed, in words
that name no host; the error itself goes to the log). It also says when
beat is late, but stays 200 for it: a load balancer must not take the subscribers' pages away because
the scheduler stopped, and the compose file starts beat only once the web is healthy. Beat's own
healthcheck (`herald health beat`) and the alert rules fail on it.
"""

from __future__ import annotations

import logging

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy.orm import Session, sessionmaker

from foundation.settings import Settings
from web.api import CHALLENGE, token_valid
from worker.campaigns.installation import keys_of
from worker.monitoring import health
from worker.monitoring.metrics import HeraldCollector

NO_STORE = {"Cache-Control": "no-store"}
log = logging.getLogger(__name__)


def readiness(settings: Settings, sessions: sessionmaker[Session], client: redis.Redis) -> tuple[bool, dict[str, str]]:
    """Whether the web can work (database and Redis), and what each check said, beat's lateness included."""
    checks = [health.database(sessions), health.redis_answers(client, settings.redis_url)]
    ready = all(check.ok for check in checks)
    if ready:
        with sessions() as session:
            keys = keys_of(session)
        checks.append(health.beat(client, keys, settings.sweep_seconds, required=False))
    for check in checks:
        if check.cause:
            log.warning("not ready: %s (%s)", check.detail, check.cause)
    return ready, {check.name: check.detail for check in checks}


def create_operations(settings: Settings, sessions: sessionmaker[Session]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HeraldCollector(settings, sessions))
    client = health.redis_client(settings.redis_url)

    @router.get("/healthz")
    def alive() -> Response:
        return JSONResponse({"status": "alive"}, headers=NO_STORE)

    @router.get("/readyz")
    def ready() -> Response:
        ok, checks = readiness(settings, sessions, client)
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503, headers=NO_STORE)

    @router.get("/metrics")
    def metrics(request: Request) -> Response:
        scheme, given = get_authorization_scheme_param(request.headers.get("authorization"))
        if scheme.lower() != "bearer" or not token_valid(given, settings.metrics_token):
            return JSONResponse({"detail": "a valid bearer token (HERALD_METRICS_TOKEN) is required"}, 401,
                                headers=CHALLENGE)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4, headers=NO_STORE)

    return router
