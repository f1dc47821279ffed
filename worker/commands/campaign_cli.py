"""`herald send`, `sync`, `campaigns`, `status`, `pause`, `resume`, `cancel`: campaigns from the terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from foundation import clock, terminal
from foundation.db import open_store
from foundation.problems import ContentInvalid, display_path
from foundation.settings import Settings, load_settings
from foundation.smtp_url import SmtpTarget, parse_smtp_url
from subscribers import store
from subscribers.models import Subscriber
from subscribers.tokens import Signer
from worker.authoring.content import Item, load_item
from worker.authoring.item_path import NoSuchItem, find_item
from worker.campaigns import control, ledger
from worker.campaigns.models import Campaign
from worker.commands.previews import write_rendered
from worker.delivery.dkim import signer_for, unusable_keys
from worker.delivery.mime import Skeleton, message_id
from worker.delivery.smtp import Outcome, SmtpSender
from worker.events.event_calendar import preview_calendar
from worker.rendering.render import EDITIONS, Recipient, Renderer

console = terminal.output()
errors = terminal.problems()
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
    path: Annotated[Path, typer.Argument(help="The content item: content/events/SLUG, events/SLUG or SLUG.")],
    segment: Annotated[str | None, typer.Option(help="A segment of content/segments.yaml (default: the item's audience).")] = None,
    edition: Annotated[str | None, typer.Option(help="ro, en or both for everyone (default: each subscriber's language).")] = None,
    message: Annotated[str | None, typer.Option(help="newsletter; invitation, update, reminder, cancellation, followup or waitlist (default: the item's first, or what its invitees have not been told).")] = None,
    at: Annotated[str | None, typer.Option(metavar="'YYYY-MM-DD HH:MM'", help="When: '2027-01-14 10:00' in the item's zone (default: now).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, show the first recipients, write previews; send nothing.")] = False,
    test_to: Annotated[list[str] | None, typer.Option("--test-to", metavar="ADDRESS", help="Send one [TEST] copy to this address (repeatable) instead.")] = None,
    now: Annotated[bool, typer.Option("--now", help="Send the item's scheduled campaign for this audience now, instead of at its time.")] = False,
    again: Annotated[str | None, typer.Option(metavar="REASON", help="Why to send again to an audience that a campaign already covers (kept with the campaign).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Send without asking for confirmation (for scripts).")] = False,
) -> None:
    """Send a content item to a segment now or at a time, or try it out first (--dry-run, --test-to).

    One campaign per item, message and audience: a second one is refused unless --again says why; --at or --now
    move the item's scheduled campaign instead. On a terminal it shows what will go out and asks first."""
    settings = load_settings()
    try:
        path = find_item(path, settings.content_dir, drafts=True)
    except NoSuchItem as error:
        _fail(escape(str(error)))
    with open_store(settings)() as session:
        try:
            item = load_item(path)
            request = control.Request(path, segment, message, edition, _parse_at(at, item) if at else None, now, again)
            item, segment_name, message_name = control.resolve(request, settings, session)
            if not dry_run:
                control.check_mail_settings(settings)
            elif unusable := unusable_keys(settings):  # its previews are signed as the real messages would be
                raise ValueError(unusable)
        except ContentInvalid as error:
            _fail_content(error)
        except ValueError as error:
            _fail(str(error))
        if test_to:
            _test_send(session, settings, item, message_name, edition, test_to)
        elif dry_run:
            _dry_run(session, settings, request, item, segment_name, message_name)
        else:
            _record(session, settings, request, yes)


def _record(session: Session, settings: Settings, request: control.Request, yes: bool) -> None:
    """Plan the campaign, show it and ask (unless --yes), then record and start it; every refusal is one line."""
    try:
        plan = control.plan(session, request, settings)
    except ValueError as error:
        _fail(str(error))
    if not yes:
        if not sys.stdin.isatty():
            _fail("Nothing was recorded: Herald asks before sending, and standard input is not a terminal; add --yes "
                  "to send without the question.")
        _summary(session, settings, plan.item, plan.segment, plan.message, plan.edition, title="About to send")
        console.print(f"When: {_when(plan.item, plan.send_at, plan.takes_over)}", highlight=False)
        if not typer.confirm("Send it?", default=False):
            _fail("Nothing was recorded.", 1)
    try:
        campaign = control.create(session, request, settings, origin="cli")
    except ContentInvalid as error:
        _fail_content(error)
    except ValueError as error:
        _fail(str(error))
    except (control.BrokerDown, control.NotQueued) as error:
        _fail(escape(str(error)), 1)
    when = "now" if campaign.state == "sending" else f"at {control.local(campaign.send_at, plan.item)}"
    moved = "" if plan.takes_over is None else (
        " It was scheduled; from now on beat's sync leaves it alone (meta.yaml's send_at no longer moves it).")
    repeated = "" if plan.again is None else f" Sent again on purpose: {plan.again}."
    console.print(f"Campaign {campaign.id}: {plan.message} of {display_path(plan.item.path)} to '{plan.segment}', "
                  f"{when}.{moved}{repeated} Follow it with `herald status {campaign.id}`.", markup=False,
                  highlight=False)


