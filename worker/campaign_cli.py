"""`herald send`, `sync`, `campaigns`, `status`, `pause`, `resume`, `cancel`: campaigns from the terminal."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from subscribers import store
from subscribers.db import open_store
from subscribers.tokens import Signer, new_link_key
from worker import campaigns, clock, control
from worker.content import Item, load_item
from worker.event_calendar import preview_calendar
from worker.mime import Skeleton, message_id
from worker.models import Campaign
from worker.problems import ContentInvalid, display_path
from worker.render import EDITIONS, Recipient, Renderer
from worker.settings import Settings, load_settings
from worker.smtp import SmtpSender, parse_smtp_url

console = Console()
errors = Console(stderr=True, soft_wrap=True)
campaigns_app = typer.Typer(help="Campaigns: what was sent, is sending or is scheduled.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    errors.print(f"[red]{message}[/red]")
    raise typer.Exit(code)


def _fail_content(error: ContentInvalid) -> NoReturn:
    for problem in error.problems:
        errors.print(str(problem), markup=False, highlight=False)
    _fail("Nothing was sent; fix the lines above, then run `herald check`.", 1)


def _parse_at(text: str, item: Item) -> datetime:
    """`2027-01-14 10:00` in the item's time zone, or ISO 8601 with an offset."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--at '{text}' is not a time; write it like 2027-01-14 10:00 (the item's zone, "
              f"{item.meta.timezone}) or 2027-01-14T08:00+00:00")
    return value if value.tzinfo else item.meta.aware(value)


def send(
    path: Annotated[Path, typer.Argument(help="The content item folder to send.")],
    segment: Annotated[str | None, typer.Option(help="A segment of content/segments.yaml (default: the item's audience).")] = None,
    edition: Annotated[str | None, typer.Option(help="ro, en or both for everyone (default: each subscriber's language).")] = None,
    message: Annotated[str | None, typer.Option(help="newsletter; invitation, update, reminder, cancellation, followup or waitlist (default: the item's first, or what its invitees have not been told).")] = None,
    at: Annotated[str | None, typer.Option(help="When: '2027-01-14 10:00' in the item's zone (default: now).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, show the first recipients, write previews; send nothing.")] = False,
    test_to: Annotated[list[str] | None, typer.Option("--test-to", help="Send one [TEST] copy to this address (repeatable) instead.")] = None,
) -> None:
    """Send a content item to a segment now or at a time, or try it out first (--dry-run, --test-to)."""
    settings = load_settings()
    with open_store(settings)() as session:
        try:
            item = load_item(path)
            request = control.Request(path, segment, message, edition, _parse_at(at, item) if at else None)
            item, segment_name, message_name = control.resolve(request, settings, session)
            if not dry_run:
                control.check_mail_settings(settings)
        except ContentInvalid as error:
            _fail_content(error)
        except ValueError as error:
            _fail(str(error))
        if test_to:
            _test_send(session, settings, item, message_name, edition, test_to)
        elif dry_run:
            _dry_run(session, settings, item, segment_name, message_name, edition)
        else:
            campaign = control.create(session, request, settings, origin="cli")
            when = "now" if campaign.state == "sending" else f"at {campaign.send_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            console.print(f"Campaign {campaign.id}: {message_name} of {display_path(item.path)} to '{segment_name}', "
                          f"{when}. Follow it with `herald status {campaign.id}`.")


def _test_send(session: Session, settings: Settings, item: Item, message: str, edition: str | None,
               addresses: list[str]) -> None:
    """One [TEST] copy per address, in its subscriber's edition if it is one, with links that work."""
    renderer, signer = Renderer(settings), Signer.from_settings(settings)
    domain = settings.org_email.rpartition("@")[2]
    table = Table("address", "edition", "result")
    with SmtpSender(parse_smtp_url(settings.smtp_url)) as smtp:
        for address in addresses:
            person = store.find(session, address)
            chosen = edition or (person.language if person else "both")
            compiled = renderer.compile(item, chosen, message)
            skeleton = Skeleton.prepare(compiled, settings, feedback_id=f"test:{message}:{chosen}",
                                        subject_prefix="[TEST] ",
                                        calendar=preview_calendar(item, compiled.language, message, settings))
            links = signer.links(settings.base_url, person.id if person else 0,
                                 person.link_key if person else new_link_key(), None, compiled.link_purposes)
            recipient = Recipient(email=address, name=person.name if person else "",
                                  timezone=person.timezone if person else None, links=links)
            outcome = smtp.send(settings.org_email, address,
                                skeleton.build(recipient, message_id=message_id(domain), sent_at=clock.now()))
            table.add_row(address, chosen, outcome.status if outcome.status == "sent" else f"{outcome.status}: {outcome.detail}")
    console.print(table)


