"""The physical limit of this machine: how many messages a second SMTP carries on loopback, with no Herald in it.

    apt-get install postfix    # for /usr/sbin/smtp-source and smtp-sink; Postfix itself needs no configuration
    .venv/bin/python bench/smtp_ceiling.py [--size 30000] [--sessions 2] [--messages 20000] [--runs 5]
        [--sinks smtp-sink,herald] [--json PATH]

Postfix's smtp-source sends `--messages` messages of `--size` bytes over `--sessions` connections, each
reused for every message (`-d`, as each Herald worker process reuses its connection), to two sinks on
127.0.0.1: Postfix's smtp-sink, which reads and discards, and Herald's own sink (worker/delivery/sink.py, in a
process of its own), which writes every message as an .eml file (no fsync) into a temporary outbox,
emptied after each run and deleted at the end. The time is smtp-source's wall time (it exits when done).
Then the raw Python client: `--sessions` processes, each one smtplib connection sending the same prebuilt
message `--messages / --sessions` times. Every run checks that the sink took every message.

Prints the machine, then msg/s as the median (min–max) of `--runs` runs, runs interleaved (each run sends
with every client to every sink); `--json` also writes every sample. The end-to-end benchmark calls
`ceiling()` to measure the ceiling in its own run.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from measure import SINKS, Figures, LoopbackSink, in_step, loopback_sink, machine
from rich.console import Console
from rich.table import Table

SMTP_SOURCE = Path("/usr/sbin/smtp-source")
SENDER, RECIPIENT = "bench@example.org", "person@example.org"
CLIENTS = {"smtp-source": "Postfix smtp-source", "smtplib": "raw Python client (smtplib)"}
_LINE = b"x" * 75 + b"=\r\n"  # a quoted-printable body line: 76 characters with its soft break


def sample_message(size: int) -> bytes:
    """Exactly `size` bytes as they go on the wire (CRLF lines): Herald's kind of headers, a quoted-printable body."""
    head = ("From: Herald bench <bench@example.org>\r\nTo: <person@example.org>\r\nSubject: SMTP ceiling\r\n"
            "Date: Fri, 15 Jan 2027 09:00:00 +0000\r\nMessage-ID: <ceiling@example.org>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode("ascii")
    lines, rest = divmod(size - len(head), len(_LINE))
    if rest < 2:  # the last line needs room for its CRLF: it takes one full line's length more
        lines, rest = lines - 1, rest + len(_LINE)
    if lines < 0:
        raise ValueError(f"--size {size} is too small; the headers alone take {len(head) + 2} bytes")
    return head + _LINE * lines + b"x" * (rest - 2) + b"\r\n"


def _smtp_source(sink: LoopbackSink, message_file: Path, sessions: int, messages: int) -> float:
    """Seconds smtp-source takes to send `messages` over `sessions` reused connections."""
    command = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-F", message_file,
               "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{sink.port}"]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    if done.returncode:
        raise RuntimeError(f"smtp-source exited with {done.returncode}: {done.stderr.strip()}")
    return seconds


def _smtplib_sender(port: int, message: bytes, count: int) -> Callable[[], None]:
    """In a spawned process (measure.in_step): one connection, `count` messages, then QUIT."""
    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port) as connection:
            for _ in range(count):
                connection.sendmail(SENDER, [RECIPIENT], message)
    return send


def _smtplib(sink: LoopbackSink, message: bytes, sessions: int, messages: int) -> float:
    shares = [(sink.port, message, messages // sessions + (number < messages % sessions))
              for number in range(sessions)]
    return in_step(_smtplib_sender, shares)


def label(client: str, sink: str) -> str:
    return f"{CLIENTS[client]} → {SINKS[sink]}"


def ceiling(size: int = 30_000, sessions: int = 2, messages: int = 20_000, runs: int = 5,
            kinds: tuple[str, ...] = tuple(SINKS)) -> dict[str, Any]:
    """msg/s samples by `label(client, sink)`, `runs` of each, with the parameters they were measured with."""
    message = sample_message(size)
    rates: dict[str, list[float]] = {label(client, sink): [] for client in CLIENTS for sink in kinds}
    with tempfile.TemporaryDirectory(prefix="herald-ceiling-") as temporary, ExitStack() as stack:
        workdir = Path(temporary)
        message_file = workdir / "message.txt"  # smtp-source -F ends each line with CRLF itself
        message_file.write_bytes(message.replace(b"\r\n", b"\n"))
        sinks = {kind: stack.enter_context(loopback_sink(kind, workdir / kind)) for kind in kinds}
        for _ in range(runs):
            for kind, sink in sinks.items():
                for client in CLIENTS:
                    before = sink.received()
                    seconds = (_smtp_source(sink, message_file, sessions, messages) if client == "smtp-source"
                               else _smtplib(sink, message, sessions, messages))
                    sink.wait_for(before + messages)
                    sink.discard()
                    rates[label(client, kind)].append(messages / seconds)
    return {"size": size, "sessions": sessions, "messages": messages, "runs": runs, "rates": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=30_000, help="bytes per message on the wire")
    parser.add_argument("--sessions", type=int, default=2, help="SMTP connections at once")
    parser.add_argument("--messages", type=int, default=20_000, help="per run and per client and sink")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sinks", default=",".join(SINKS), help="which of smtp-sink,herald")
    parser.add_argument("--json", type=Path, help="write the parameters and every sample here")
    args = parser.parse_args()
    if not SMTP_SOURCE.exists():
        sys.exit(f"{SMTP_SOURCE} is missing: apt-get install postfix (no configuration needed)")
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(machine())
    result = ceiling(args.size, args.sessions, args.messages, args.runs, tuple(args.sinks.split(",")))
    figures = Figures()
    for name, samples in result["rates"].items():
        for rate in samples:
            figures.add(name, rate, "msg/s")
    reference = label("smtp-source", "smtp-sink" if "smtp-sink" in args.sinks.split(",") else "herald")
    top = statistics.median(result["rates"][reference])
    table = Table(title=f"{args.messages:,} messages of {args.size:,} bytes over {args.sessions} connection(s), "
                        f"median (min–max) of {args.runs} runs")
    for column in ("client → sink", "messages/s", "MB/s (median)", f"× {reference}"):
        table.add_column(column, justify="left" if column.startswith("client") else "right")
    for name, samples in result["rates"].items():
        median = statistics.median(samples)
        table.add_row(name, figures.show(name), f"{median * args.size / 1e6:,.0f}", f"{median / top:.2f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "command": sys.argv, **result}, indent=2),
                             encoding="utf-8")


if __name__ == "__main__":
    main()
