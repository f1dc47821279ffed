"""`herald subscribers …` and `herald segments …`: the operator's view of the people side."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn, TextIO

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from foundation import terminal
from foundation.db import open_store
from foundation.problems import ContentInvalid, display_path
from foundation.settings import Settings, load_settings
from subscribers import store
from subscribers.csvfile import FIELDS, IGNORE, FileProblem, column_report
from subscribers.gdpr import erase_person, person_record
from subscribers.importer import OUTCOMES, Options, Report, import_csv
from subscribers.models import Subscriber
from subscribers.profile import Invalid
from subscribers.segments import Segment, load_segments, members
from subscribers.topics import Topic, load_topics

SAMPLE_FILE = "subscribers.sample.csv"

subscribers_app = typer.Typer(help="Import, export, inspect and erase subscribers.", no_args_is_help=True)
segments_app = typer.Typer(help="The segments declared in content/segments.yaml, counted.", no_args_is_help=True)
console = terminal.output()
errors = terminal.problems()


@dataclass(frozen=True)
class Context:
    settings: Settings
    sessions: sessionmaker[Session]
    topics: dict[str, Topic]


def _context() -> Context:
    settings = load_settings()
    try:
        topics = load_topics(settings.content_dir)
    except ContentInvalid as error:
        _fail_content(error)
    return Context(settings, open_store(settings), topics)


def _fail_content(error: ContentInvalid) -> NoReturn:
    for problem in error.problems:
        errors.print(str(problem), markup=False, highlight=False)
    errors.print("[red]Fix the lines above, then run `herald check`.[/red]")
    raise typer.Exit(1)


def _segments(context: Context) -> dict[str, Segment]:
    try:
        return load_segments(context.settings.content_dir, context.topics)
    except ContentInvalid as error:
        _fail_content(error)


def _segment(context: Context, name: str) -> Segment:
    segments = _segments(context)
    if name not in segments:
        errors.print(f"[red]No segment '{name}' in content/segments.yaml; there are: {', '.join(segments)}[/red]")
        raise typer.Exit(2)
    return segments[name]


def _overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        header, sep, field = pair.rpartition("=")
        if not sep or not header.strip() or field.strip() not in (*FIELDS, IGNORE):
            raise typer.BadParameter(f"'{pair}': write 'Column header=field', where field is one of "
                                     f"{', '.join(FIELDS)} or '{IGNORE}' to leave the column out")
        overrides[header.strip()] = field.strip()
    return overrides


# ---- import ---------------------------------------------------------------------------------

def _print_report(report: Report, report_path: Path) -> None:
    table = report.table
    console.print(f"Read as {table.encoding}, delimiter {table.delimiter!r}, {table.rows} row(s).")
    for line in column_report(table):
        console.print(line, markup=False, highlight=False)
    counts = Table(title="Import")
    for outcome in OUTCOMES:
        counts.add_column(outcome, justify="right")
    counts.add_row(*(str(report.counts[outcome]) for outcome in OUTCOMES))
    console.print(counts)
    if report.pending:
        console.print(f"{report.pending:,} {'person' if report.pending == 1 else 'people'} left pending for lack of "
                      "consent: mailed nothing but a request to confirm until they do.", markup=False, highlight=False)
    for title, rows in (("Skipped rows", report.skipped), ("Notes", report.notes)):
        if not rows:
            continue
        listing = Table(title=title)
        listing.add_column("line", justify="right")
        listing.add_column("email", overflow="fold")
        listing.add_column("reason", overflow="fold")
        for row in rows[:20]:
            listing.add_row(str(row.line), row.email, row.reason)
        console.print(listing)
        if len(rows) > 20:
            console.print(f"… and {len(rows) - 20} more.")
    console.print(f"Every row's outcome: {display_path(report_path)}")


@subscribers_app.command("import")
def import_command(
    file: Annotated[Path | None, typer.Argument(help="A CSV file from a form tool or a spreadsheet.")] = None,
    topic: Annotated[list[str] | None, typer.Option(help="Add this topic to every row (repeatable).")] = None,
    consent_source: Annotated[str | None, typer.Option(
        help="Where everyone in the file gave consent, e.g. 'Registration form, URBACT info day 2026'. "
             "Without it (or a source column) people are imported as pending.")] = None,
    consent_version: Annotated[str, typer.Option(help="The version of the consent wording they agreed to.")] = "import",
    map_: Annotated[list[str] | None, typer.Option("--map", metavar="'HEADER=FIELD'", help="'Column header=field' to override detection "
                                                   f"(fields: {', '.join(FIELDS)}; '{IGNORE}' skips a column).")] = None,
    sample: Annotated[bool, typer.Option(help=f"Import the fictional people in content/{SAMPLE_FILE}.")] = False,
) -> None:
    """Import subscribers from CSV; every row is reported, and a bad row never stops the others."""
    if sample == (file is not None):
        raise typer.BadParameter("give a FILE to import, or --sample (not both)")
    if file is not None and not file.is_file():
        raise typer.BadParameter(f"{file} is not a file")
    context = _context()
    if sample:
        import_sample(context)
        return
    assert file is not None
    options = Options(now=datetime.now(UTC), topics=tuple(topic or ()), consent_source=consent_source,
                      consent_version=consent_version)
    _import(context, file, options, _overrides(map_ or []))


def import_sample(context: Context) -> None:
    """The fictional sample people, consent recorded, with the report kept in the data folder."""
    _import(context, context.settings.content_dir / SAMPLE_FILE,
            Options(now=datetime.now(UTC), consent_source="Herald sample data (fictional people)"), {},
            report_path=context.settings.data_dir / f"{Path(SAMPLE_FILE).stem}.report.csv")


def _import(context: Context, file: Path, options: Options, overrides: dict[str, str],
            report_path: Path | None = None) -> None:
    try:
        with _progress("Importing") as advance:
            report, written = import_csv(context.sessions, file, context.topics, context.settings.secret_key,
                                         options, overrides, advance, report_path)
    except FileProblem as error:
        errors.print(f"[red]{display_path(file)}: {error}. Nothing was imported.[/red]")
        raise typer.Exit(1) from None
    except Invalid as error:  # an unknown --topic
        raise typer.BadParameter(str(error)) from None
    _print_report(report, written)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A bar on standard error; yields `advance(rows, total)`."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=errors, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda rows, total: progress.update(task, advance=rows, total=total)


# ---- export, show, erase --------------------------------------------------------------------

EXPORT_COLUMNS = ("email", "name", "organisation", "organisation_type", "city", "country", "timezone",
                  "language", "topics", "status", "created_at", "confirmed_at", "attributes")


def _export_rows(sessions: sessionmaker[Session], segment: Segment | None) -> Iterator[list[str]]:
    where = members(segment) if segment else None
    with sessions() as session:
        for page in store.pages(session, where):
            for s in page:
                yield [s.email, s.name, s.organisation, s.organisation_type or "", s.city, s.country or "",
                       s.timezone or "", s.language, "; ".join(sorted(link.topic for link in s.topics)), s.status,
                       s.created_at.isoformat(), s.confirmed_at.isoformat() if s.confirmed_at else "",
                       json.dumps(s.attributes, ensure_ascii=False) if s.attributes else ""]


@subscribers_app.command()
def export(
    segment: Annotated[str | None, typer.Option(help="Only the mailable members of this segment.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Write subscribers as CSV (UTF-8), streamed page by page, importable again."""
    context = _context()
    chosen = _segment(context, segment) if segment else None
    with (out.open("w", encoding="utf-8", newline="") if out else _stdout()) as stream:
        writer = csv.writer(stream)
        writer.writerow(EXPORT_COLUMNS)
        written = 0
        for row in _export_rows(context.sessions, chosen):
            writer.writerow(row)
            written += 1
    if out:
        console.print(f"{written} subscriber(s) written to {display_path(out)}")


