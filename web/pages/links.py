"""What every page behind a signed link needs: the token checked, the person found, the page rendered.

A route gets a `Links` and calls `claims(token, purpose)` and `person(session, claims)`; each returns
either what was asked for or the refusal page to send back, so no route forgets a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NamedTuple

from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker

from foundation import clock
from foundation.settings import Settings
from subscribers import selfservice
from subscribers.models import Subscriber
from subscribers.tokens import BadToken, Claims, Signer
from subscribers.topics import Topic, load_topics
from web.pages.pages import Pages, csrf_valid

REFUSED_STATUS = {"malformed": 400, "signature": 403, "purpose": 403, "expired": 410, "missing": 404}


def html_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the HTML pages it answers with besides its 200, for the OpenAPI schema."""
    return {status: {"description": HTTPStatus(status).phrase, "content": {"text/html": {"schema": {"type": "string"}}}}
            for status in statuses}


# What a page behind a signed link answers when the link cannot be used (an expired one: 410, confirm links only).
LINK_REFUSED = html_responses(400, 403, 404)


class Visit(NamedTuple):
    claims: Claims
    subscriber: Subscriber


@dataclass
class Links:
    settings: Settings
    sessions: sessionmaker[Session]
    pages: Pages
    signer: Signer

    @classmethod
    def create(cls, settings: Settings, sessions: sessionmaker[Session]) -> Links:
        return cls(settings, sessions, Pages(settings), Signer.from_settings(settings))

    def claims(self, token: str, purpose: str, allow_expired: bool = False) -> Claims | HTMLResponse:
        """The token's claims, or the refusal page; `allow_expired` lets an expired one through (to renew it).
        A test copy's link gets the page that says so, whatever the route would do: it names nobody."""
        try:
            claims = self.signer.verify(token, purpose, clock.now())
        except BadToken as refusal:
            if not (allow_expired and refusal.reason == "expired"):
                return self.refused(refusal.reason)
            claims = refusal.claims
        return self.pages.test_copy(purpose) if claims.test_copy else claims

    def person(self, session: Session, claims: Claims) -> Subscriber | HTMLResponse:
        """The person the link was made for; "missing" once they are erased, even if their id lives on."""
        found = selfservice.get(session, claims.subscriber_id)
        if found is None or not claims.names(found.link_key, found.created_at):
            return self.refused("missing")
        return found

    def visit(self, session: Session, token: str, purpose: str, *, form: bool = False, csrf: str | None = None,
              allow_expired: bool = False) -> Visit | HTMLResponse:
        """The link's claims and person, once the token (and, for a form, its CSRF proof) checks out."""
        claims = self.claims(token, purpose, allow_expired)
        if isinstance(claims, HTMLResponse):
            return claims
        if form and not csrf_valid(self.settings.secret_key, token, csrf):
            return self.refused("signature")
        subscriber = self.person(session, claims)
        return subscriber if isinstance(subscriber, HTMLResponse) else Visit(claims, subscriber)

    def refused(self, reason: str) -> HTMLResponse:
        return self.pages.refused(reason, REFUSED_STATUS[reason])

    def topics(self) -> dict[str, Topic]:
        """Every topic of content/topics.yaml, in file order (read afresh, so an edit shows without a restart)."""
        return load_topics(self.settings.content_dir)

    def topic_names(self, topics: list[str] | tuple[str, ...], language: str) -> str:
        catalogue = self.topics()
        return ", ".join(catalogue[topic].names[language] if topic in catalogue else topic for topic in topics)


def switch_url(path: str, language: str) -> str:
    """The same page in the other language."""
    return f"{path}?lang={'en' if language == 'ro' else 'ro'}"
