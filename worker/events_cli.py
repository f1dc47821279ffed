"""`herald events attendees SLUG [--csv]`: who answered an invitation, for the organiser's list at the door."""

from __future__ import annotations

import csv
import sys
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from subscribers.db import open_store
from worker import events
from worker.settings import load_settings

CSV_COLUMNS = ("name", "organisation", "country", "email", "answer", "answered_at")

events_app = typer.Typer(help="Events: the answers to their invitations.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True, soft_wrap=True)


def _folder_name(given: str, events_dir: Path) -> str:
    """The event's folder name, from that name or from the folder's path; "" for a path outside `events_dir`.

    Only the listing of `events_dir` is compared with it: the text given is never looked up on disk.
    """
    path = Path(given)
    if len(path.parts) == 1 and given not in (".", ".."):
        return given
    folder = path.resolve()
    return folder.name if folder.parent == events_dir.resolve() else ""


@events_app.command()
def attendees(
    slug: Annotated[str, typer.Argument(help="The event's folder name under content/events/ (or its path).")],
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on standard output (UTF-8), nothing else.")] = False,
) -> None:
    """Every answer (yes, the waiting list in order, maybe, no) and the counts, with who has not answered."""
    settings = load_settings()
    events_dir = settings.content_dir / "events"
    found = sorted(path.parent.name for path in events_dir.glob("*/meta.yaml"))
    name = _folder_name(slug, events_dir)
    item_key = f"events/{name}"  # as campaigns name their item: the folder relative to the content directory
    with open_store(settings)() as session:
        known = events.event_of(session, item_key) is not None
        people, counts = events.attendees(session, item_key)
    if not known and name not in found:
        errors.print(f"No event '{slug}' in {events_dir} nor in the store; give the name of an event's folder there: "
                     f"{', '.join(found) or 'none'}", markup=False, highlight=False)
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
