"""The production SMTP sink with refusals a test scripts while it runs: busy servers, unknown mailboxes, any reply.

It subclasses `OutboxSink`, so what the tests send through it is stored exactly as `herald up` would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, Envelope, Session

from worker.delivery.sink import OutboxSink, RunningSink

Stage = Literal["MAIL", "RCPT", "DATA"]
_TEMPORARY = {421: "421 4.3.2 Service shutting down, try again later", 451: "451 4.3.0 Local error, try again later"}


class FaultyOutbox(OutboxSink):
    """Counts connections (EHLOs) and accepted messages; refuses what `fail_next`, `unknown` and `refusals` say."""

    def __init__(self, outbox: Path, pipelining: bool = True) -> None:
        super().__init__(outbox)
        self.pipelining = pipelining  # advertise RFC 2920, as Postfix does (aiosmtpd handles it, but does not say so)
        self.connections = 0
        self.accepted = 0
        self.envelopes: list[Envelope] = []  # of the accepted messages: sender, recipients and MAIL options as sent
        self.unknown: set[str] = set()  # recipients answered 550 5.1.1 at RCPT, every time
        self.refusals: dict[str, tuple[Stage, str]] = {}  # recipient -> the stage and reply that refuses it, every time
        self._fault: tuple[Stage, int] = ("MAIL", 421)
        self._failures_left = 0

    def fail_next(self, count: int, code: Literal[421, 451] = 421, at: Stage = "MAIL") -> None:
        """Answer `code` to the next `count` commands `at` (one per single-recipient message); 421 also hangs up."""
        self._fault = (at, code)
        self._failures_left = count

    def _failure(self, stage: Stage, server: SMTP) -> str | None:
        at, code = self._fault
        if self._failures_left == 0 or stage != at:
            return None
        self._failures_left -= 1
        if code == 421:  # runs after the reply is written: transport.close() flushes it, then hangs up
            asyncio.get_running_loop().call_soon(server.transport.close)
        return _TEMPORARY[code]

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        self.connections += 1
        session.host_name = hostname  # aiosmtpd leaves this to a handler that has an EHLO hook
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if failure := self._failure("MAIL", server):
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if failure := self._failure("RCPT", server):
            return failure
        if address in self.unknown:
            return f"550 5.1.1 <{address}>: mailbox unavailable"  # echoing the address, as Postfix does
        if refusal := self._refusal("RCPT", [address]):
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if failure := self._failure("DATA", server) or self._refusal("DATA", envelope.rcpt_tos):
            return failure
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            self.accepted += 1
            self.envelopes.append(envelope)
        return reply

    def _refusal(self, stage: Stage, recipients: list[str]) -> str | None:
        """The scripted reply to any of `recipients` at `stage`."""
        for address in recipients:
            at, reply = self.refusals.get(address, ("", ""))
            if at == stage:
                return reply
        return None


class ScriptedSink(RunningSink):
    """`start_sink` with a `FaultyOutbox`: script it through `.handler`; `smtputf8=False`, a server without RFC 6531;
    `options`, aiosmtpd's (STARTTLS and login: tls_context, authenticator, auth_required)."""

    handler: FaultyOutbox

    def __init__(self, outbox: Path, host: str = "127.0.0.1", port: int = 0, *, pipelining: bool = True,
                 smtputf8: bool = True, **options: Any) -> None:
        super().__init__(FaultyOutbox(outbox, pipelining), host, port, smtputf8=smtputf8, **options)
