"""Unsubscribing from a message's link: the page (a GET changes nothing), its form, its undo, and RFC 8058.

RFC 8058's one-click unsubscribe is a bare POST with `List-Unsubscribe=One-Click` from the mail
provider, with no cookie and no form: the only change a link allows without the page's CSRF proof.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from subscribers import selfservice, store
from subscribers.models import Subscriber
from subscribers.segments import segment_named, topics_in
from subscribers.web.links import LINK_REFUSED, Links, switch_url
from subscribers.web.pages import Lang, csrf_token, page_language
from worker import clock
from worker.models import Campaign
from worker.problems import ContentInvalid
from worker.render import CONFIRMATION


def create_unsubscribe(links: Links) -> APIRouter:
    router = APIRouter(tags=["subscribers"], default_response_class=HTMLResponse)
    settings, pages = links.settings, links.pages

    def offered_topics(session: Session, subscriber: Subscriber, campaign_id: int | None) -> list[str]:
        """"Only this topic": the topics the message's segment chose the person by, that they still follow."""
        campaign = session.get(Campaign, campaign_id) if campaign_id else None
        if campaign is None or campaign.message == CONFIRMATION:
            return []
        try:
            chosen = topics_in(segment_named(settings.content_dir, campaign.segment).condition)
        except ContentInvalid:
            return []
        return [topic for topic in selfservice.topics_of(session, subscriber.id) if topic in chosen]

    @router.get("/u/{token}", summary="The unsubscribe page (changes nothing)", responses=LINK_REFUSED)
    def unsubscribe_page(token: str, request: Request, lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "unsubscribe")
            if isinstance(visit, Response):
                return visit
            claims, subscriber = visit
            language = page_language(subscriber.language, lang)
            topics = offered_topics(session, subscriber, claims.campaign_id)
            return pages.render("unsubscribe", language, title=pages.words[language]["unsubscribe_title"],
                                switch_url=switch_url(request.url.path, language), email=subscriber.email, topics=topics,
                                topic_names=links.topic_names(topics, language), action=f"/u/{token}?lang={language}",
                                csrf=csrf_token(settings.secret_key, token))

    @router.post("/u/{token}", summary="Unsubscribe: RFC 8058 one-click, or the page's form", responses=LINK_REFUSED)
    async def unsubscribe(token: str, request: Request, lang: Lang = None) -> Response:
        form = await request.form()
        one_click = form.get("List-Unsubscribe") == "One-Click"  # RFC 8058: the mail provider's bare POST
        with links.sessions() as session:
            visit = links.visit(session, token, "unsubscribe", form=not one_click, csrf=_text(form.get("csrf")))
            if isinstance(visit, Response):
                return visit
            subscriber = visit.subscriber
            language = page_language(subscriber.language, lang)
            topics = tuple(_text(value) or "" for value in form.getlist("topic")) if form.get("scope") == "topics" else ()
            done = selfservice.unsubscribe(session, subscriber, clock.now(), topics)
            if one_click:
                return pages.notice(language, "unsubscribed_title", "one_click_done")
            return pages.render("unsubscribed", language, title=pages.words[language]["unsubscribed_title"],
                                email=subscriber.email, everything=done.everything, topics=done.topics,
                                topic_names=links.topic_names(list(done.topics), language),
                                action=f"/u/{token}/undo?lang={language}", csrf=csrf_token(settings.secret_key, token))

    @router.post("/u/{token}/undo", summary="Take an unsubscribe back", responses=LINK_REFUSED)
    def undo(token: str, csrf: Annotated[str, Form()], scope: Annotated[str, Form(pattern="^(everything|topics)$")],
             topic: Annotated[list[str] | None, Form()] = None, lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "unsubscribe", form=True, csrf=csrf)
            if isinstance(visit, Response):
                return visit
            subscriber = visit.subscriber
            # Topics of the catalogue only, each once, and in the topics table: anything else would break its keys.
            catalogue = links.topics()
            store.sync_topics(session, catalogue)
            topics = tuple(dict.fromkeys(slug for slug in topic or () if slug in catalogue))
            done = selfservice.Unsubscribed(everything=scope == "everything", topics=topics)
            selfservice.undo(session, subscriber, done, clock.now())
            return pages.notice(page_language(subscriber.language, lang), "undone_title", "undone_text")

    return router


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
