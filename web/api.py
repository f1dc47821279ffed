"""The HTTP API: another system triggers, reads, pauses, resumes and cancels campaigns.

Every route needs `Authorization: Bearer <HERALD_API_TOKEN>`; without a configured token the API
refuses everyone. The token is compared in constant time, and checked before anything reads the
request's body (`TokenFirst`): FastAPI reads and parses a body before a route's dependencies run.

No `from __future__ import annotations` here: FastAPI reads the routes' annotations at run time, and
they name `bearer` and `Db`, which exist only inside create_api, so as strings they would not resolve.
"""

import hmac
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import AwareDatetime, BaseModel, Field, field_validator
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from foundation.db import open_store
from foundation.problems import ContentInvalid
from foundation.settings import Settings
from web.guards import MAX_BODY_BYTES
from web.pages.pages import CampaignId, Pages
from worker.authoring.item_path import NoSuchItem, find_item
from worker.campaigns import control, ledger
from worker.campaigns.models import Campaign


class CampaignIn(BaseModel):
    # 500 characters (at most 2,000 bytes): well below the file system's PATH_MAX of 4,096 bytes.
    item: str = Field(max_length=500, description="The content item: its folder relative to the content directory, "
                                                  "or its folder's name alone.",
                      examples=["newsletters/2027-01-uia-transfer-networks"])
    segment: str | None = Field(None, description="A segment of content/segments.yaml; default: the item's audience.")
    message: Literal["newsletter", "invitation", "update", "reminder", "cancellation", "followup", "waitlist"] | None = \
        Field(None, description="Default: the item's first message; for an event, what its invitees have not been "
                                "told yet (the invitation, an update or the cancellation).")
    edition: Literal["ro", "en", "both"] | None = Field(None, description="Default: each subscriber's language.")
    # Aware only: a naive time would reach the store, which refuses it, as a 500.
    send_at: AwareDatetime | None = Field(None, description="With a time zone offset, not in the past; default: now. "
                                                            "Moves the item's scheduled campaign for this audience, "
                                                            "if there is one.")
    now: bool = Field(False, description="Send the item's scheduled campaign for this audience now.")
    again: str | None = Field(None, max_length=control.REPEAT_REASON_LIMIT,
                              description="Why to send again to an audience that a campaign of this item's message "
                                          "already covers (kept with the campaign); without it, that is a 409.")

    @field_validator("item", "segment", "again")
    @classmethod
    def _text(cls, text: str | None) -> str | None:
        """JSON may carry a lone surrogate ("\\ud800"), which no file name or answer can hold: a 500 on the way."""
        try:
            if text is not None:
                text.encode()
        except UnicodeEncodeError:
            raise ValueError("a lone surrogate is not text") from None
        return text

    @field_validator("item")
    @classmethod
    def _could_be_a_folder(cls, item: str) -> str:
        """A NUL, or a name past the file system's 255 bytes, would fail in the file system itself, as a 500."""
        if any(b"\x00" in name or len(name) > 255 for name in item.encode().split(b"/")):
            raise ValueError("no folder can have this name")
        return item

    @field_validator("send_at")
    @classmethod
    def _within_utc_years(cls, send_at: datetime | None) -> datetime | None:
        """The store keeps UTC: a time near year 1 or 9999 may have none (an OverflowError, as a 500)."""
        try:
            if send_at is not None:
                send_at.astimezone(UTC)
        except OverflowError:
            raise ValueError("this time has no UTC equivalent") from None
        return send_at


class Counts(BaseModel):
    targeted: int
    pending: int
    sending: int
    sent: int
    retry: int
    failed: int
    bounced: int
    suppressed: int


class CampaignOut(BaseModel):
    id: int
    item: str
    message: str
    segment: str
    edition: str | None
    state: str
    reason: str
    origin: str
    send_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    repeat_reason: str | None
    counts: Counts


class Problem(BaseModel):
    detail: str


class Invalid(BaseModel):
    """A 422: Herald's sentence (the item, the segment), or FastAPI's list of what is wrong with the body."""
    detail: str | list[dict[str, Any]]


