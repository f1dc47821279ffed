"""An SMTP relay in a process of its own that keeps only whom each message was for: a line per recipient in a file,
with the campaign its Feedback-ID names and when it arrived.

For the scale-out tests: each worker machine's own relay, on a core of its own rather than sharing the test
process's, and storing nothing of 20,000 messages but who got them (an .eml per message would write gigabytes).
It says PIPELINING, as Postfix does, so the engine sends as it would to a real relay.

    with counting_sink(path) as url: ...   # HERALD_SMTP_URL=url
    received(path, campaign_id)             # the addresses that campaign's messages went to, in arrival order
    arrivals(path, campaign_id)             # and when each arrived (time.time())
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

_FEEDBACK = re.compile(rb"^Feedback-ID: campaign-(\d+):", re.MULTILINE)

from worker.commands.children import die_with_parent


class RecipientLog:
    """aiosmtpd handler: accepts every message, writes each recipient on a line of its own at once."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8", buffering=1)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        campaign = _FEEDBACK.search(envelope.original_content or b"")
        for recipient in envelope.rcpt_tos:
            self._file.write(f"{campaign[1].decode() if campaign else '-'} {time.time():.3f} {recipient.lower()}\n")
        return "250 2.0.0 OK: counted"

    def close(self) -> None:
        self._file.close()


def arrivals(path: Path, campaign_id: int) -> list[tuple[float, str]]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [(float(at), address) for campaign, at, address in (line.split(" ", 2) for line in lines)
            if campaign == str(campaign_id)]


def received(path: Path, campaign_id: int) -> list[str]:
    return [address for _, address in arrivals(path, campaign_id)]


@contextmanager
def counting_sink(path: Path) -> Iterator[str]:
    """The sink in a child process; yields its HERALD_SMTP_URL; stopped after."""
    process = subprocess.Popen([sys.executable, __file__, str(path)], stdout=subprocess.PIPE, text=True,
                               preexec_fn=die_with_parent)
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), f"the counting sink did not start (exit code {process.poll()})"
        yield f"smtp://127.0.0.1:{port}?security=none"
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    import signal

    from worker.delivery.sink import RunningSink

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # for sigwait, in every thread started after
    sink = RunningSink(RecipientLog(Path(sys.argv[1])))
    print(sink.port, flush=True)
    try:
        signal.sigwait({signal.SIGTERM})
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
