"""The `herald` command: the operator's way in (English, like the rest of the tooling)."""

from __future__ import annotations

import os
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperArgument, TyperOption

from foundation import clock, terminal
from foundation.db import open_store
from foundation.problems import ContentInvalid, display_path
from foundation.settings import load_settings, unsafe_for_mail
from subscribers.cli import demo_people, segments_app, subscribers_app
from worker.authoring.content import Item, find_items, load_item
from worker.authoring.item_path import NoSuchItem, find_item
from worker.campaigns import control
from worker.commands import campaign_cli, dkim_cli, doctor, events_cli, health_cli, services
from worker.commands.check import check, fix_cedillas, unannounced_changes
from worker.commands.previews import write_rendered
from worker.delivery.dkim import unusable_keys
from worker.rendering.render import EDITIONS, MESSAGES, Renderer, messages_of


def _help_without_python_types() -> None:
    """Typer 0.29 prints each parameter's Python type in `--help`: `<bool>` after a flag, which takes no value,
    `<list[str]>` after a repeatable option. What to write is the help text's job: an option shows its metavar
    (click's convention, the name in capitals unless it sets one), a flag and an argument nothing more."""
    TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else self.metavar or self.name.upper()
    TyperArgument.display_type_rich = lambda self, ctx: None


_help_without_python_types()
app = typer.Typer(help="Herald: bilingual newsletters and event invitations, written as files.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(segments_app, name="segments")
app.add_typer(events_cli.events_app, name="events")
app.add_typer(dkim_cli.dkim_app, name="dkim")
campaign_cli.register(app)
services.register(app)
health_cli.register(app)
doctor.register(app)
console = terminal.output()
errors = terminal.problems()


def _print_version(asked: bool) -> None:
    if asked:
        console.print(f"herald {version('herald')}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                           help="Print Herald's version and exit.")] = False,
) -> None:
    """The options every command shares (only --version); the help is the Typer app's."""


def _editions(edition: str) -> list[str]:
    if edition == "all":
        return list(EDITIONS)
    if edition not in EDITIONS:
        raise typer.BadParameter(f"'{edition}' is not an edition; use ro, en, both or all")
    return [edition]


def _load(path: Path, content_dir: Path) -> list[Item]:
    """The items at `path`: those under a folder of items, or the one item it names (see item_path)."""
    try:
        folders = find_items(path) if os.path.isdir(path) else [find_item(path, content_dir, drafts=True)]
    except NoSuchItem as error:
        errors.print(str(error), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if not folders:
        errors.print(f"{path}: no content item here (a folder with meta.yaml)", style="red", markup=False,
                     highlight=False)
        raise typer.Exit(2)
    try:
        return [load_item(folder) for folder in folders]
    except ContentInvalid as error:
        for problem in error.problems:
            errors.print(str(problem), markup=False, highlight=False)
        errors.print("[red]Nothing rendered; fix the lines above, then run `herald check`.[/red]")
        raise typer.Exit(1) from None


def _report(rows: list[tuple[str, str, str, Path]]) -> None:
    """One line per (item, message): its editions and the folder holding <message>.<edition>.{html,txt,eml}."""
    grouped: dict[tuple[str, str, Path], list[str]] = {}
    for slug, message, edition, stem in rows:
        grouped.setdefault((slug, message, stem.parent), []).append(edition)
    table = Table(title="Rendered for a sample recipient", caption="<message>.<edition>.html, .txt and .eml in each folder")
    table.add_column("folder", overflow="fold")
    table.add_column("message")
    table.add_column("editions")
    for (_, message, folder), editions in grouped.items():
        table.add_row(display_path(folder), message, ", ".join(editions))
    console.print(table)


@app.command()
def render(
    path: Annotated[Path, typer.Argument(help="A content item (content/events/SLUG, events/SLUG or SLUG), or a "
                                              "folder of items.")],
    edition: Annotated[str, typer.Option(help="ro, en, both, or all three.")] = "all",
    message: Annotated[str | None, typer.Option(help=f"{MESSAGES['newsletter'][0]} for a newsletter; "
                                                f"{', '.join(MESSAGES['event'][:-1])} or {MESSAGES['event'][-1]} for "
                                                "an event (followup when its meta.yaml has a follow_up). Default: "
                                                "all the item has.")] = None,
    out: Annotated[Path | None, typer.Option(metavar="FOLDER", help="Where to write (default: the outbox folder).")] = None,
) -> None:
    """Write .html, .txt and a complete .eml per edition for a sample recipient, and print the paths."""
    settings = load_settings()
    if unusable := unusable_keys(settings):  # the .eml is signed as a subscriber's copy would be
        errors.print(unusable, style="red", markup=False, highlight=False)
        raise typer.Exit(1)
    renderer = Renderer(settings)
    rows = []
    for item in _load(path, settings.content_dir):
        messages = [message] if message else list(messages_of(item))
        if not set(messages) <= set(messages_of(item)):
            raise typer.BadParameter(f"a {item.kind} has no '{message}' message; use {', '.join(messages_of(item))}")
        for note in item.notes:
            errors.print(f"{note} (repaired in the output)", markup=False, highlight=False)
        rows += [(item.slug, *row) for row in
                 write_rendered(item, renderer, _editions(edition), messages, out or settings.outbox_dir, settings)]
    _report(rows)


@app.command("check")
def check_command(
    paths: Annotated[list[Path] | None, typer.Argument(help="Content items (or a file in one), content folders or "
                                                             "a templates folder (default: all).")] = None,
    fix: Annotated[bool, typer.Option(help="Rewrite cedilla letters ş ţ as ș ț in place.")] = False,
) -> None:
    """Validate content and templates; print `file:line: message` for each problem."""
    settings = load_settings()
    problems = check(list(paths or []), settings)
    if fix:
        for file in fix_cedillas(problems):
            console.print(f"fixed cedillas in {display_path(file)}")
        problems = [problem for problem in problems if not problem.fixable]
    for problem in problems:
        errors.print(str(problem), markup=False, highlight=False)
    for notice in unannounced_changes(list(paths or []), settings):
        errors.print(f"[yellow]{escape(str(notice))}[/yellow]")
    unsafe = unsafe_for_mail(settings)
    if problems:
        errors.print(f"[red]{len(problems)} problem(s); nothing is sent until `herald check` passes.[/red]")
    if unsafe:
        errors.print(f"[red]{escape(unsafe)}[/red]")
    if problems or unsafe:
        raise typer.Exit(1)
    console.print("[green]All content and templates are valid.[/green]")


DEMO_NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"
DEMO_INVITATION = "events/di4c-partners-meeting-botosani"
DEMO_AGAIN = "herald demo, run again"


@app.command()
def demo(
    invite_in: Annotated[int, typer.Option(help="Seconds until the scheduled invitation goes out.")] = 120,
) -> None:
    """The main job on embedded defaults: import the sample people, send a newsletter now, schedule an
    invitation, watch both go out through a real worker into the local outbox."""
    settings = load_settings()
    demo_people()
    logs = settings.data_dir / "logs"
    with services.embedded(settings, logs=logs) as running:
        sessions = open_store(settings)
        with sessions() as session:  # a demo run again mails its fictional people again, and says so
            newsletter = control.create(session, control.Request(settings.content_dir / DEMO_NEWSLETTER,
                                                                 again=DEMO_AGAIN), settings, "cli")
            at = clock.now() + timedelta(seconds=invite_in)
            invitation = control.create(session, control.Request(settings.content_dir / DEMO_INVITATION, send_at=at,
                                                                 again=DEMO_AGAIN), settings, "cli")
            confirmation = control.ask_pending(session)
        console.print(f"Campaign {newsletter.id} sends {DEMO_NEWSLETTER} to '{newsletter.segment}' now; campaign "
                      f"{invitation.id} sends {DEMO_INVITATION} at {at:%H:%M:%S} UTC (beat starts it).")
        watched = [newsletter.id, invitation.id]
        if confirmation is not None:
            console.print(f"Campaign {confirmation.id} asks the sample people who have not consented yet to confirm.")
            watched.append(confirmation.id)
        rows = campaign_cli.watch(sessions, watched, content_dir=settings.content_dir)
    table = Table(title="Demo campaigns")
    for column in ("id", "message", "item", "state", "sent", "bounced", "failed"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["id"]), row["message"], row["item"], row["state"],
                      *(f"{row['counts'][key]:,}" for key in ("sent", "bounced", "failed")))
    console.print(table)
    console.print(f"The worker's, beat's and web's logs: {display_path(logs)}/")
    if not running.local_sink:
        console.print(f"The messages went to {settings.smtp_url}.")
    else:
        console.print(f"Every message is in {display_path(settings.outbox_dir)}/: open "
                      f"{display_path(settings.outbox_dir / 'index.html')} in a browser, or an .eml in a mail client.")


if __name__ == "__main__":  # `python -m worker.cli`: how `herald up` starts its children
    app()
