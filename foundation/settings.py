"""Every setting Herald reads, from `HERALD_*` environment variables, in one place.

Defaults are embedded so that a fresh clone runs with no server and no configuration.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from foundation.smtp_url import parse_smtp_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where `herald up` runs its embedded Redis, its local outbox sink and its web side when HERALD_REDIS_URL,
# HERALD_SMTP_URL, HERALD_LISTEN and HERALD_BASE_URL are not set, unless another program holds the port: then
# on a free one. The ports it took are recorded in the data folder, where every `herald` command of this
# installation finds them, so two installations on one machine never use each other's.
ADDRESS_VARIABLES = {"redis": ("HERALD_REDIS_URL",), "smtp": ("HERALD_SMTP_URL",),
                     "web": ("HERALD_LISTEN", "HERALD_BASE_URL")}
DEFAULT_PORTS = {"redis": 6399, "smtp": 2525, "web": 8000}
PORTS_FILE = "ports.json"


def redis_url_on(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def sink_url_on(port: int) -> str:
    return f"smtp://127.0.0.1:{port}?security=none"


def base_url_on(port: int) -> str:
    return f"http://localhost:{port}"


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
    dkim_keys: tuple[DkimKeyFile, ...]  # HERALD_DKIM_KEYS; empty: nothing is signed
    link_keys: tuple[str, ...]  # newest first: it signs links, all verify; empty: derived from secret_key
    api_token: str  # bearer token of the HTTP API; empty: the API refuses every request
    metrics_token: str  # bearer token of /metrics (Prometheus); empty: /metrics refuses every request
    log_format: str  # text (one line per event, for people) or json (one JSON object per line, for a collector)
    log_level: str  # DEBUG shows each recipient's address; INFO and above never do
    batch_size: int  # recipients per batch task
    rate_limit: float  # messages per second over all workers; 0: no limit
    grace_hours: float  # a campaign due while Herald was down still starts within this window
    lease_seconds: float  # a claimed delivery is retried by another worker only after this
    sweep_seconds: float  # how often beat looks for due campaigns and unfinished deliveries
    retry_base_seconds: float  # first backoff after a temporary SMTP failure; doubles per attempt
    retry_max_seconds: float
    max_attempts: int  # temporary failures before a delivery is given up as failed
    bounce_threshold: int  # hard bounces before a subscriber is marked bounced and suppressed
    pause_after_failures: int  # temporary or refused failures in a row, campaign-wide, before it pauses itself
    # The web side: where `herald web` / `up` listen, and whose X-Forwarded-For it believes.
    listen: tuple[str, int]  # host, port
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]  # empty: believe no one
    secret_key_from_env: bool  # False: the key was made and kept in data/secret.key (fine on one's own machine)
    # Of redis, smtp and web, those whose address Herald chooses (their ADDRESS_VARIABLES are unset): `herald up`
    # may move them to a free port and records where, in data/ports.json. Explicit settings are never moved.
    own_parts: frozenset[str]

    @property
    def public(self) -> bool:
        """Serving the world rather than this machine: the base URL names a host other than loopback."""
        return not is_loopback_url(self.base_url)


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def unsafe_for_mail(settings: Settings) -> str | None:
    """Why real mail must not go out with these settings (RFC 8058 wants https unsubscribe links), or None."""
    if urlsplit(settings.base_url).scheme != "https" and settings.public:
        return (f"HERALD_BASE_URL={settings.base_url} is not https: the unsubscribe links in every message would be "
                "plain HTTP, which RFC 8058 forbids. Set HERALD_BASE_URL to the https:// address of Herald's web side "
                "(only a loopback address such as http://localhost:8000 may be http, for trying Herald out).")
    return None


def unsafe_to_serve(settings: Settings) -> str | None:
    """Why a long-running process (web, worker, beat) must not start with these settings, or None."""
    if settings.public and not settings.secret_key_from_env:
        return (f"HERALD_SECRET_KEY is not set, and HERALD_BASE_URL ({settings.base_url}) is public: set "
                "HERALD_SECRET_KEY to a long random value (python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'), the same on every machine, and never change it.")
    return None


def _path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name, default)).expanduser().resolve()


def private_dir(path: Path) -> Path:
    """A folder only its owner can read (the data folder: the database, the key, the logs)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def private_file(path: Path, mode: str = "ab"):  # noqa: ANN201 - a file object of the mode's kind
    """Open (creating it 0600 from the start, never chmodded after) a file only its owner may read."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, 0o600), mode)


def _local_secret(data_dir: Path) -> str:
    """A random key kept in the data directory, so the embedded setup needs no configuration.

    It keys the suppression hashes (and the links, unless HERALD_LINK_KEYS is set): losing it makes erased
    addresses unrecognisable, so production sets HERALD_SECRET_KEY and keeps it. The file is created
    with mode 0600 and O_EXCL, so no other user can read it in between and two processes never race.
    """
    path = private_dir(data_dir) / "secret.key"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii"))
    return path.read_text(encoding="ascii").strip()


def _address(name: str, raw: str) -> tuple[str, int]:
    host, _, port = raw.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"{name}={raw!r} is not host:port; set it like 127.0.0.1:8000 or 0.0.0.0:8000")
    return host, int(port)


def _listen(base_url: str) -> tuple[str, int]:
    """HERALD_LISTEN, else 127.0.0.1 on the base URL's port when that URL is this machine, else 127.0.0.1:8000.

    A public base URL says where visitors reach the proxy in front of Herald (often port 443), never
    where Herald itself should listen.
    """
    if os.environ.get("HERALD_LISTEN"):
        return _address("HERALD_LISTEN", os.environ["HERALD_LISTEN"])
    port = urlsplit(base_url).port if is_loopback_url(base_url) else None
    return "127.0.0.1", port or DEFAULT_PORTS["web"]


def recorded_ports(data_dir: Path) -> dict[str, int]:
    """The ports `herald up` took for the parts Herald chooses (data/ports.json); none when it never ran.

    Herald writes this file itself; anything in it that is not a port of a known part is ignored.
    """
    try:
        recorded = json.loads((data_dir / PORTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {part: port for part, port in recorded.items()
            if part in ADDRESS_VARIABLES and isinstance(port, int) and 0 < port < 65536}


def record_ports(data_dir: Path, ports: dict[str, int]) -> None:
    """Replace the recorded ports at once (a reader never sees half a file)."""
    path = private_dir(data_dir) / PORTS_FILE
    partial = path.with_suffix(".partial")
    with private_file(partial, "w") as file:
        json.dump(ports, file)
    partial.replace(path)


def _smtp_url(raw: str) -> str:
    """HERALD_SMTP_URL, refused in one line when it cannot be read (the fix is in the line)."""
    try:
        parse_smtp_url(raw)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    return raw


@dataclass(frozen=True)
class DkimKeyFile:
    """One DKIM private key of HERALD_DKIM_KEYS: the domain it signs for (d=), its selector (s=) and its file.

    Entries are newest first: per domain and algorithm (RSA, Ed25519) the first signs, and a later one is a
    retired key whose DNS record must stay published a while (worker/delivery/dkim_keys.py)."""

    domain: str
    selector: str
    path: Path


_DKIM_FORMAT = "domain:selector:/path/to/key.pem, newest first, e.g. example.org:2026a:/run/herald/dkim/2026a.pem"
_DNS_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def dns_name(text: str) -> bool:
    """Dot-separated DNS labels (A-labels, so ASCII), as DKIM's d= and s= must be."""
    return 0 < len(text) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in text.split("."))


