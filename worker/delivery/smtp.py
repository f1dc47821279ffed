"""The sending edge: one SMTP connection per worker, reused, and every reply sorted into what to do next.

The campaign engine needs four answers: sent; try again later (temporary); never again to this mailbox
(permanent: a bounce, which may suppress the person); or never this message (rejected: the delivery
fails and the person is left alone). Only a 5xx answer to this recipient's RCPT or to its DATA is
final, and PERMANENT says which of the two it is: a server that refuses a line too long, a message too
big or a sender's policy says nothing about the recipient's mailbox. A refusal of the connection, the
login, STARTTLS or our MAIL FROM is Herald's or the server's problem, not the recipient's: a server
that cannot be reached or answers 4xx is temporary; TLS that cannot be set up (no STARTTLS offered,
TLS spoken to a plain port, a certificate that does not verify) or a login refused is "configuration",
since waiting will not fix HERALD_SMTP_URL. The engine retries both like temporary failures; temporary,
configuration and rejected all count toward the campaign's pause-after-failures, and no subscriber is
suppressed because of a configuration mistake.

Addresses are stored as email_validator writes them (Unicode); here their domain becomes an A-label
(IDNA 2008). A local part that is not ASCII needs the server's SMTPUTF8 (RFC 6531): without it the
delivery is rejected, and the subscribe form asks `offers_smtputf8` before it accepts such an address.

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
import time
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import idna

from foundation.smtp_url import SmtpTarget, parse_smtp_url

_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")


def ascii_domain(address: str) -> str:
    """`address` with its domain as an A-label (IDNA 2008), as RCPT TO and the To header carry it; the local
    part stays as it is. Raises ValueError (idna.IDNAError) for a domain that has no A-label."""
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"


Verdict = Literal["mailbox", "message"]

# What a 5xx answer to a recipient's RCPT or DATA is about: "mailbox", the address is bad (a bounce: at
# HERALD_BOUNCE_THRESHOLD of them the person is suppressed), or "message", the message, its size or its
# sender (the delivery fails; the person is left alone). The first kind of key that a reply has decides:
#   its enhanced status code (RFC 3463), the most specific entry first ("5.1.7" before "5.1");
#   else words in its text;
#   else its basic code at its stage.
# Anything none of them names is about the message: suppressing a person is the step that cannot be undone.
PERMANENT: dict[str, Verdict] = {
    "5.1": "mailbox",  # addressing: no such user (5.1.1) or domain (5.1.2), bad syntax (5.1.3), moved (5.1.6)
    "5.1.7": "message",  # the sender's address is bad
    "5.1.8": "message",  # the sender's domain is bad
    "5.2.1": "mailbox",  # the mailbox is disabled
    "5.2": "message",  # mailbox full (5.2.2), message longer than it takes (5.2.3), list expansion (5.2.4)
    "5.3": "message",  # the receiving system: full (5.3.1), not accepting (5.3.2), message too big (5.3.4)
    "5.4": "message",  # network and routing
    "5.5": "message",  # protocol: bad command (5.5.1), syntax, line too long (5.5.2)
    "5.6": "message",  # content and media
    "5.7": "message",  # security and policy: spam, DMARC, relaying denied
    "line too long": "message",
    "too big": "message",
    "too large": "message",
    "size": "message",
    "550 at RCPT": "mailbox",  # mailbox unavailable
    "551 at RCPT": "mailbox",  # user not local
    "553 at RCPT": "mailbox",  # mailbox name not allowed
}
_ENHANCED = re.compile(r"5\.\d{1,3}\.\d{1,3}(?!\d)")
_WORDS = [key for key in PERMANENT if not key[0].isdigit()]


def verdict(stage: str, code: int, text: str) -> Verdict:
    """What the 5xx `code` with `text` at RCPT or DATA is about, by PERMANENT."""
    if enhanced := _ENHANCED.match(text.lstrip()):
        status = enhanced[0]
        return PERMANENT.get(status) or PERMANENT.get(status.rpartition(".")[0], "message")
    words = text.lower()
    for key in _WORDS:
        if key in words:
            return PERMANENT[key]
    return PERMANENT.get(f"{code} at {stage}", "message")


@dataclass(frozen=True)
class Outcome:
    # permanent: a bounce; rejected: see PERMANENT; configuration: TLS or the login does not fit the server
    status: Literal["sent", "temporary", "permanent", "rejected", "configuration"]
    code: int | None  # the SMTP reply code, None when there was no reply (refused, timed out, cut)
    detail: str  # for logs: the stage and the server's words, any email address replaced by the word `address`

    @property
    def at_connect(self) -> bool:
        """Whether it failed before any command about this message: no message can go through as things are."""
        return self.detail.startswith(CONNECT)


CONNECT = "connect"  # the stage of connecting, TLS and login
# What says HERALD_SMTP_URL does not fit the server while connecting: TLS failed (a certificate included), STARTTLS
# or AUTH not offered, the login refused. ssl.SSLError is an OSError, SMTPAuthenticationError a reply (535).
_CONFIGURATION = (ssl.SSLError, smtplib.SMTPNotSupportedError, smtplib.SMTPAuthenticationError)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _detail(stage: str, code: int | None, text: bytes | str) -> str:
    words = " ".join(_text(text).split())
    return _ADDRESS.sub("address", f"{stage} {code} {words}" if code is not None else f"{stage}: {words}")


def dot_stuffed(message: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 4.5.2): a line that starts with "." gets another, and it
    ends with CRLF. smtplib does this with a regular expression, 0.7 ms for a 70 KB message; this is
    the same rule with bytes.replace."""
    stuffed = message.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