def _when(item: Item, send_at: datetime | None, takes_over: Campaign | None) -> str:
    """When a send goes out, with the date, in the item's zone; and the scheduled campaign it moves."""
    when = f"now ({control.local(clock.now(), item)})" if send_at is None else control.local(send_at, item)
    if takes_over is None:
        return when
    return f"{when}, moving campaign {takes_over.id} (scheduled for {control.local(takes_over.send_at, item)})"


def _summary(session: Session, settings: Settings, item: Item, segment: str, message: str, edition: str | None,
             title: str) -> list[Subscriber]:
    """What goes out: per subscriber language, the edition sent, how many people, and its subject. Returns the
    first recipients, which a dry run lists."""
    by_language, first = control.audience(session, settings, item, segment, message)
    renderer = Renderer(settings)
    subjects = {chosen: renderer.compile(item, chosen, message).subject
                for chosen in ([edition] if edition else list(EDITIONS))}
    table = Table(title=f"{title}: {message} of {item.slug} to '{segment}'")
    table.add_column("subscriber language")
    table.add_column("edition sent")
    table.add_column("recipients", justify="right")
    table.add_column("subject")
    for language in EDITIONS:
        table.add_row(language, edition or language, f"{by_language.get(language, 0):,}",
                      escape(subjects[edition or language]))
    table.add_row("all", "", f"{sum(by_language.values()):,}", "", style="bold")
    console.print(table)
    return first


def _test_send(session: Session, settings: Settings, item: Item, message: str, edition: str | None,
               addresses: list[str]) -> None:
    """One [TEST] copy per address, in its subscriber's edition if it is one, saying at its top that its links
    change nothing. A server no copy can go through stops it in one line naming HERALD_SMTP_URL; any copy not
    sent makes the exit code 1."""
    renderer, signer, dkim = Renderer(settings), Signer.from_settings(settings), signer_for(settings)
    domain = settings.org_email.rpartition("@")[2]
    target = parse_smtp_url(settings.smtp_url)
    table = Table("address", "edition", "result")
    unsent = 0
    with SmtpSender(target) as smtp:
        for address in addresses:
            person = store.find(session, address)
            chosen = edition or (person.language if person else "both")
            compiled = renderer.compile(item, chosen, message, test_copy=True)
            skeleton = Skeleton.prepare(compiled, settings, feedback_id=f"test:{message}:{chosen}",
                                        subject_prefix="[TEST] ",
                                        calendar=preview_calendar(item, compiled.language, message, settings))
            # Links that name nobody, even for a subscriber's address: a click in a test copy changes nothing.
            recipient = Recipient(email=address, name=person.name if person else "",
                                  timezone=person.timezone if person else None,
                                  links=signer.test_links(settings.base_url, compiled.link_purposes))
            outcome = smtp.send(settings.org_email, address, dkim.sign(
                skeleton.build(recipient, message_id=message_id(domain), sent_at=clock.now())))
            if outcome.at_connect:
                if table.row_count:
                    console.print(table)
                _fail(escape(_unusable(target, outcome, first=not table.row_count)), 1)
            unsent += outcome.status != "sent"
            table.add_row(address, chosen, outcome.status if outcome.status == "sent" else f"{outcome.status}: {outcome.detail}")
    console.print(table)
    if unsent:
        _fail(f"{unsent} of {len(addresses)} test copies were not sent; the table says why.", 1)


def _unusable(target: SmtpTarget, outcome: Outcome, first: bool) -> str:
    """The one line for a mail server that no copy can go through: what went wrong, and the setting to check."""
    stopped = "No test copy was sent" if first else "The other test copies were not sent"
    server = f"the mail server at {target.host}:{target.port}"
    if outcome.status == "configuration":
        return (f"{stopped}: {server} does not accept security={target.security} or the login in HERALD_SMTP_URL "
                f"({outcome.detail}); check HERALD_SMTP_URL: security=starttls for port 587, tls for port 465, "
                "none for a local relay only.")
    return f"{stopped}: Herald could not reach {server} ({outcome.detail}); check HERALD_SMTP_URL."


