"""Every setting Herald reads, from `HERALD_*` environment variables, in one place.

Defaults are embedded so that a fresh clone runs with no server and no configuration.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where `herald up` runs its embedded Redis and its local outbox sink when these are not configured;
# other `herald` commands on the same machine find them there with no configuration either.
EMBEDDED_REDIS_URL = "redis://127.0.0.1:6399/0"
LOCAL_SINK_URL = "smtp://127.0.0.1:2525?security=none"


@dataclass(frozen=True)
class Settings:
    content_dir: Path
    templates_dir: Path
    outbox_dir: Path
    data_dir: Path
    database_url: str
    secret_key: str
    base_url: str
    org_name: str
    org_email: str
    org_address: str
    org_website: str
    list_id: str
    # The campaign engine (worker/): broker, SMTP, pacing, retries and the thresholds that protect a list.
    redis_url: str  # the Celery broker and the shared rate limiter
    smtp_url: str  # smtp://user:password@host:port?security=starttls|tls|none
    link_keys: tuple[str, ...]  # newest first: it signs links, all verify; empty: derived from secret_key
    api_token: str  # bearer token of the HTTP API; empty: the API refuses every request
    batch_size: int  # recipients per batch task
    rate_limit: float  # messages per second over all workers; 0: no limit
    grace_hours: float  # a campaign due while Herald was down still starts within this window
    lease_seconds: float  # a claimed delivery is retried by another worker only after this
    sweep_seconds: float  # how often beat looks for due campaigns and unfinished deliveries
    retry_base_seconds: float  # first backoff after a temporary SMTP failure; doubles per attempt
    retry_max_seconds: float
    max_attempts: int  # temporary failures before a delivery is given up as failed
    bounce_threshold: int  # hard bounces before a subscriber is marked bounced and suppressed
    pause_after_failures: int  # temporary failures in a row, campaign-wide, before it pauses itself


def _path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name, default)).expanduser().resolve()


def _local_secret(data_dir: Path) -> str:
    """A random key kept in the data directory, so the embedded setup needs no configuration.

    It keys the suppression hashes (and the links, unless HERALD_LINK_KEYS is set): losing it makes erased
    addresses unrecognisable, so production sets HERALD_SECRET_KEY and keeps it.
    """
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32), encoding="ascii")
        path.chmod(0o600)
    return path.read_text(encoding="ascii").strip()


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number; set it to one such as {default:g}") from None


def load_settings() -> Settings:
    """Read the environment now, so tests and the CLI see the variables in force when they run."""
    env = os.environ.get
    data_dir = _path("HERALD_DATA_DIR", PROJECT_ROOT / "data")
    return Settings(
        content_dir=_path("HERALD_CONTENT_DIR", PROJECT_ROOT / "content"),
        templates_dir=_path("HERALD_TEMPLATES_DIR", PROJECT_ROOT / "templates"),
        outbox_dir=_path("HERALD_OUTBOX_DIR", PROJECT_ROOT / "outbox"),
        data_dir=data_dir,
        database_url=env("HERALD_DATABASE_URL") or f"sqlite:///{data_dir / 'herald.sqlite3'}",
        secret_key=env("HERALD_SECRET_KEY") or _local_secret(data_dir),
        base_url=env("HERALD_BASE_URL", "http://localhost:8000").rstrip("/"),
        org_name=env("HERALD_ORG_NAME", "URBACT National Point Romania"),
        org_email=env("HERALD_ORG_EMAIL", "urbact@herald.localhost"),
        org_address=env("HERALD_ORG_ADDRESS", "Bulevardul Libertății 16, București, RO"),
        org_website=env("HERALD_ORG_WEBSITE", "https://urbact.eu/"),
        list_id=env("HERALD_LIST_ID", "news.herald.localhost"),
        redis_url=env("HERALD_REDIS_URL", EMBEDDED_REDIS_URL),
        smtp_url=env("HERALD_SMTP_URL", LOCAL_SINK_URL),
        link_keys=tuple(key.strip() for key in env("HERALD_LINK_KEYS", "").split(",") if key.strip()),
        api_token=env("HERALD_API_TOKEN", ""),
        batch_size=int(_number("HERALD_BATCH_SIZE", 1000)),
        rate_limit=_number("HERALD_RATE_LIMIT", 0),
        grace_hours=_number("HERALD_GRACE_HOURS", 6),
        lease_seconds=_number("HERALD_LEASE_SECONDS", 120),
        sweep_seconds=_number("HERALD_SWEEP_SECONDS", 15),
        retry_base_seconds=_number("HERALD_RETRY_BASE_SECONDS", 60),
        retry_max_seconds=_number("HERALD_RETRY_MAX_SECONDS", 3600),
        max_attempts=int(_number("HERALD_MAX_ATTEMPTS", 8)),
        bounce_threshold=int(_number("HERALD_BOUNCE_THRESHOLD", 1)),
        pause_after_failures=int(_number("HERALD_PAUSE_AFTER_FAILURES", 100)),
    )