def _dry_run(session: Session, settings: Settings, item: Item, segment: str, message: str,
             edition: str | None) -> None:
    from worker.cli import write_rendered  # the same previews `herald render` writes

    by_language, first = control.audience(session, settings, item, segment, message)
    table = Table(title=f"Dry run: {message} of {item.slug} to '{segment}' (nothing sent)")
    table.add_column("subscriber language")
    table.add_column("edition sent")
    table.add_column("recipients", justify="right")
    for language in EDITIONS:
        table.add_row(language, edition or language, f"{by_language.get(language, 0):,}")
    table.add_row("all", "", f"{sum(by_language.values()):,}", style="bold")
    console.print(table)
    people = Table(title="First recipients")
    for column in ("id", "email", "name", "language", "organisation"):
        people.add_column(column)
    for person in first:
        people.add_row(str(person.id), person.email, person.name, person.language, person.organisation)
    console.print(people)
    written = write_rendered(item, Renderer(settings), [edition] if edition else list(EDITIONS), [message],
                             settings.outbox_dir / "previews", settings)
    console.print(f"Previews: {display_path(written[0][2].parent)}/ ({message}.<edition>.html, .txt, .eml)")


def sync() -> None:
    """Schedule a campaign for every content item with a send_at (what beat does every minute)."""
    settings = load_settings()
    with open_store(settings)() as session:
        changed, broken = control.sync(session, settings)
        for campaign in changed:
            when = (f"scheduled for {campaign.send_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if campaign.send_at
                    else "sending now")
            console.print(f"Campaign {campaign.id}: {campaign.message} of {campaign.item} {when} to '{campaign.segment}'")
    if not changed:
        console.print("Every send_at already has its campaign.")
    for error in broken:
        for problem in error.problems:
            errors.print(str(problem), markup=False, highlight=False)
    if broken:
        _fail("The items above are not scheduled until `herald check` passes.", 1)


def list_campaigns(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30) -> None:
    """Campaigns with their state and counts."""
    settings = load_settings()
    with open_store(settings)() as session:
        rows = [control.describe(session, campaign) for campaign in control.listing(session, limit)]
    table = Table(title="Campaigns")
    for column in ("id", "item", "message", "segment", "state", "send at (UTC)", "targeted", "sent", "retrying",
                   "failed", "bounced", "suppressed"):
        table.add_column(column, justify="right" if column in ("id", "targeted", "sent") else "left")
    for row in rows:
        counts = row["counts"]
        table.add_row(str(row["id"]), row["item"], row["message"], row["segment"], row["state"],
                      f"{row['send_at']:%Y-%m-%d %H:%M}" if row["send_at"] else "",
                      *(f"{counts[key]:,}" for key in ("targeted", "sent")), f"{counts['retry'] + counts['sending']:,}",
                      *(f"{counts[key]:,}" for key in ("failed", "bounced", "suppressed")))
    console.print(table)


def status(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id (`herald campaigns list`).")],
    follow: Annotated[bool, typer.Option(help="Keep a live progress bar until it is done.")] = True,
) -> None:
    """A campaign's state and counts, with a live progress bar until it is sent, paused or over."""
    for row in watch(open_store(load_settings()), [campaign_id], follow):
        _print_state(row)


def watch(sessions: sessionmaker[Session], campaign_ids: list[int], follow: bool = True) -> list[dict]:
    """A live progress bar per campaign until none is sending or scheduled; returns their last state."""

    def read(campaign_id: int) -> dict:
        with sessions() as session:
            campaign = session.get(Campaign, campaign_id)
            if campaign is None:
                _fail(f"No campaign {campaign_id}; `herald campaigns list` shows them.")
            return control.describe(session, campaign)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console) as progress:
        tasks = {campaign_id: progress.add_task(f"campaign {campaign_id}", total=None, detail="")
                 for campaign_id in campaign_ids}
        while True:
            rows = [read(campaign_id) for campaign_id in campaign_ids]
            for row in rows:
                counts = row["counts"]
                done = counts["sent"] + counts["failed"] + counts["bounced"] + counts["suppressed"]
                waiting = f" until {row['send_at']:%H:%M:%S} UTC" if row["state"] == "scheduled" else ""
                progress.update(tasks[row["id"]], total=counts["targeted"] or None, completed=done,
                                detail=f"{row['message']} · {row['state']}{waiting} · retrying "
                                       f"{counts['retry'] + counts['sending']} · bounced {counts['bounced']}")
            if not follow or all(row["state"] not in ("sending", "scheduled") for row in rows):
                return rows
            time.sleep(0.5)


def _print_state(row: dict) -> None:
    counts = row["counts"]
    console.print(f"Campaign {row['id']} is {row['state']}: {counts['sent']:,} of {counts['targeted']:,} sent, "
                  f"{counts['failed']:,} failed, {counts['bounced']:,} bounced, {counts['suppressed']:,} suppressed.")
    if row["reason"]:
        console.print(f"Why: {row['reason']}")


def _action(action: Callable[[Session, int], Campaign], verb: str) -> Callable[[int], None]:
    def command(campaign_id: Annotated[int, typer.Argument(help="The campaign's id.")]) -> None:
        settings = load_settings()
        with open_store(settings)() as session:
            try:
                campaign = action(session, campaign_id)
            except (LookupError, campaigns.StateError) as error:
                _fail(str(error))
            console.print(f"Campaign {campaign.id} is {campaign.state}.")
    command.__doc__ = f"{verb.capitalize()} a campaign."
    return command


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command()(sync)
    campaigns_app.command("list")(list_campaigns)
    app.add_typer(campaigns_app, name="campaigns")
    app.command()(status)
    app.command("pause")(_action(control.pause, "pause"))
    app.command("resume")(_action(control.resume, "resume"))
    app.command("cancel")(_action(control.cancel, "cancel"))
