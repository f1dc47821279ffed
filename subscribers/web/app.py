"""The subscribers' side of the web app: signed links in every message lead here.

A GET only shows a page (link scanners and previews follow links); every change is a POST that
carries the link's token and, from a form, a CSRF proof bound to that token. The one exception the
standard asks for is RFC 8058's one-click unsubscribe: a bare POST with `List-Unsubscribe=One-Click`
from the mail provider, with no cookie and no form.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from subscribers import selfservice
from subscribers.models import Subscriber
from subscribers.segments import segment_named, topics_in
from subscribers.tokens import BadToken, Claims, Signer
from subscribers.topics import load_topics
from subscribers.web.pages import Pages, csrf_token, csrf_valid, page_language
from worker import clock
from worker.content import load_item
from worker.models import Campaign
from worker.problems import ContentInvalid
from worker.render import CONFIRMATION, Recipient, Renderer
from worker.settings import Settings

REFUSED_STATUS = {"malformed": 400, "signature": 403, "purpose": 403, "expired": 410, "missing": 404}
Lang = Annotated[str | None, Query(pattern="^(ro|en)$", description="Show the page in this language.")]


def create_pages(settings: Settings, sessions: sessionmaker[Session]) -> APIRouter:
    router = APIRouter(tags=["subscribers"], default_response_class=HTMLResponse)
    pages = Pages(settings)
    signer = Signer.from_settings(settings)
    renderer = Renderer(settings)

    def verified(token: str, purpose: str) -> Claims | HTMLResponse:
        try:
            return signer.verify(token, purpose, clock.now())
        except BadToken as refusal:
            return pages.refused(refusal.reason, REFUSED_STATUS[refusal.reason])

    def person(session: Session, claims: Claims) -> Subscriber | HTMLResponse:
        found = selfservice.get(session, claims.subscriber_id)
        return found if found is not None else pages.refused("missing", 404)

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

    def topic_names(topics: list[str], language: str) -> str:
        catalogue = load_topics(settings.content_dir)
        return ", ".join(catalogue[topic].names[language] if topic in catalogue else topic for topic in topics)

    def switch(request: Request, language: str) -> str:
        return f"{request.url.path}?lang={'en' if language == 'ro' else 'ro'}"

    @router.get("/static/herald.css", include_in_schema=False)
    def stylesheet() -> FileResponse:
        return FileResponse(settings.templates_dir / "web" / "herald.css", media_type="text/css")

    @router.get("/u/{token}", summary="The unsubscribe page (changes nothing)")
    def unsubscribe_page(token: str, request: Request, lang: Lang = None) -> Response:
        claims = verified(token, "unsubscribe")
        if isinstance(claims, Response):
            return claims
        with sessions() as session:
            subscriber = person(session, claims)
            if isinstance(subscriber, Response):
                return subscriber
            language = page_language(subscriber.language, lang)
            topics = offered_topics(session, subscriber, claims.campaign_id)
            return pages.render("unsubscribe", language, title=pages.words[language]["unsubscribe_title"],
                                switch_url=switch(request, language), email=subscriber.email, topics=topics,
                                topic_names=topic_names(topics, language), action=f"/u/{token}?lang={language}",
                                csrf=csrf_token(settings.secret_key, token))

    @router.post("/u/{token}", summary="Unsubscribe: RFC 8058 one-click, or the page's form")
    async def unsubscribe(token: str, request: Request, lang: Lang = None) -> Response:
        claims = verified(token, "unsubscribe")
        if isinstance(claims, Response):
            return claims
        form = await request.form()
        one_click = form.get("List-Unsubscribe") == "One-Click"
        if not one_click and not csrf_valid(settings.secret_key, token, _text(form.get("csrf"))):
            return pages.refused("signature", 403)
        with sessions() as session:
            subscriber = person(session, claims)
            if isinstance(subscriber, Response):
                return subscriber
            language = page_language(subscriber.language, lang)
            topics = tuple(_text(value) or "" for value in form.getlist("topic")) if form.get("scope") == "topics" else ()
            done = selfservice.unsubscribe(session, subscriber, clock.now(), topics)
            if one_click:
                return pages.notice(language, "unsubscribed_title", "one_click_done")
            return pages.render("unsubscribed", language, title=pages.words[language]["unsubscribed_title"],
                                email=subscriber.email, everything=done.everything, topics=done.topics,
                                topic_names=topic_names(list(done.topics), language),
                                action=f"/u/{token}/undo?lang={language}", csrf=csrf_token(settings.secret_key, token))

    @router.post("/u/{token}/undo", summary="Take an unsubscribe back")
    def undo(token: str, csrf: Annotated[str, Form()], scope: Annotated[str, Form(pattern="^(everything|topics)$")],
             topic: Annotated[list[str] | None, Form()] = None, lang: Lang = None) -> Response:
        claims = verified(token, "unsubscribe")
        if isinstance(claims, Response):
            return claims
        if not csrf_valid(settings.secret_key, token, csrf):
            return pages.refused("signature", 403)
        with sessions() as session:
            subscriber = person(session, claims)
            if isinstance(subscriber, Response):
                return subscriber
            done = selfservice.Unsubscribed(everything=scope == "everything", topics=tuple(topic or ()))
            selfservice.undo(session, subscriber, done, clock.now())
            return pages.notice(page_language(subscriber.language, lang), "undone_title", "undone_text")

    @lru_cache(maxsize=32)
    def compiled(campaign_id: int, item: str, message: str, edition: str):  # noqa: ANN202 - a CompiledEdition
        return renderer.compile(load_item(settings.content_dir / item), edition, message)

    @router.get("/m/{token}", summary="The message as this recipient got it")
    def view(token: str) -> Response:
        claims = verified(token, "view")
        if isinstance(claims, Response):
            return claims
        with sessions() as session:
            subscriber = person(session, claims)
            campaign = session.get(Campaign, claims.campaign_id) if claims.campaign_id else None
            if isinstance(subscriber, Response) or campaign is None or campaign.message == CONFIRMATION:
                return pages.refused("missing", 404)
            try:
                edition = compiled(campaign.id, campaign.item, campaign.message, campaign.edition or subscriber.language)
            except ContentInvalid:
                return pages.refused("missing", 404)
            links = signer.links(settings.base_url, subscriber.id, campaign.id, edition.link_purposes)
            message = edition.personalise(Recipient(email=subscriber.email, name=subscriber.name,
                                                    timezone=subscriber.timezone, links=links))
            return HTMLResponse(message.html)

    return router


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def security_headers(view_prefix: str = "/m/") -> Callable:
    """Middleware: a strict CSP (the message view may show the email's inline styles and https images),
    no framing, and no Referer, so a token in a URL never leaks to another site."""
    strict = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")
    message = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'none'; "
               "frame-ancestors 'none'; base-uri 'none'")

    async def add_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith(("/docs", "/redoc")):
            response.headers["Content-Security-Policy"] = message if request.url.path.startswith(view_prefix) else strict
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    return add_headers
