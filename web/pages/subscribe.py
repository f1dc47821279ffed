"""The public subscribe form (a page, and the same form for an <iframe> on another site) and the
confirmation link that completes it.

The form answers the same whatever the address: subscribed or not, suppressed or new, rate-limited
or not, the page says a confirmation is on its way if the address can receive one. Only the owner
of the mailbox, by opening the link, turns a request into a subscription (double opt-in).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Annotated

import redis
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from kombu.exceptions import OperationalError

from foundation import clock
from subscribers import selfservice
from subscribers.profile import Invalid, normalise_email
from subscribers.tokens import BadToken
from subscribers.topics import load_topics
from subscribers.vocabulary import ORGANISATION_TYPES, SUBSCRIBER_LANGUAGES
from web.pages.links import LINK_REFUSED, Links, html_responses, switch_url
from web.pages.pages import Lang, csrf_token, csrf_valid, page_language
from web.pages.preferences import cleaned
from web.visitor import visitor
from worker.campaigns.installation import keys_of
from worker.delivery.smtp import offers_smtputf8

log = logging.getLogger(__name__)
FORM_LIFETIME = 2 * 3600  # seconds a served form may be posted
PER_IP = (10, 600)  # at most 10 posts per address of the sender in 10 minutes
PER_EMAIL = (3, 86400)  # at most 3 confirmations asked for one mailbox a day
EMBED_PREFIX = "/subscribe/embed"
CONFIRM_REFUSED = LINK_REFUSED | html_responses(410)  # an expired confirmation link: the page offers a new one
# A stale or forged form (403), the form again with what is wrong (422: HTML, besides FastAPI's JSON for a
# request it cannot read), too many posts (429).
FORM_REFUSED = html_responses(403, 422, 429)
FORM_REFUSED[422]["content"]["application/json"] = {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}


def consent_version(text: str) -> str:
    """The consent wording's version: its digest, so a changed wording is a new version by itself."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def create_subscribe(links: Links) -> APIRouter:
    router = APIRouter(tags=["subscribers"], default_response_class=HTMLResponse)
    settings, pages = links.settings, links.pages
    limiter = redis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
    with links.sessions() as session:
        keys = keys_of(session)  # the counters are this installation's, in a Redis that may be shared

    def form_token() -> str:
        issued = str(int(time.time()))
        return f"{issued}.{csrf_token(settings.secret_key, 'subscribe:' + issued)}"

    def form_token_valid(token: str | None) -> bool:
        issued, _, proof = (token or "").partition(".")
        return (issued.isascii() and issued.isdigit() and 0 <= time.time() - int(issued) <= FORM_LIFETIME
                and csrf_valid(settings.secret_key, "subscribe:" + issued, proof))

    def within_limit(key: str, limit: tuple[int, int]) -> bool:
        """Counted in Redis for every web process; if Redis cannot answer, the form still works."""
        count, seconds = limit
        try:
            used = limiter.incr(key)
            if used == 1:
                limiter.expire(key, seconds)
            return used <= count
        except redis.RedisError:
            log.warning("rate limit unavailable: Redis did not answer")
            return True

    def form_page(language: str, embedded: bool, error: tuple[str, str] | None = None, form: dict | None = None,
                  status: int = 200) -> HTMLResponse:
        """The form; after a refused post, filled in as sent, with `error` (its words' key, the field it is about)
        tied to that field, which gets the focus, and "Error" in the title (what a screen reader announces)."""
        words = pages.words[language]
        catalogue = load_topics(settings.content_dir)
        text = words["subscribe_consent"].format(org=settings.org_name)
        path = EMBED_PREFIX if embedded else "/subscribe"
        title = words["subscribe_title"].format(org=settings.org_name)
        return pages.render(
            "subscribe", language, status, switch_url=switch_url(path, language), embedded=embedded,
            title=words["error_title"].format(title=title) if error else title,
            error=words[error[0]] if error else "", error_field=error[1] if error else "",
            action=f"{path}?lang={language}", csrf=form_token(),
            form=form or {"email": "", "name": "", "organisation": "", "organisation_type": "", "language": language,
                          "topics": [], "consent": False},
            organisation_types=ORGANISATION_TYPES, languages=SUBSCRIBER_LANGUAGES,
            topics=[(slug, topic.names[language]) for slug, topic in catalogue.items()],
            consent_text=text, consent_version=consent_version(text))

    @router.get("/subscribe", summary="The subscribe form")
    def subscribe_page(lang: Lang = None) -> Response:
        return form_page(page_language("", lang), embedded=False)

    @router.get(EMBED_PREFIX, summary="The subscribe form, to put in an <iframe> on another site")
    def subscribe_embedded(lang: Lang = None) -> Response:
        return form_page(page_language("", lang), embedded=True)

    @router.post("/subscribe", summary="Ask to subscribe; the answer is the same for every address",
                 responses=FORM_REFUSED)
    @router.post(EMBED_PREFIX, summary="The same, from the embedded form: its answers stay inside the frame",
                 responses=FORM_REFUSED)
    def subscribe(request: Request, csrf: Annotated[str, Form()], email: Annotated[str, Form(max_length=320)],
                  consent: Annotated[str | None, Form(max_length=64)] = None,
                  name: Annotated[str, Form(max_length=400)] = "", organisation: Annotated[str, Form(max_length=600)] = "",
                  organisation_type: Annotated[str, Form(max_length=20)] = "",
                  language: Annotated[str, Form(max_length=4)] = "",
                  topic: Annotated[list[str] | None, Form()] = None,
                  website: Annotated[str, Form(max_length=400)] = "", lang: Lang = None) -> Response:
        page_lang = page_language("", lang)
        words = pages.words[page_lang]
        embedded = request.url.path.startswith(EMBED_PREFIX)
        source = "embedded form" if embedded else "subscribe page"
        if not form_token_valid(csrf):
            return links.refused("signature")
        if not within_limit(keys("subscribe", "ip", visitor(request, settings.trusted_proxies)), PER_IP):
            return pages.notice(page_lang, "busy_title", "busy_text", status=429, embedded=embedded)
        catalogue = load_topics(settings.content_dir)
        wanted_language = language if language in SUBSCRIBER_LANGUAGES else page_lang
        text = words["subscribe_consent"].format(org=settings.org_name)
        agreed = consent == consent_version(text)  # to these very words: a box ticked under older ones comes back empty
        form = {"email": email, "name": name, "organisation": organisation, "organisation_type": organisation_type,
                "language": wanted_language, "topics": [slug for slug in topic or () if slug in catalogue],
                "consent": agreed}
        try:
            address = normalise_email(email)
        except Invalid:
            return form_page(page_lang, embedded, ("error_email", "email"), form, status=422)
        if not address.rpartition("@")[0].isascii() and not offers_smtputf8(settings.smtp_url):
            # Every message to it would fail (RFC 6531): say so now rather than "check your inbox".
            return form_page(page_lang, embedded, ("error_email_smtputf8", "email"), form, status=422)
        if not agreed:
            return form_page(page_lang, embedded, ("error_consent", "consent"), form, status=422)
        answer = pages.notice(page_lang, "subscribe_sent_title", "subscribe_sent_text", embedded=embedded)
        if website:  # the hidden field only robots fill in
            return answer
        key = hashlib.sha256(f"{settings.secret_key}:{address.lower()}".encode()).hexdigest()
        if not within_limit(keys("subscribe", "email", key), PER_EMAIL):
            return answer
        wanted = selfservice.Request(
            email=address, language=wanted_language, name=cleaned(name, "name"),
            organisation=cleaned(organisation, "organisation"),
            organisation_type=organisation_type if organisation_type in ORGANISATION_TYPES else None,
            topics=tuple(form["topics"]), consent_text=text, consent_version=consent_version(text),
            source=f"{source} ({page_lang})")
        with links.sessions() as session:
            if selfservice.request_subscription(session, settings.secret_key, wanted, clock.now()):
                _ask_now(session)
        return answer

    @router.get("/c/{token}", summary="The confirmation page (changes nothing)", responses=CONFIRM_REFUSED)
    def confirm_page(token: str, request: Request, lang: Lang = None) -> Response:
        try:
            claims = links.signer.verify(token, "confirm", clock.now())
        except BadToken as refusal:
            if refusal.reason != "expired":
                return links.refused(refusal.reason)
            with links.sessions() as session:
                subscriber = links.person(session, refusal.claims)
                if isinstance(subscriber, Response):
                    return subscriber
                language = page_language(subscriber.language, lang)
                return pages.render("renew", language, 410, title=pages.words[language]["expired_title"],
                                    switch_url=switch_url(request.url.path, language),
                                    action=f"/c/{token}/renew?lang={language}",
                                    csrf=csrf_token(settings.secret_key, token))
        with links.sessions() as session:
            subscriber = links.person(session, claims)
            if isinstance(subscriber, Response):
                return subscriber
            language = page_language(subscriber.language, lang)
            if not selfservice.needs_confirmation(session, subscriber):
                return pages.notice(language, "confirmed_title", "confirmed_text")
            return pages.render("confirm", language, title=pages.words[language]["confirm_page_title"],
                                switch_url=switch_url(request.url.path, language), email=subscriber.email,
                                action=f"/c/{token}?lang={language}", csrf=csrf_token(settings.secret_key, token))

    @router.post("/c/{token}", summary="Confirm the subscription", responses=CONFIRM_REFUSED)
    def confirm(token: str, csrf: Annotated[str, Form()], lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "confirm", form=True, csrf=csrf)
            if isinstance(visit, Response):
                return visit
            claims, subscriber = visit
            language = page_language(subscriber.language, lang)
            if selfservice.needs_confirmation(session, subscriber):
                wording = pages.catalogues[language]["confirm_intro"].format(org=settings.org_name)
                selfservice.confirm(session, subscriber, clock.now(), wording,
                                    source=f"confirmation email, campaign {claims.campaign_id}")
            return pages.notice(page_language(subscriber.language, lang), "confirmed_title", "confirmed_text")

    @router.post("/c/{token}/renew", summary="Send a fresh confirmation link for an expired one",
                 responses=LINK_REFUSED)
    def renew(token: str, csrf: Annotated[str, Form()], lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "confirm", form=True, csrf=csrf, allow_expired=True)
            if isinstance(visit, Response):
                return visit
            subscriber = visit.subscriber
            language = page_language(subscriber.language, lang)
            if selfservice.needs_confirmation(session, subscriber) and within_limit(
                    keys("renew", subscriber.id), PER_EMAIL):
                wording = pages.catalogues[language]["confirm_intro"].format(org=settings.org_name)
                selfservice.ask_again(session, subscriber, clock.now(), wording, "confirmation-email")
                _ask_now(session)
            return pages.notice(language, "subscribe_sent_title", "subscribe_sent_text")

    return router


def _ask_now(session) -> None:  # noqa: ANN001 - a Session
    """Start the confirmation campaign at once rather than at the next sweep; the sweep catches a failure."""
    from worker.campaigns import control

    try:
        control.ask_pending(session)
    except (redis.RedisError, OperationalError):
        log.warning("the broker did not answer; the next sweep sends the confirmation")
