"""The message in a browser, as its recipient got it (`/m/{token}`): the same stage 1 and stage 2."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from subscribers.web.links import Links
from worker.content import load_item
from worker.models import Campaign
from worker.problems import ContentInvalid
from worker.render import CONFIRMATION, CompiledEdition, Recipient, Renderer

VIEW_PREFIX = "/m/"


def create_view(links: Links) -> APIRouter:
    router = APIRouter(tags=["subscribers"], default_response_class=HTMLResponse)
    settings = links.settings
    renderer = Renderer(settings)

    @lru_cache(maxsize=32)
    def compiled(campaign_id: int, item: str, message: str, edition: str) -> CompiledEdition:
        return renderer.compile(load_item(settings.content_dir / item), edition, message)

    @router.get(VIEW_PREFIX + "{token}", summary="The message as this recipient got it")
    def view(token: str) -> Response:
        claims = links.claims(token, "view")
        if isinstance(claims, Response):
            return claims
        with links.sessions() as session:
            subscriber = links.person(session, claims)
            campaign = session.get(Campaign, claims.campaign_id) if claims.campaign_id else None
            if isinstance(subscriber, Response) or campaign is None or campaign.message == CONFIRMATION:
                return links.refused("missing")
            try:
                edition = compiled(campaign.id, campaign.item, campaign.message, campaign.edition or subscriber.language)
            except ContentInvalid:
                return links.refused("missing")
            urls = links.signer.links(settings.base_url, subscriber.id, campaign.id, edition.link_purposes)
            message = edition.personalise(Recipient(email=subscriber.email, name=subscriber.name,
                                                    timezone=subscriber.timezone, links=urls))
            return HTMLResponse(message.html)

    return router