@contextmanager
def _stdout() -> Iterator[TextIO]:
    yield sys.stdout


@subscribers_app.command()
def show(
    email: Annotated[str, typer.Argument(help="The person's address (any case, spaces ignored).")],
    as_json: Annotated[bool, typer.Option("--json", help="Everything held about them, as JSON (a GDPR access request).")] = False,
) -> None:
    """Everything Herald holds about one person."""
    context = _context()
    with context.sessions() as session:
        record = person_record(session, context.settings.secret_key, email)
    if record is None:
        errors.print(f"[red]No subscriber {email.strip()}.[/red]")
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=record["email"], show_header=False)
    for key, value in record.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
        table.add_row(key, shown)
    console.print(table)


@subscribers_app.command()
def erase(
    email: Annotated[str, typer.Argument(help="The person's address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything held about a person; only a keyed hash stays, so they are never mailed again."""
    context = _context()
    if not yes:
        typer.confirm(f"Erase {email.strip()} for good?", abort=True)
    deleted = erase_person(context.sessions, context.settings.secret_key, email, datetime.now(UTC))
    console.print("Erased; the address is suppressed." if deleted else
                  "No such subscriber; the address is suppressed so it is never imported or mailed.")


# ---- segments -------------------------------------------------------------------------------

def demo_people() -> None:
    """`herald demo`'s people: the sample subscribers imported (again: nothing changes), segments counted."""
    context = _context()
    import_sample(context)
    _print_segments(context)


@segments_app.command("list")
def list_segments() -> None:
    """Every segment with the number of people it reaches now."""
    _print_segments(_context())


def _print_segments(context: Context) -> None:
    table = Table(title="Segments (confirmed, not suppressed)")
    table.add_column("segment", no_wrap=True)
    table.add_column("reaches", justify="right")
    table.add_column("description", overflow="fold")
    with context.sessions() as session:
        for name, segment in _segments(context).items():
            table.add_row(name, f"{store.count(session, members(segment)):,}", segment.description)
    console.print(table)


@segments_app.command("show")
def show_segment(
    name: Annotated[str, typer.Argument(help="A segment name from content/segments.yaml.")],
    sample: Annotated[int, typer.Option(help="How many example rows to show.")] = 10,
) -> None:
    """A segment's count, broken down by language and organisation type, with sample rows."""
    context = _context()
    segment = _segment(context, name)
    where = members(segment)
    with context.sessions() as session:
        breakdown = session.execute(
            select(Subscriber.language, Subscriber.organisation_type, func.count())
            .where(where).group_by(Subscriber.language, Subscriber.organisation_type)).all()
        examples = session.scalars(select(Subscriber).where(where).order_by(Subscriber.id).limit(sample)).all()
    total = sum(row[2] for row in breakdown)
    console.print(f"[bold]{name}[/bold]: {total:,} subscriber(s). {segment.description}")
    languages = sorted({row[0] for row in breakdown})
    kinds = sorted({row[1] or "—" for row in breakdown})
    cells = {(row[0], row[1] or "—"): row[2] for row in breakdown}
    table = Table(title="By language and organisation type")
    table.add_column("organisation type")
    for language in languages:
        table.add_column(language, justify="right")
    table.add_column("total", justify="right")
    for kind in kinds:
        row = [cells.get((language, kind), 0) for language in languages]
        table.add_row(kind, *map(str, row), str(sum(row)))
    table.add_row("total", *(str(sum(cells.get((language, kind), 0) for kind in kinds)) for language in languages),
                  str(total), style="bold")
    console.print(table)
    rows = Table(title=f"First {len(examples)}")
    for column in ("email", "name", "organisation", "language", "country"):
        rows.add_column(column, overflow="fold")
    for s in examples:
        rows.add_row(s.email, s.name, s.organisation, s.language, s.country or "")
    console.print(rows)
