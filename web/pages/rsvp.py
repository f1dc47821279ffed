"""Answering an invitation (`/r/{token}?answer=yes|no|maybe`): the choice page, and the answer recorded.

The email's buttons preselect an answer, but a GET records nothing (mail scanners open links): the
page's form POSTs it with the CSRF proof bound to the link. An answer can change until the RSVP
deadline; after it, or once the event is cancelled, the page shows the answer held, read-only, and
a POST changes nothing (409).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from foundation import clock
from foundation.problems import ContentInvalid
from subscribers.tokens import Claims
from web.pages.links import LINK_REFUSED, Links, Visit, html_responses, switch_url
from web.pages.pages import Lang, csrf_token, page_language
from web.pages.preferences import FormText
from worker.authoring.content import EventMeta, Item, load_item
from worker.campaigns.models import RSVP_ANSWERS, Campaign, Event
from worker.events import lifecycle
from worker.rendering.i18n import local_time, when

PREFIX = "/r/"
# Besides a refused link: an answer that is not one (400), answers closed (409).
RSVP_REFUSED = LINK_REFUSED | html_responses(409)

Asked = Annotated[str | None, Query(description="The answer the email's button preselects: yes, maybe or no.")]


@dataclass(frozen=True)
class Invitation:
    """The event a link answers: its row (the answers) and its content as meta.yaml says now."""

    item_key: str
    item: Item
    event: Event

    @property
    def meta(self) -> EventMeta:
        return self.item.meta

    def closed(self, session: Session, now: datetime) -> str | None:
        """Why answers are closed (the page's words for it), or None while they are open."""
        if self.meta.status == "cancelled" or lifecycle.is_cancelled(session, self.item_key):
            return "rsvp_cancelled"
        return "rsvp_closed" if now >= self.meta.aware(self.meta.rsvp_deadline) else None


def invitation_of(session: Session, content_dir: Path, claims: Claims) -> Invitation | None:
    """The event of the link's campaign, once its invitation went out (the event row exists) and it still loads."""
    campaign = session.get(Campaign, claims.campaign_id) if claims.campaign_id else None
    event = lifecycle.event_of(session, campaign.item) if campaign else None
    if event is None:
        return None
    try:
        item = load_item(content_dir / campaign.item)
    except ContentInvalid:
        return None
    return Invitation(campaign.item, item, event) if item.kind == "event" else None


def create_rsvp(links: Links) -> APIRouter:
    router = APIRouter(tags=["subscribers"], default_response_class=HTMLResponse)
    settings, pages = links.settings, links.pages

    def opened(session: Session, token: str, *, form: bool = False,
               csrf: str | None = None) -> tuple[Visit, Invitation] | Response:
        """The link's person and event, or the refusal page (a form's POST also needs its CSRF proof)."""
        visit = links.visit(session, token, "rsvp", form=form, csrf=csrf)
        if isinstance(visit, Response):
            return visit
        invitation = invitation_of(session, settings.content_dir, visit.claims)
        return links.refused("missing") if invitation is None else (visit, invitation)

    def page(token: str, visit: Visit, invitation: Invitation, language: str, held: lifecycle.Answer | None,
             closed: str | None, *, asked: str | None = None, saved: bool = False, status: int = 200) -> Response:
        meta, words = invitation.meta, pages.words[language]
        start, end, link = meta.aware(meta.start), meta.aware(meta.end), f"{PREFIX}{token}"
        return pages.render(
            "rsvp", language, status, title=invitation.item.text(language).front.title,
            switch_url=switch_url(link, language) + (f"&answer={asked}" if asked in RSVP_ANSWERS else ""),
            when=when(start, language, end),
            local_time=local_time((start, end), visit.subscriber.timezone, language, words["rsvp_your_time"]),
            deadline=words["rsvp_deadline"].format(when=when(meta.aware(meta.rsvp_deadline), language)),
            answers=RSVP_ANSWERS, chosen=asked if asked in RSVP_ANSWERS else held.answer if held else None,
            held=held, closed=closed, saved=saved, invalid=status == 400,
            action=f"{link}?lang={language}", csrf=csrf_token(settings.secret_key, token))

    @router.get(PREFIX + "{token}", summary="The invitation's answer page (changes nothing)",
                responses=LINK_REFUSED)
    def rsvp_page(token: str, answer: Asked = None, lang: Lang = None) -> Response:
        with links.sessions() as session:
            found = opened(session, token)
            if isinstance(found, Response):
                return found
            visit, invitation = found
            closed = invitation.closed(session, clock.now())
            invalid = closed is None and answer is not None and answer not in RSVP_ANSWERS
            return page(token, visit, invitation, page_language(visit.subscriber.language, lang),
                        lifecycle.answer_of(session, invitation.event, visit.subscriber.id), closed, asked=answer,
                        status=400 if invalid else 200)

    @router.post(PREFIX + "{token}", summary="Record (or change) the invitation's answer", responses=RSVP_REFUSED)
    def record(token: str, csrf: FormText = None, answer: FormText = None, lang: Lang = None) -> Response:
        with links.sessions() as session:
            found = opened(session, token, form=True, csrf=csrf)
            if isinstance(found, Response):
                return found
            visit, invitation = found
            language, now = page_language(visit.subscriber.language, lang), clock.now()
            held = lifecycle.answer_of(session, invitation.event, visit.subscriber.id)
            closed = invitation.closed(session, now)
            if closed is not None:
                return page(token, visit, invitation, language, held, closed, status=409)
            if answer not in RSVP_ANSWERS:
                return page(token, visit, invitation, language, held, None, status=400)
            held = lifecycle.record(session, invitation.event, visit.subscriber.id, answer, invitation.meta.capacity,
                                 now)
            session.commit()
            return page(token, visit, invitation, language, held, None, saved=True)

    return router
