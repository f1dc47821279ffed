"""`herald events attendees SLUG [--csv]`: who answered an invitation, for the organiser's list at the door."""

from __future__ import annotations

import csv
import sys
from datetime import UTC
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from foundation import terminal
from foundation.db import open_store
from foundation.settings import load_settings
from worker.authoring.item_path import NoSuchItem, find_item
from worker.events import lifecycle

CSV_COLUMNS = ("name", "organisation", "country", "email", "answer", "answered_at")

events_app = typer.Typer(help="Events: the answers to their invitations.", no_args_is_help=True)
console = terminal.output()
errors = terminal.problems()


@events_app.command()
def attendees(
    slug: Annotated[str, typer.Argument(help="The event: content/events/SLUG, events/SLUG or SLUG.")],
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on standard output (UTF-8), nothing else.")] = False,
) -> None:
    """Every answer (yes, the waiting list in order, maybe, no) and the counts, with who has not answered."""
    settings = load_settings()
    events_dir = settings.content_dir / "events"
    try:  # the item's key as campaigns name it: its folder relative to the content folder
        name, missing = find_item(slug, settings.content_dir, under="events").relative_to(events_dir).as_posix(), None
    except NoSuchItem as error:  # an event whose folder is gone still has its answers in the store
        name, missing = slug, error
    item_key = f"events/{name}"
    with open_store(settings)() as session:
        known = lifecycle.event_of(session, item_key) is not None
        people, counts = lifecycle.attendees(session, item_key)
    if missing and not known:
        errors.print(str(missing), markup=False, highlight=False)
        raise typer.Exit(1)
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_COLUMNS)
        writer.writerows((person.name, person.organisation, person.country, person.email, person.answer,
                          person.answered_at.astimezone(UTC).isoformat()) for person in people)
        return
    table = Table("name", "organisation", "country", "answer", "answered (UTC)", title=f"Answers: {name}")
    for person in people:
        table.add_row(*map(Text, (person.name, person.organisation, person.country, person.answer,
                                  f"{person.answered_at.astimezone(UTC):%Y-%m-%d %H:%M}")))
    console.print(table)
    console.print(", ".join(f"{answer} {counts[answer]}" for answer in ("yes", "waitlist", "maybe", "no"))
                  + f", unanswered {counts['unanswered']} of {counts['invited']} invited")