def _dry_run(session: Session, settings: Settings, request: control.Request, item: Item, segment: str,
             message: str) -> None:
    """The same summary a real send shows, the first recipients and the previews; then, if the real send would
    be refused (a campaign covers the audience, a past time, an event that has ended), why, with exit code 1."""

    try:
        plan, refusal = control.plan(session, request, settings), None
    except ValueError as error:
        plan, refusal = None, str(error)
    edition = request.edition
    first = _summary(session, settings, item, segment, message, edition, title="Dry run (nothing sent)")
    console.print(f"When: {_when(item, request.send_at, plan and plan.takes_over)}", highlight=False)
    if item.meta.send_at is not None:
        by_itself = ("beat sends it then (status: ready), unless a campaign already covers its audience"
                     if item.meta.status == "ready" else
                     f"only `herald send` sends it (status: {item.meta.status}; status: ready lets beat send it then)")
        console.print(f"meta.yaml's send_at: {control.local(item.meta.aware(item.meta.send_at), item)}: {by_itself}",
                      highlight=False)
    people = Table(title="First recipients")
    for column in ("id", "email", "name", "language", "organisation"):
        people.add_column(column)
    for person in first:
        people.add_row(str(person.id), person.email, person.name, person.language, person.organisation)
    console.print(people)
    written = write_rendered(item, Renderer(settings), [edition] if edition else list(EDITIONS), [message],
                             settings.outbox_dir / "previews", settings)
    console.print(f"Previews: {display_path(written[0][2].parent)}/ ({message}.<edition>.html, .txt, .eml)")
    if refusal is not None:
        _fail(escape(f"A real send would be refused: {refusal}"), 1)


def sync() -> None:
    """Schedule a campaign for every ready content item with a send_at (what beat does every minute)."""
    settings = load_settings()
    with open_store(settings)() as session:
        synced = control.sync(session, settings)
        for campaign in synced.changed:
            when = (f"scheduled for {campaign.send_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if campaign.send_at
                    else "sending now")
            console.print(f"Campaign {campaign.id}: {campaign.message} of {campaign.item} {when} to '{campaign.segment}'")
    if not synced.changed:
        console.print("Every ready item's send_at already has its campaign.")
    if synced.drafts:
        console.print(f"Not scheduled, as their status is draft: {', '.join(synced.drafts)}. Write `status: ready` in "
                      "an item's meta.yaml to let beat send it at its send_at.", markup=False, highlight=False)
    for error in synced.broken:
        for problem in error.problems:
            errors.print(str(problem), markup=False, highlight=False)
    if synced.broken:
        _fail("The items above are not scheduled; fix them (`herald check` shows every problem).", 1)


def list_campaigns(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30) -> None:
    """Campaigns with their state and counts."""
    settings = load_settings()
    with open_store(settings)() as session:
        rows = [control.describe(session, campaign) for campaign in control.listing(session, limit)]
    table = Table(title="Campaigns")
    for column in ("id", "item", "message", "segment", "state", "send at (UTC)", "targeted", "sent", "retrying",
                   "failed", "bounced", "suppressed", "sent again because"):
        table.add_column(column, justify="right" if column in ("id", "targeted", "sent") else "left")
    for row in rows:
        counts = row["counts"]
        table.add_row(str(row["id"]), row["item"], row["message"], row["segment"], row["state"],
                      f"{row['send_at']:%Y-%m-%d %H:%M}" if row["send_at"] else "",
                      *(f"{counts[key]:,}" for key in ("targeted", "sent")), f"{counts['retry'] + counts['sending']:,}",
                      *(f"{counts[key]:,}" for key in ("failed", "bounced", "suppressed")),
                      escape(row["repeat_reason"] or ""))
    console.print(table)


def status(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id (`herald campaigns list`).")],
    follow: Annotated[bool | None, typer.Option(
        "--follow/--no-follow", help="--follow: also wait for a scheduled campaign, until it is over; --no-follow: "
                                     "print its state once. Default: follow a campaign while it is sending.")] = None,
) -> None:
    """A campaign's state and counts; while it sends, a live progress bar (plain lines when piped) until it is over."""
    settings = load_settings()
    sessions = open_store(settings)
    row = _read(sessions, campaign_id)
    if follow or (follow is None and row["state"] == "sending"):
        [row] = watch(sessions, [campaign_id], content_dir=settings.content_dir)
    _print_state(row, _item_of(row["item"], settings.content_dir))


def watch(sessions: sessionmaker[Session], campaign_ids: list[int], follow: bool = True,
          content_dir: Path | None = None) -> list[dict]:
    """Each campaign until none is sending or scheduled (without `follow`, its state now): a live progress bar on a
    terminal, a plain line per change when piped. Times are in each item's zone, found in `content_dir`.
    Returns their last state."""
    rows = [_read(sessions, campaign_id) for campaign_id in campaign_ids]  # a wrong id fails here, before any bar
    if not follow or _over(rows):
        return rows
    items = {row["id"]: _item_of(row["item"], content_dir) for row in rows}
    if not console.is_terminal:
        return _lines(sessions, campaign_ids, items)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console) as progress:
        tasks = {campaign_id: progress.add_task(f"campaign {campaign_id}", total=None, detail="")
                 for campaign_id in campaign_ids}
        while True:
            for row in rows:
                progress.update(tasks[row["id"]], total=row["counts"]["targeted"] or None, completed=_done(row),
                                detail=_detail(row, items[row["id"]], " · "))
            if _over(rows):
                return rows
            time.sleep(0.5)
            rows = [_read(sessions, campaign_id) for campaign_id in campaign_ids]


