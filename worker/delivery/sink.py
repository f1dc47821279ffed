"""The local SMTP sink `herald up` runs when no SMTP server is configured: every message lands in a folder.

The campaign engine then sends through real SMTP, with its retries and refusals, whether or not a real
server exists; the operator opens `index.html` in the folder to see what went out. The index is only
ever appended to (one line per message, valid HTML because `<p>`, `<body>` and `<html>` need no end
tags), so 100,000 messages cost 100,000 small writes, never a rewrite of a growing page.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import html
import re
import socket
from collections.abc import Awaitable
from datetime import datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

DATA_SIZE_LIMIT = 32 * 1024 * 1024  # bytes; newsletters with images inline stay well under it
_NAME = re.compile(r"^(\d+)-[0-9a-f]{8}\.eml$")
_HEADER_PARSER = BytesHeaderParser(policy=email.policy.default)
_INDEX_HEAD = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Herald outbox</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; }
p { display: grid; grid-template-columns: 11em 7em minmax(12em, 22em) 1fr; gap: 1em; margin: 0; padding: .2em 0;
    border-bottom: 1px solid #ddd; }
span { overflow-wrap: anywhere; min-width: 0; }
p.head { font-weight: bold; }
</style>
<h1>Herald outbox</h1>
<p class="head"><span>received</span><span>file</span><span>to</span><span>subject</span></p>
"""


def _subject(content: bytes) -> str:
    """The Subject header decoded from RFC 2047, read from the header block only."""
    head = content.partition(b"\r\n\r\n")[0]
    return str(_HEADER_PARSER.parsebytes(head).get("Subject", ""))


class OutboxSink:
    """aiosmtpd handler: one `.eml` file per recipient, named in arrival order, and a line in `index.html`.

    Hooks run on the controller's single event-loop thread, so the sequence needs no lock.
    """

    def __init__(self, outbox: Path) -> None:
        outbox.mkdir(parents=True, exist_ok=True)
        self.outbox = outbox
        numbers = [int(match[1]) for path in outbox.glob("*.eml") if (match := _NAME.match(path.name))]
        self._next = max(numbers, default=0) + 1  # a restarted sink never overwrites earlier messages
        index = outbox / "index.html"
        self._index = index.open("a", encoding="utf-8", errors="replace", buffering=1)  # flushed per line
        if self._index.tell() == 0:
            self._index.write(_INDEX_HEAD)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        subject = html.escape(_subject(content))
        received = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
        try:
            for recipient in envelope.rcpt_tos:
                name = f"{self._next:08d}-{hashlib.sha1(recipient.encode()).hexdigest()[:8]}.eml"
                (self.outbox / name).write_bytes(content)
                self._next += 1
                self._index.write(f'<p><span>{received}</span><a href="{name}">{name[:8]}</a>'
                                  f"<span>{html.escape(recipient)}</span><span>{subject}</span></p>\n")
        except OSError as error:  # a full disk is the sink's problem, not a reason to bounce the recipient
            return f"451 4.3.0 could not store the message: {error.strerror}"
        return "250 2.0.0 OK: stored"

    def close(self) -> None:
        self._index.close()


class _BoundController(Controller):
    """A Controller on a socket bound before it starts, so port 0 gets a free port with no race.

    It offers SMTPUTF8 (RFC 6531), as a real server for Romanian addresses should; a test turns that off. `options`
    are aiosmtpd's own (tls_context, authenticator, auth_required…): a sink that asks for STARTTLS and a login, as
    a relay does, for `herald doctor`'s tests.
    """

    def __init__(self, handler: OutboxSink, listener: socket.socket, smtputf8: bool, **options: Any) -> None:
        host, port = listener.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, server_hostname="herald-sink",
                         data_size_limit=DATA_SIZE_LIMIT, enable_SMTPUTF8=smtputf8, **options)
        self._listener = listener

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:  # aiosmtpd's documented override point
        return self.loop.create_server(self._factory_invoker, sock=self._listener)


def tcp_listener(host: str, port: int) -> socket.socket:
    """A listening socket that says it is TCP: asyncio sets TCP_NODELAY only on such sockets' connections, and
    without it every new connection's EHLO reply waited ~40 ms for a delayed ACK (bench/README.md). The web's
    socket is one too: `herald up` binds it before the web process starts (worker/commands/local_parts.py)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen()
    except OSError:
        listener.close()
        raise
    return listener


class RunningSink:
    """An `OutboxSink` served on its own thread; `stop()` (or leaving the `with`) joins it."""

    def __init__(self, handler: OutboxSink, host: str = "127.0.0.1", port: int = 0, *, smtputf8: bool = True,
                 **options: Any) -> None:
        self.handler = handler
        self.host = host
        listener = tcp_listener(host, port)
        self.port: int = listener.getsockname()[1]
        self._controller = _BoundController(handler, listener, smtputf8, **options)
        try:
            self._controller.start()
        except BaseException:
            listener.close()
            handler.close()
            raise

    @property
    def url(self) -> str:
        """An HERALD_SMTP_URL that sends here."""
        return f"smtp://{self.host}:{self.port}?security=none"

    def stop(self) -> None:
        self._controller.stop()
        self.handler.close()

    def __enter__(self) -> RunningSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def start_sink(outbox: Path, host: str = "127.0.0.1", port: int = 0) -> RunningSink:
    """Serve SMTP on host:port (0: a free port) into `outbox`; use as a context manager or call `.stop()`."""
    return RunningSink(OutboxSink(outbox), host, port)
