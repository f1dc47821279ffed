"""An event's public calendar (`/events/{slug}.ics`): anyone may add it, no link needed.

It is the same calendar entry the invitations carry (same UID, the stored revision's SEQUENCE), as
METHOD:PUBLISH, so a calendar that imported it follows later changes and a cancellation.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from foundation import clock
from foundation.languages import LANGUAGES
from foundation.problems import ContentInvalid
from web.pages.links import Links, html_responses
from web.pages.pages import Lang
from worker.authoring.content import Slug, load_item
from worker.campaigns import ledger
from worker.events import event_calendar, lifecycle

PREFIX = "/events/"
CALENDAR = "text/calendar; charset=utf-8"
_SLUG = TypeAdapter(Slug)


def create_event_feed(links: Links) -> APIRouter:
    router = APIRouter(tags=["events"])
    settings = links.settings

    @router.get(PREFIX + "{slug}.ics", summary="An event as iCalendar (PUBLISH), for anyone to add",
                response_class=Response,
                responses={200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}} | html_responses(404))
    def event_calendar_file(slug: str, lang: Lang = None) -> Response:
        try:
            item = load_item(settings.content_dir / "events" / _SLUG.validate_python(slug))
        except (ValidationError, ContentInvalid):
            return links.refused("missing")
        if item.kind != "event":
            return links.refused("missing")
        with links.sessions() as session:
            event = lifecycle.event_of(session, ledger.item_key(item, settings.content_dir))
            revision = lifecycle.latest(session, event) if event else None
        language = lang or next(code for code in LANGUAGES if code in item.texts)
        body = event_calendar.public(item, language, revision.sequence if revision else 0, settings, clock.now())
        return Response(body, media_type=CALENDAR, headers={"Content-Disposition": f'inline; filename="{slug}.ics"'})

    return router