API_PREFIX = "/api"
UNAUTHORISED = "a valid bearer token is required"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def token_valid(given: str, token: str) -> bool:
    """In constant time; an empty configured token lets no one in."""
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


class TokenFirst:
    """An /api/ request without the token gets its 401 from the headers alone, before anything reads its
    body (the routes' own dependency checks it again, and names the scheme in the OpenAPI schema)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_api(scope["path"]):
            scheme, given = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
            if scheme.lower() != "bearer" or not token_valid(given, self.token):
                await JSONResponse({"detail": UNAUTHORISED}, 401, headers=CHALLENGE)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def too_large(pages: Pages) -> Callable[[str], Response]:
    """The 413 for a body past the cap: JSON for the API, the bilingual refusal page for everything else."""
    def refusal(path: str) -> Response:
        if _is_api(path):
            return JSONResponse({"detail": f"a request body may hold at most {MAX_BODY_BYTES} bytes"}, 413)
        return pages.refused("too_large", 413)
    return refusal


def create_api(settings: Settings, sessions: sessionmaker[Session] | None = None) -> APIRouter:
    sessions = sessions or open_store(settings)
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if not token_valid(credentials.credentials if credentials else "", settings.api_token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORISED, headers=CHALLENGE)

    def session() -> Iterator[Session]:
        with sessions() as opened:
            yield opened

    Db = Annotated[Session, Depends(session)]
    errors = {401: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}}
    router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authorised)], tags=["campaigns"], responses=errors)

    @router.post("/campaigns", status_code=201, response_model=CampaignOut,
                 responses={400: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Invalid},
                            503: {"model": Problem}})
    def trigger(body: CampaignIn, db: Db) -> dict:
        """Create a campaign; it starts now, or at `send_at`. One per item, message and audience: 409 says which
        campaign covers it and what to do. 503: the broker does not answer, and nothing was recorded; a campaign
        recorded whose start the broker did not take comes back with its `reason` (beat's sweep starts it)."""
        item = (settings.content_dir / body.item).resolve()
        if not item.is_relative_to(settings.content_dir.resolve()):
            raise HTTPException(422, "item must be a folder inside the content directory")
        try:
            folder = find_item(body.item, settings.content_dir)
        except NoSuchItem as error:
            raise HTTPException(422, str(error)) from None
        request = control.Request(folder, body.segment, body.message, body.edition, body.send_at, body.now,
                                  body.again)
        try:
            campaign = control.create(db, request, settings, origin="api", words=control.API)
        except ContentInvalid as error:
            raise HTTPException(422, "; ".join(str(problem) for problem in error.problems)) from None
        except control.Covered as error:
            raise HTTPException(409, str(error)) from None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        except control.BrokerDown as error:
            raise HTTPException(503, str(error)) from None
        except control.NotQueued as error:
            campaign = error.campaign
        return control.describe(db, campaign)

    @router.get("/campaigns", response_model=list[CampaignOut])
    def campaigns_list(db: Db, limit: int = 50) -> list[dict]:
        """Newest first."""
        return [control.describe(db, campaign) for campaign in control.listing(db, max(1, min(limit, 500)))]

    @router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
    def read(campaign_id: CampaignId, db: Db) -> dict:
        campaign = db.get(Campaign, campaign_id)
        if campaign is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        return control.describe(db, campaign)

    def action(run: Callable[[Session, int], Campaign]) -> Callable[[int, Session], dict]:
        def endpoint(campaign_id: CampaignId, db: Db) -> dict:
            try:
                return control.describe(db, run(db, campaign_id))
            except LookupError as error:
                raise HTTPException(404, str(error)) from None
            except ledger.StateError as error:
                raise HTTPException(409, str(error)) from None
            except control.NotQueued as error:  # resumed; beat's sweep starts it, as its reason says
                return control.describe(db, error.campaign)
        return endpoint

    for verb, run in (("pause", control.pause), ("resume", control.resume), ("cancel", control.cancel)):
        router.add_api_route(f"/campaigns/{{campaign_id}}/{verb}", action(run), methods=["POST"],
                             response_model=CampaignOut, name=verb, summary=f"{verb.capitalize()} a campaign")
    return router