def _dkim_keys(raw: str) -> tuple[DkimKeyFile, ...]:
    """HERALD_DKIM_KEYS: `domain:selector:path` entries separated by commas; refused in one line when one cannot
    be read (whether the file holds a usable key is checked where keys are loaded)."""
    keys = []
    for entry in filter(None, (piece.strip() for piece in raw.split(","))):
        domain, selector, path = [*entry.split(":", 2), "", ""][:3]
        domain, selector = domain.strip().lower().rstrip("."), selector.strip().lower()
        if not (dns_name(domain) and dns_name(selector) and path.strip()):
            raise SystemExit(f"HERALD_DKIM_KEYS has {entry!r}, which is not domain:selector:path (the domain in "
                             f"ASCII, as an A-label); write each key as {_DKIM_FORMAT}")
        keys.append(DkimKeyFile(domain, selector, Path(path.strip()).expanduser().resolve()))
    return tuple(keys)


def _networks(name: str, raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for part in filter(None, (piece.strip() for piece in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SystemExit(f"{name} has {part!r}, which is not an IP address or network; list the addresses of "
                             "your reverse proxies, e.g. 10.0.0.2,172.30.0.0/24") from None
    return tuple(networks)


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SystemExit(f"{name}={value!r} is not one of {', '.join(choices)}; set it to one of them")
    return value


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
    own = frozenset(part for part, names in ADDRESS_VARIABLES.items() if not any(env(name) for name in names))
    ports = {**DEFAULT_PORTS, **recorded_ports(data_dir)}
    base_url = (env("HERALD_BASE_URL") or base_url_on(ports["web"])).rstrip("/")
    return Settings(
        content_dir=_path("HERALD_CONTENT_DIR", PROJECT_ROOT / "content"),
        templates_dir=_path("HERALD_TEMPLATES_DIR", PROJECT_ROOT / "templates"),
        outbox_dir=_path("HERALD_OUTBOX_DIR", PROJECT_ROOT / "outbox"),
        data_dir=data_dir,
        database_url=env("HERALD_DATABASE_URL") or f"sqlite:///{data_dir / 'herald.sqlite3'}",
        secret_key=env("HERALD_SECRET_KEY") or _local_secret(data_dir),
        base_url=base_url,
        org_name=env("HERALD_ORG_NAME", "URBACT National Point Romania"),
        org_email=env("HERALD_ORG_EMAIL", "urbact@herald.localhost"),
        org_address=env("HERALD_ORG_ADDRESS", "Bulevardul Libertății 16, București, RO"),
        org_website=env("HERALD_ORG_WEBSITE", "https://urbact.eu/"),
        list_id=env("HERALD_LIST_ID", "news.herald.localhost"),
        redis_url=env("HERALD_REDIS_URL") or redis_url_on(ports["redis"]),
        smtp_url=_smtp_url(env("HERALD_SMTP_URL") or sink_url_on(ports["smtp"])),
        dkim_keys=_dkim_keys(env("HERALD_DKIM_KEYS", "")),
        link_keys=tuple(key.strip() for key in env("HERALD_LINK_KEYS", "").split(",") if key.strip()),
        api_token=env("HERALD_API_TOKEN", ""),
        metrics_token=env("HERALD_METRICS_TOKEN", ""),
        log_format=_choice("HERALD_LOG_FORMAT", env("HERALD_LOG_FORMAT") or "text", LOG_FORMATS),
        log_level=_choice("HERALD_LOG_LEVEL", (env("HERALD_LOG_LEVEL") or "INFO").upper(), LOG_LEVELS),
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
        listen=_listen(base_url),
        trusted_proxies=_networks("HERALD_TRUSTED_PROXIES", env("HERALD_TRUSTED_PROXIES", "")),
        secret_key_from_env=bool(env("HERALD_SECRET_KEY")),
        own_parts=own,
    )