def _pipelined(connection: smtplib.SMTP, sender: str, recipient: str, options: list[str]
               ) -> dict[str, tuple[int, bytes]]:
    """MAIL, RCPT and DATA in one write (RFC 2920), one round trip instead of three; the replies by command.

    Every reply is read, so the connection stays in step whatever was refused (after a 421 the server
    hangs up and sends nothing more); a 354 after a refusal is answered with an empty message's ".".
    """
    mail = " ".join([f"MAIL FROM:{smtplib.quoteaddr(sender)}", *options])
    connection.send(f"{mail}\r\nRCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n".encode())
    replies: dict[str, tuple[int, bytes]] = {}
    for command in ("MAIL", "RCPT", "DATA"):
        replies[command] = connection.getreply()
        if replies[command][0] == 421:
            return replies
    if replies["DATA"][0] == 354 and (replies["MAIL"][0] != 250 or replies["RCPT"][0] not in (250, 251)):
        connection.send(b".\r\n")
        connection.getreply()
    return replies


def _open(target: SmtpTarget, timeout: float) -> smtplib.SMTP:
    """A connection that has said EHLO, inside TLS when the target asks for it; not logged in."""
    if target.security == "tls":
        connection: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout,
                                                    context=ssl.create_default_context())
    else:
        connection = smtplib.SMTP(target.host, target.port, timeout=timeout)
    try:
        # Each command group and each message goes out in one write: Nagle's algorithm would only hold the
        # tail of a message back until the server's delayed ACK (bench/README.md, "profile-driven fixes").
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.ehlo_or_helo_if_needed()
        if target.security == "starttls":
            connection.starttls(context=ssl.create_default_context())
            connection.ehlo()
    except BaseException:
        connection.close()
        raise
    return connection


SMTPUTF8_ANSWER_SECONDS = 600.0  # how long a process trusts what the server said about SMTPUTF8
_smtputf8_answers: dict[str, tuple[float, bool]] = {}


def offers_smtputf8(smtp_url: str, timeout: float = 5.0) -> bool:
    """Whether the server at `smtp_url` offers SMTPUTF8 in its EHLO answer, asked at most once per
    SMTPUTF8_ANSWER_SECONDS in this process (the subscribe form asks before it accepts a non-ASCII local
    part). A server that cannot be reached, or a URL that names none, does not offer it."""
    now = time.monotonic()
    asked = _smtputf8_answers.get(smtp_url)
    if asked is not None and now - asked[0] < SMTPUTF8_ANSWER_SECONDS:
        return asked[1]
    try:
        connection = _open(parse_smtp_url(smtp_url), timeout)
        try:
            answer = connection.has_extn("smtputf8")
            connection.quit()
        finally:
            connection.close()
    except (OSError, ValueError):  # ValueError: HERALD_SMTP_URL is wrong
        answer = False
    _smtputf8_answers[smtp_url] = (now, answer)
    return answer


