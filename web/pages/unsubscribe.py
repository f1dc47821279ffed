"""Unsubscribing from a message's link: the page (a GET changes nothing), its form, its undo, and RFC 8058.

RFC 8058's one-click unsubscribe is a bare POST with `List-Unsubscribe=One-Click` from the mail
provider, with no cookie and no form: the only change a link allows without the page's CSRF proof.

The undo button takes back exactly the unsubscribe its page recorded: the form carries a proof of
what was done and when, signed for this link, and selfservice.undo honours it only for a short while
and only while nothing else has changed the subscription since. Another message's link, a page that
changed nothing, or an opt-out from an import never yields one.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from foundation import clock
from foundation.problems import ContentInvalid
from subscribers import selfservice, store
from subscribers.models import Subscriber
from subscribers.segments import segment_named, topics_in
from web.pages.links import LINK_REFUSED, Links, html_responses, switch_url
from web.pages.pages import Lang, csrf_token, page_language
from worker.campaigns.models import Campaign
from worker.rendering.render import CONFIRMATION


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
                                email=subscriber.email, everything=done.everything,
                                topic_names=links.topic_names(list(done.topics), language),
                                undo=undo_proof(settings.secret_key, token, done) if done.changed else None,
                                action=f"/u/{token}/undo?lang={language}", csrf=csrf_token(settings.secret_key, token))

    @router.post("/u/{token}/undo", summary="Take back the unsubscribe this page just recorded",
                 responses=LINK_REFUSED | html_responses(409))
    def undo(token: str, csrf: Annotated[str, Form()], proof: Annotated[str, Form(alias="undo", max_length=2000)],
             lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "unsubscribe", form=True, csrf=csrf)
            if isinstance(visit, Response):
                return visit
            done = undone_by(settings.secret_key, token, proof)
            if done is None:
                return links.refused("signature")
            subscriber = visit.subscriber
            language = page_language(subscriber.language, lang)
            # Topics of the catalogue only, and in the topics table: anything else would break its keys.
            catalogue = links.topics()
            store.sync_topics(session, catalogue)
            done = selfservice.Unsubscribed(done.everything, tuple(slug for slug in done.topics if slug in catalogue),
                                            done.at)
            if not selfservice.undo(session, subscriber, done, clock.now()):
                return pages.notice(language, "undo_late_title", "undo_late_text", status=409)
            return pages.notice(language, "undone_title", "undone_text")

    return router


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _undo_mac(secret_key: str, token: str, body: str) -> str:
    return hmac.new(secret_key.encode(), f"undo:{token}:{body}".encode(), hashlib.sha256).hexdigest()[:32]


def undo_proof(secret_key: str, token: str, done: selfservice.Unsubscribed) -> str:
    """The undo form's proof: what this unsubscribe did (scope, topics) and when, bound to this link."""
    body = f"{'everything' if done.everything else 'topics'}:{(done.at - _EPOCH) // _MICROSECOND}:{','.join(done.topics)}"
    return f"{body}.{_undo_mac(secret_key, token, body)}"


def undone_by(secret_key: str, token: str, proof: str) -> selfservice.Unsubscribed | None:
    """The unsubscribe a proof describes, if Herald made the proof for this link; None for anything else."""
    body, _, mac = proof.rpartition(".")
    if not proof.isascii() or not hmac.compare_digest(_undo_mac(secret_key, token, body).encode(), mac.encode()):
        return None
    scope, micros, topics = body.split(":", 2)
    return selfservice.Unsubscribed(everything=scope == "everything", topics=tuple(filter(None, topics.split(","))),
                                    at=_EPOCH + int(micros) * _MICROSECOND)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
