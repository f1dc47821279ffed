"""`herald health web|worker|beat`: whether that part can work, as docker-compose.yml's healthchecks ask it.

Each runs where the part runs, with its settings, and exits 0 when it is ready, 1 when not, with one line
per check. The web is asked over HTTP (its /readyz, on HERALD_LISTEN), so the answer is the running
process's own; a worker and beat are asked for what they need: the database and Redis, and the SMTP relay
(a worker) or a sweep within the last three intervals (beat).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from enum import Enum
from typing import Annotated

import typer
from sqlalchemy.orm import sessionmaker

from foundation.db import create
from foundation.settings import Settings, load_settings
from worker.campaigns.installation import keys_of
from worker.monitoring import health


class Part(str, Enum):
    web = "web"
    worker = "worker"
    beat = "beat"


def readyz_url(settings: Settings) -> str:
    host, port = settings.listen
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz"


def web_readiness(settings: Settings) -> tuple[bool, dict[str, str]]:
    """What the running web's /readyz says (it keeps the causes of failures for its log)."""
    url = readyz_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=health.TIMEOUT_SECONDS * 2) as answer:
            return True, json.load(answer)["checks"]
    except urllib.error.HTTPError as error:
        if error.code == 503:
            return False, json.load(error)["checks"]
        return False, {"web": f"{url} answered {error.code}"}
    except OSError as error:
        return False, {"web": f"{url} does not answer: {error}"}


def part_readiness(part: Part, settings: Settings) -> tuple[bool, dict[str, str]]:
    """A worker's or beat's checks, made from here: database and Redis first, then what only that part needs."""
    engine = create(settings.database_url)
    client = health.redis_client(settings.redis_url)
    try:
        sessions = sessionmaker(bind=engine)
        checks = [health.database(sessions), health.redis_answers(client, settings.redis_url)]
        if all(check.ok for check in checks):
            if part is Part.worker:
                checks.append(health.smtp_relay(settings))
            else:
                with sessions() as session:
                    keys = keys_of(session)
                checks.append(health.beat(client, keys, settings.sweep_seconds, required=True))
        return all(check.ok for check in checks), {check.name: f"{check.detail} ({check.cause})" if check.cause
                                                   else check.detail for check in checks}
    finally:
        client.close()
        engine.dispose()


def register(app: typer.Typer) -> None:
    @app.command("health")
    def health_command(part: Annotated[Part, typer.Argument(help="Which part of Herald to ask about.")]) -> None:
        """Whether this part of Herald can work (exit 0) or not (exit 1): what the compose healthchecks run."""
        settings = load_settings()
        ready, checks = web_readiness(settings) if part is Part.web else part_readiness(part, settings)
        for name, detail in checks.items():
            typer.echo(f"{name}: {detail}")
        raise typer.Exit(0 if ready else 1)
