"""The web app: the one place where the pages behind subscribers' links and the operators' API meet, under the
security headers and the guards that act before any route.

A GET only shows a page (link scanners and previews follow links); every change is a POST that
carries the link's token and, from a form, a CSRF proof bound to that token. Each flow is a module
of its own; this one puts them together with the stylesheet and the security headers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from foundation.db import open_store
from foundation.settings import Settings, load_settings
from web.api import TokenFirst, create_api, too_large
from web.guards import BodyCap, HeadAsGet
from web.operations import create_operations
from web.pages.event_feed import create_event_feed
from web.pages.links import Links
from web.pages.pages import Pages
from web.pages.preferences import create_preferences
from web.pages.rsvp import create_rsvp
from web.pages.subscribe import EMBED_PREFIX, create_subscribe
from web.pages.unsubscribe import create_unsubscribe
from web.pages.view import ARCHIVE_PREFIX, VIEW_PREFIX, create_view


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


def create_app(settings: Settings) -> FastAPI:
    """The web side: the subscribers' pages behind their signed links, and the operators' API.

    No docs pages (/docs, /redoc): FastAPI's load Swagger UI and ReDoc from a public CDN, which a self-hosted
    service must not depend on; /openapi.json describes the API, under the same CSP as every page.
    """
    sessions = open_store(settings)
    app = FastAPI(title="Herald", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Bilingual newsletters and event invitations: self-management pages and campaigns over HTTP.")
    app.include_router(create_pages(settings, sessions))
    app.include_router(create_api(settings, sessions))
    app.include_router(create_operations(settings, sessions))
    app.exception_handler(RequestValidationError)(validation_problem)
    # Each one added wraps those before it. Outermost: the security headers, on every answer, refusals too;
    # then HEAD, so that a refusal to it has no body either; the token, from the headers alone; the cap.
    app.add_middleware(BodyCap, refusal=too_large(Pages(settings)))
    app.add_middleware(TokenFirst, token=settings.api_token)
    app.add_middleware(HeadAsGet)
    app.middleware("http")(security_headers(settings.base_url))
    return app


async def validation_problem(request: Request, error: RequestValidationError) -> Response:
    """FastAPI's 422, written as ASCII JSON: the input it echoes may hold a lone surrogate (`"\\ud800"` is valid
    JSON), which the default handler's UTF-8 cannot encode, and the 422 became a 500."""
    body = json.dumps({"detail": jsonable_encoder(error.errors())}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


def app_from_environment() -> FastAPI:
    """The app on the settings in force: what `herald web` hands uvicorn by its import path, so that the web layer
    stays on top of both sides and no module of theirs imports it."""
    return create_app(load_settings())
