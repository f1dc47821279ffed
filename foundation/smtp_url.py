"""HERALD_SMTP_URL read into its parts: in the foundation, so that settings refuse a URL that cannot be read
in one line, before any command runs, and the SMTP edge connects with the same parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Security = Literal["starttls", "tls", "none"]
_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
_FORMAT = "smtp://user:password@host:port?security=starttls|tls|none"


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    user: str
    password: str
    security: Security

    def __repr__(self) -> str:  # keeps the password out of logs and tracebacks
        return f"SmtpTarget({self.host!r}, {self.port}, user={self.user!r}, security={self.security!r})"


def parse_smtp_url(url: str) -> SmtpTarget:
    """HERALD_SMTP_URL to its parts; a mistake names the part and the fix, never the password."""
    parts = urlsplit(url.strip())
    if parts.scheme != "smtp":
        raise ValueError(f"HERALD_SMTP_URL must start with smtp:// (got {parts.scheme or 'no'} scheme); "
                         f"write it as {_FORMAT}")
    if not parts.hostname:
        raise ValueError(f"HERALD_SMTP_URL names no host; write it as {_FORMAT}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"security"})
    if unknown:
        raise ValueError(f"HERALD_SMTP_URL has unknown parameters {', '.join(unknown)}; the only one is "
                         "?security=starttls|tls|none")
    security = query.get("security", ["starttls"])[-1]
    if security not in _DEFAULT_PORTS:
        raise ValueError(f"HERALD_SMTP_URL has security={security!r}; use starttls (port 587), "
                         "tls (port 465) or none (a local relay only)")
    try:
        port = parts.port or _DEFAULT_PORTS[security]
    except ValueError:
        raise ValueError(f"HERALD_SMTP_URL has a port that is not a number from 1 to 65535; write it as {_FORMAT}"
                         ) from None
    if parts.password is not None and not parts.username:
        raise ValueError(f"HERALD_SMTP_URL has a password but no user name; write it as {_FORMAT}")
    return SmtpTarget(host=parts.hostname, port=port, user=unquote(parts.username or ""),
                      password=unquote(parts.password or ""), security=security)  # type: ignore[arg-type]