class SmtpSender:
    """One lazily opened, reused connection to the target; `with` closes it with QUIT.

    Not thread-safe: each worker process (or thread) has its own sender.
    """

    def __init__(self, target: SmtpTarget, *, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        self._connection: smtplib.SMTP | None = None

    def send(self, sender: str, recipient: str, message: bytes | Future[bytes]) -> Outcome:
        """Send `message` (CRLF lines) to one recipient; never raises for anything the server or network does.

        A message still being made (DKIM-signed on another thread, worker/delivery/dkim.py) is waited for only
        once the server has accepted the envelope: the signature is made during that round trip."""
        try:
            sender, recipient = ascii_domain(sender), ascii_domain(recipient)
        except idna.IDNAError:
            return Outcome("rejected", None, "RCPT: the address's domain has no ASCII form (IDNA 2008)")
        stage = CONNECT
        try:
            connection = self._connect()
            stage = "MAIL"
            # A non-ASCII local part (and the UTF-8 To header that names it) needs SMTPUTF8, with 8BITMIME (RFC 6531).
            options = [] if (sender + recipient).isascii() else ["SMTPUTF8", "BODY=8BITMIME"]
            if options and not connection.has_extn("smtputf8"):
                return Outcome("rejected", None, "MAIL: the server does not offer SMTPUTF8 (RFC 6531), which an "
                                                 "address with a non-ASCII local part needs")
            if connection.has_extn("pipelining"):
                replies = _pipelined(connection, sender, recipient, options)
                # In order: the first refusal raises, so a reply missing after a 421 is never looked for.
                for stage, accepted in (("MAIL", (250,)), ("RCPT", (250, 251)), ("DATA", (354,))):
                    self._expect(replies[stage], *accepted)
            else:
                self._expect(connection.mail(sender, options), 250)
                stage = "RCPT"
                self._expect(connection.rcpt(recipient), 250, 251)
                stage = "DATA"
                self._expect(connection.docmd("DATA"), 354)
            connection.send(dot_stuffed(message if isinstance(message, bytes) else message.result()) + b".\r\n")
            code, text = connection.getreply()
            self._expect((code, text), 250)
            return Outcome("sent", code, _detail(stage, code, text))
        except _CONFIGURATION as error:
            self._drop()
            code = getattr(error, "smtp_code", None)
            detail = _detail(stage, code, error.smtp_error if code is not None else f"{type(error).__name__}: {error}")
            # A TLS session that breaks after it was set up is the network's doing, not the settings'.
            return Outcome("configuration" if stage == CONNECT else "temporary", code, detail)
        except smtplib.SMTPResponseException as error:  # raised by _expect, or by smtplib (greeting, login, DATA)
            code, detail = error.smtp_code, _detail(stage, error.smtp_code, error.smtp_error)
            if 500 <= code < 600 and stage in ("RCPT", "DATA"):
                self._reset()
                about = verdict(stage, code, _text(error.smtp_error))
                return Outcome("permanent" if about == "mailbox" else "rejected", code, detail)
            if code == 421:  # the server is closing the connection already
                self._drop()
            else:
                self.close()
            return Outcome("temporary", code, detail)
        except OSError as error:  # refused, timed out, cut, TLS failed; smtplib's own errors are OSErrors too
            self._drop()
            return Outcome("temporary", None, _detail(stage, None, f"{type(error).__name__}: {error}"))

    def check(self) -> None:
        """Connect, set up TLS and log in as the first send would (a readiness check); raises what that raises."""
        self._connect()

    @staticmethod
    def _expect(reply: tuple[int, bytes], *accepted: int) -> None:
        code, text = reply
        if code not in accepted:
            raise smtplib.SMTPResponseException(code, text)

    def _connect(self) -> smtplib.SMTP:
        if self._connection is not None:
            return self._connection
        connection = _open(self.target, self.timeout)
        try:
            if self.target.user:
                connection.login(self.target.user, self.target.password)
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
