"""The subscribers' side of the web app: signed links in every message lead here.

A GET only shows a page (link scanners and previews follow links); every change is a POST that
carries the link's token and, from a form, a CSRF proof bound to that token. Each flow is a module
of its own; this one puts them together with the stylesheet and the security headers.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from subscribers.web.event_feed import create_event_feed
from subscribers.web.links import Links
from subscribers.web.preferences import create_preferences
from subscribers.web.rsvp import create_rsvp
from subscribers.web.subscribe import EMBED_PREFIX, create_subscribe
from subscribers.web.unsubscribe import create_unsubscribe
from subscribers.web.view import ARCHIVE_PREFIX, VIEW_PREFIX, create_view
from worker.settings import Settings


def create_pages(settings: Settings, sessions: sessionmaker[Session]) -> APIRouter:
    links = Links.create(settings, sessions)
    router = APIRouter()

    @router.get("/static/herald.css", include_in_schema=False)
    def stylesheet() -> FileResponse:
        return FileResponse(settings.templates_dir / "web" / "herald.css", media_type="text/css")

    for flow in (create_unsubscribe, create_view, create_subscribe, create_preferences, create_rsvp,
                 create_event_feed):
        router.include_router(flow(links))
    return router


# The pages behind a person's link, which show their address or data: no cache (a shared proxy's, a
# browser's on a shared computer) may keep a copy.
PERSONAL_PREFIXES = ("/p/", "/u/", "/m/", "/r/", "/c/")


def _archived_message(path: str) -> bool:
    return path.startswith(ARCHIVE_PREFIX) and path != ARCHIVE_PREFIX


def on_base_url(base_url: str, location: str) -> str:
    """A redirect's target on Herald's own base URL: a Location built from the request (Starlette's
    `/archive` -> `/archive/`) would send the visitor wherever a forged Host header says."""
    target = urlsplit(location)
    return base_url + target.path + (f"?{target.query}" if target.query else "")


def security_headers(base_url: str) -> Callable:
    """Middleware: a strict CSP on every answer (the message view may show the email's inline styles and https
    images), no framing, no Referer (a token in a URL never leaks to another site), no cache for a person's
    pages, and redirects only to the base URL."""
    strict = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")
    message = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'none'; "
               "frame-ancestors 'none'; base-uri 'none'")

    embeddable = strict.replace("frame-ancestors 'none'", "frame-ancestors *")

    async def add_headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        path = request.url.path
        response.headers["Content-Security-Policy"] = (
            message if path.startswith(VIEW_PREFIX) or _archived_message(path)
            else embeddable if path.startswith(EMBED_PREFIX) else strict)
        if path.startswith(PERSONAL_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
        if "location" in response.headers:
            response.headers["Location"] = on_base_url(base_url, response.headers["location"])
        if not path.startswith(EMBED_PREFIX):  # the embeddable form may sit in another site's <iframe>
            response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return add_headers