def _lines(sessions: sessionmaker[Session], campaign_ids: list[int], items: dict[int, Item | None]) -> list[dict]:
    """Piped: a line whenever a campaign's progress changes, for a log or a script, and no bar."""
    shown: dict[int, str] = {}
    while True:
        rows = [_read(sessions, campaign_id) for campaign_id in campaign_ids]
        for row in rows:
            line = (f"campaign {row['id']}: {_done(row):,} of {row['counts']['targeted']:,} done, "
                    f"{_detail(row, items[row['id']], ', ')}")
            if shown.get(row["id"]) != line:
                console.print(line, markup=False, highlight=False)
                shown[row["id"]] = line
        if _over(rows):
            return rows
        time.sleep(0.5)


def _read(sessions: sessionmaker[Session], campaign_id: int) -> dict:
    with sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            _fail(f"No campaign {campaign_id}; `herald campaigns list` shows them.")
        return control.describe(session, campaign)


def _over(rows: list[dict]) -> bool:
    return all(row["state"] not in ("sending", "scheduled") for row in rows)


def _done(row: dict) -> int:
    counts = row["counts"]
    return counts["sent"] + counts["failed"] + counts["bounced"] + counts["suppressed"]


def _detail(row: dict, item: Item | None, between: str) -> str:
    counts = row["counts"]
    state = f"scheduled for {_at(row['send_at'], item)}" if row["state"] == "scheduled" else row["state"]
    return between.join((row["message"], state, f"retrying {counts['retry'] + counts['sending']}",
                         f"bounced {counts['bounced']}"))


def _item_of(key: str, content_dir: Path | None) -> Item | None:
    """The item a campaign names, for its time zone; None for one with no item (a confirmation) or one gone."""
    if not key or content_dir is None:
        return None
    try:
        return load_item(content_dir / key)
    except ContentInvalid:
        return None


def _at(moment: datetime, item: Item | None) -> str:
    """A date and time in the item's zone, and in UTC, which `campaigns list` and the logs show."""
    utc = moment.astimezone(UTC)
    if item is None:
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    same_day = moment.astimezone(item.meta.zone).date() == utc.date()
    return f"{control.local(moment, item)} ({utc:{'%H:%M' if same_day else '%Y-%m-%d %H:%M'}} UTC)"


def _print_state(row: dict, item: Item | None) -> None:
    counts = row["counts"]
    console.print(f"Campaign {row['id']} is {row['state']}: {counts['sent']:,} of {counts['targeted']:,} sent, "
                  f"{counts['failed']:,} failed, {counts['bounced']:,} bounced, {counts['suppressed']:,} suppressed.")
    if row["state"] == "scheduled":
        console.print(f"It goes out on {_at(row['send_at'], item)}; `herald status {row['id']} --follow` waits for "
                      "it.", markup=False, highlight=False)
    if row["reason"]:
        console.print(f"Why: {row['reason']}")
    if row["repeat_reason"]:
        console.print(f"Sent again on purpose: {row['repeat_reason']}", markup=False, highlight=False)


_ENDED = {"sent": "was sent", "cancelled": "was cancelled", "failed": "failed", "missed": "was missed"}


def _ended(campaign: Campaign, verb: str, content_dir: Path) -> str | None:
    """`campaign 3 was sent on …; there is nothing to pause`, for a campaign that is over; None for one that is not."""
    if campaign.state not in _ENDED:
        return None
    when = _at(campaign.finished_at or campaign.updated_at, _item_of(campaign.item, content_dir))
    why = f" ({campaign.reason})" if campaign.reason and campaign.state in ("failed", "missed") else ""
    return f"campaign {campaign.id} {_ENDED[campaign.state]} on {when}{why}; there is nothing to {verb}"


def _action(action: Callable[[Session, int], Campaign], verb: str) -> Callable[[int], None]:
    def command(campaign_id: Annotated[int, typer.Argument(help="The campaign's id.")]) -> None:
        settings = load_settings()
        with open_store(settings)() as session:
            try:
                campaign = action(session, campaign_id)
            except LookupError as error:
                _fail(str(error))
            except ledger.StateError as error:
                _fail(escape(_ended(session.get(Campaign, campaign_id), verb, settings.content_dir) or str(error)))
            except control.NotQueued as error:  # resumed, but the broker did not take it: beat's sweep will
                _fail(escape(str(error)), 1)
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
