"""Every setting Herald reads, from `HERALD_*` environment variables, in one place.

Defaults are embedded so that a fresh clone runs with no server and no configuration.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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


def _path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name, default)).expanduser().resolve()


def _local_secret(data_dir: Path) -> str:
    """A random key kept in the data directory, so the embedded setup needs no configuration.

    It keys the suppression hashes (and, later, link signatures): losing it makes erased
    addresses unrecognisable, so production sets HERALD_SECRET_KEY and keeps it.
    """
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32), encoding="ascii")
        path.chmod(0o600)
    return path.read_text(encoding="ascii").strip()


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
    )
