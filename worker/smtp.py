"""The sending edge: one SMTP connection per worker, reused, and every reply sorted into what to do next.

The campaign engine only needs three answers: sent, try again later (temporary), or never again for
this recipient (permanent). Only a 5xx answer to this recipient's RCPT or to its DATA is permanent;
a refusal of the connection, the login, STARTTLS or our MAIL FROM is Herald's or the server's
problem, not the recipient's, so it is temporary: retries and the campaign's pause-after-failures
deal with it, and no subscriber is suppressed because of a configuration mistake.

Duplicates: the server may take the message after our closing "." and the connection die, or our
timeout run out, before its 250 reaches us. That looks exactly like a message the server never got,
so it is temporary and the retry sends the message a second time. It is the only way a retry
duplicates one: a failure before the closing "." leaves the server an unfinished transaction, which
it discards, and a reply we do read is the truth. SMTP cannot close this window (RFC 1047); keep it
small by giving slow servers time, since RFC 5321 lets them take 10 minutes to answer the ".".
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Security = Literal["starttls", "tls", "none"]
_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
_FORMAT = "smtp://user:password@host:port?security=starttls|tls|none"
_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")


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


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "temporary", "permanent"]
    code: int | None  # the SMTP reply code, None when there was no reply (refused, timed out, cut)
    detail: str  # for logs: the stage and the server's words, any email address replaced by the word `address`


def _detail(stage: str, code: int | None, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    words = " ".join(text.split())
    return _ADDRESS.sub("address", f"{stage} {code} {words}" if code is not None else f"{stage}: {words}")


def dot_stuffed(message: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 4.5.2): a line that starts with "." gets another, and it
    ends with CRLF. smtplib does this with a regular expression, 0.7 ms for a 70 KB message; this is
    the same rule with bytes.replace."""
    stuffed = message.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


def _pipelined(connection: smtplib.SMTP, sender: str, recipient: str) -> dict[str, tuple[int, bytes]]:
    """MAIL, RCPT and DATA in one write (RFC 2920), one round trip instead of three; the replies by command.

    Every reply is read, so the connection stays in step whatever was refused (after a 421 the server
    hangs up and sends nothing more); a 354 after a refusal is answered with an empty message's ".".
    """
    connection.send(f"MAIL FROM:{smtplib.quoteaddr(sender)}\r\nRCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n")
    replies: dict[str, tuple[int, bytes]] = {}
    for command in ("MAIL", "RCPT", "DATA"):
        replies[command] = connection.getreply()
        if replies[command][0] == 421:
            return replies
    if replies["DATA"][0] == 354 and (replies["MAIL"][0] != 250 or replies["RCPT"][0] not in (250, 251)):
        connection.send(b".\r\n")
        connection.getreply()
    return replies


class SmtpSender:
    """One lazily opened, reused connection to the target; `with` closes it with QUIT.

    Not thread-safe: each worker process (or thread) has its own sender.
    """

    def __init__(self, target: SmtpTarget, *, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        self._connection: smtplib.SMTP | None = None

    def send(self, sender: str, recipient: str, message: bytes) -> Outcome:
        """Send `message` (CRLF lines) to one recipient; never raises for anything the server or network does."""
        stage = "connect"
        try:
            connection = self._connect()
            stage = "MAIL"
            if (sender + recipient).isascii() and connection.has_extn("pipelining"):
                replies = _pipelined(connection, sender, recipient)
                # In order: the first refusal raises, so a reply missing after a 421 is never looked for.
                for stage, accepted in (("MAIL", (250,)), ("RCPT", (250, 251)), ("DATA", (354,))):
                    self._expect(replies[stage], *accepted)
            else:
                # A non-ASCII address needs the server's SMTPUTF8; without it smtplib refuses, a temporary outcome.
                options = [] if (sender + recipient).isascii() else ["SMTPUTF8"]
                self._expect(connection.mail(sender, options), 250)
                stage = "RCPT"
                self._expect(connection.rcpt(recipient), 250, 251)
                stage = "DATA"
                self._expect(connection.docmd("DATA"), 354)
            connection.send(dot_stuffed(message) + b".\r\n")
            code, text = connection.getreply()
            self._expect((code, text), 250)
            return Outcome("sent", code, _detail(stage, code, text))
        except smtplib.SMTPResponseException as error:  # raised by _expect, or by smtplib (greeting, login, DATA)
            code, detail = error.smtp_code, _detail(stage, error.smtp_code, error.smtp_error)
            if 500 <= code < 600 and stage in ("RCPT", "DATA"):
                self._reset()
                return Outcome("permanent", code, detail)
            if code == 421:  # the server is closing the connection already
                self._drop()
            else:
                self.close()
            return Outcome("temporary", code, detail)
        except OSError as error:  # refused, timed out, cut, TLS failed; smtplib's own errors are OSErrors too
            self._drop()
            return Outcome("temporary", None, _detail(stage, None, f"{type(error).__name__}: {error}"))

    @staticmethod
    def _expect(reply: tuple[int, bytes], *accepted: int) -> None:
        code, text = reply
        if code not in accepted:
            raise smtplib.SMTPResponseException(code, text)

    def _connect(self) -> smtplib.SMTP:
        if self._connection is not None:
            return self._connection
        target = self.target
        if target.security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=self.timeout,
                                                        context=ssl.create_default_context())
        else:
            connection = smtplib.SMTP(target.host, target.port, timeout=self.timeout)
        try:
            # Each command group and each message goes out in one write: Nagle's algorithm would only hold the
            # tail of a message back until the server's delayed ACK (bench/README.md, "profile-driven fixes").
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.ehlo_or_helo_if_needed()
            if target.security == "starttls":
                connection.starttls(context=ssl.create_default_context())
                connection.ehlo()
            if target.user:
                connection.login(target.user, target.password)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _reset(self) -> None:
        """End a refused transaction so the connection carries the next message; drop it if that fails."""
        try:
            if self._connection is not None and self._connection.rset()[0] == 250:
                return
        except OSError:
            pass
        self._drop()

    def _drop(self) -> None:
        """Forget the connection without a word to the server: it is broken or closing, or told us so."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """QUIT politely; the connection is gone afterwards whatever the server answers."""
        if self._connection is None:
            return
        try:
            self._connection.quit()
        except OSError:
            pass
        self._drop()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
