"""The preference centre (`/p/{token}`): language, topics, name and organisation; the person's data; erasure.

GETs only show (the form, the confirmation) or read (the data download); saving and erasing are
POSTs carrying the form's CSRF proof. Erasure leaves the link pointing at no one, so it answers
"missing" from then on.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from foundation import clock
from subscribers import gdpr, selfservice
from subscribers.models import Subscriber
from subscribers.profile import LIMITS, clean_text, cut
from subscribers.vocabulary import SUBSCRIBER_LANGUAGES
from web.pages.links import LINK_REFUSED, Links, switch_url
from web.pages.pages import Lang, csrf_token, page_language

PREFIX = "/p/"
DATA_FILE = "herald-my-data.json"

FormText = Annotated[str | None, Form()]


def chosen_preferences(subscriber: Subscriber, language: str | None, topics: list[str] | None, name: str | None,
                       organisation: str | None) -> selfservice.Preferences:
    """What the form asks for, cleaned and cut to the columns; an unknown language keeps the one held.

    The form replaces what is held: a blank (or absent) name or organisation clears it, and topics
    not ticked are dropped. Topic slugs are kept as sent: `selfservice.save_preferences` keeps only
    the catalogue's.
    """
    return selfservice.Preferences(
        language=language if language in SUBSCRIBER_LANGUAGES else subscriber.language,
        name=cleaned(name, "name"),
        organisation=cleaned(organisation, "organisation"),
        topics=frozenset(topics or ()),
    )


def cleaned(given: str | None, field: str) -> str:
    """A name or organisation from a form: cleaned like any other entry, cut to what the store keeps."""
    return cut(clean_text(given or ""), LIMITS[field])


def create_preferences(links: Links) -> APIRouter:
    router = APIRouter(tags=["subscribers"], default_response_class=HTMLResponse)
    settings, pages = links.settings, links.pages

    def form_page(token: str, subscriber: Subscriber, held: list[str], language: str, saved: bool = False) -> Response:
        link = f"{PREFIX}{token}"
        return pages.render(
            "preferences", language, title=pages.words[language]["preferences_title"],
            switch_url=switch_url(link, language), email=subscriber.email, saved=saved,
            languages=SUBSCRIBER_LANGUAGES, current=subscriber.language, limits=LIMITS,
            values={"name": subscriber.name, "organisation": subscriber.organisation},
            topics=[{"slug": slug, "name": topic.names[language], "held": slug in held}
                    for slug, topic in links.topics().items()],
            action=f"{link}?lang={language}", csrf=csrf_token(settings.secret_key, token),
            data_url=f"{link}/data.json", delete_url=f"{link}/delete?lang={language}")

    @router.get(PREFIX + "{token}", summary="The preference centre (changes nothing)", responses=LINK_REFUSED)
    def preferences_page(token: str, lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "preferences")
            if isinstance(visit, Response):
                return visit
            subscriber = visit.subscriber
            return form_page(token, subscriber, selfservice.topics_of(session, subscriber.id),
                             page_language(subscriber.language, lang))

    @router.post(PREFIX + "{token}", summary="Save the preference centre's form", responses=LINK_REFUSED)
    def save(token: str, csrf: FormText = None, language: FormText = None,
             topic: Annotated[list[str] | None, Form()] = None, name: FormText = None,
             organisation: FormText = None, lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "preferences", form=True, csrf=csrf)
            if isinstance(visit, Response):
                return visit
            subscriber = visit.subscriber
            before = subscriber.language
            chosen = chosen_preferences(subscriber, language, topic, name, organisation)
            selfservice.save_preferences(session, subscriber, chosen, links.topics(), clock.now())
            # A new language is the one to answer in; otherwise the page stays in the one being read.
            shown = page_language(chosen.language, lang if chosen.language == before else None)
            return form_page(token, subscriber, selfservice.topics_of(session, subscriber.id), shown, saved=True)

    @router.get(PREFIX + "{token}/data.json", response_class=Response,
                responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}} | LINK_REFUSED,
                summary="Everything held about the person, as a JSON download (changes nothing)")
    def my_data(token: str) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "preferences")
            if isinstance(visit, Response):
                return visit
            subscriber = visit.subscriber
            record = gdpr.person_record(session, settings.secret_key, subscriber.email)
        if record is None:
            return links.refused("missing")
        return Response(json.dumps(record, ensure_ascii=False, indent=2), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{DATA_FILE}"',
                                 "Cache-Control": "no-store"})

    @router.get(PREFIX + "{token}/delete", summary="Asks to confirm erasure (changes nothing)", responses=LINK_REFUSED)
    def delete_page(token: str, lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "preferences")
            if isinstance(visit, Response):
                return visit
            subscriber = visit.subscriber
            language = page_language(subscriber.language, lang)
            return pages.render("delete", language, title=pages.words[language]["delete_title"],
                                switch_url=switch_url(f"{PREFIX}{token}/delete", language), email=subscriber.email,
                                action=f"{PREFIX}{token}/delete?lang={language}",
                                csrf=csrf_token(settings.secret_key, token), keep_url=f"{PREFIX}{token}?lang={language}")

    @router.post(PREFIX + "{token}/delete", summary="Erase the person: only a keyed hash stays, to stop future mail",
                 responses=LINK_REFUSED)
    def delete(token: str, csrf: FormText = None, lang: Lang = None) -> Response:
        with links.sessions() as session:
            visit = links.visit(session, token, "preferences", form=True, csrf=csrf)
            if isinstance(visit, Response):
                return visit
            subscriber = visit.subscriber
            language, email = page_language(subscriber.language, lang), subscriber.email
        # Outside the session: erasure commits on its own and then makes the database forget the bytes.
        gdpr.erase_person(links.sessions, settings.secret_key, email, clock.now())
        return pages.notice(language, "deleted_title", "deleted_text")

    return router
