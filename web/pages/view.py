"""Messages in a browser: as one recipient got it (`/m/{token}`), and the public archive of sent
newsletters (`/archive/`), rendered for nobody in particular. Both use the engine's stage 1 and 2.

The archive shows only newsletters sent to a segment marked `public:` in content/segments.yaml: one
written for a few people is theirs, not the world's."""

from __future__ import annotations

import re
from functools import lru_cache

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from foundation.problems import ContentInvalid
from subscribers.segments import public_segments
from web.pages.links import LINK_REFUSED, Links, html_responses, switch_url
from web.pages.pages import CampaignId, Lang, page_language
from worker.authoring.content import load_item
from worker.campaigns.models import Campaign
from worker.rendering.i18n import day
from worker.rendering.render import CONFIRMATION, CompiledEdition, Recipient, Renderer

VIEW_PREFIX = "/m/"
ARCHIVE_PREFIX = "/archive/"
_BODY = re.compile(r"(<body[^>]*>)(.*)(</body>)", re.DOTALL)


def as_page(message_html: str) -> str:
    """A message shown in a browser: its body becomes the page's one <main> region, which an email lacks."""
    return _BODY.sub(r"\1<main>\2</main>\3", message_html, count=1)


def create_view(links: Links) -> APIRouter:
    router = APIRouter(tags=["subscribers"], default_response_class=HTMLResponse)
    settings = links.settings
    renderer = Renderer(settings)

    @lru_cache(maxsize=32)
    def compiled(campaign_id: int, item: str, message: str, edition: str) -> CompiledEdition:
        return renderer.compile(load_item(settings.content_dir / item), edition, message)

    @router.get(VIEW_PREFIX + "{token}", summary="The message as this recipient got it", responses=LINK_REFUSED)
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
            urls = links.signer.links(settings.base_url, subscriber.id, subscriber.link_key, campaign.id,
                                      edition.link_purposes)
            message = edition.personalise(Recipient(email=subscriber.email, name=subscriber.name,
                                                    timezone=subscriber.timezone, links=urls))
            return HTMLResponse(as_page(message.html))

    @router.get(ARCHIVE_PREFIX, summary="Sent newsletters to public segments, newest first")
    def archive(lang: Lang = None) -> Response:
        language = page_language("", lang)
        public = sorted(public_segments(settings.content_dir))
        with links.sessions() as session:
            sent = session.scalars(select(Campaign).where(Campaign.state == "sent", Campaign.message == "newsletter",
                                                          Campaign.segment.in_(public))
                                   .order_by(Campaign.finished_at.desc()))
            issues, seen = [], set()
            for campaign in sent:
                if campaign.item in seen:
                    continue  # one entry per newsletter, however many campaigns sent it
                seen.add(campaign.item)
                try:
                    subject = compiled(campaign.id, campaign.item, campaign.message, language).subject
                except ContentInvalid:
                    continue
                issues.append({"id": campaign.id, "subject": subject, "sent": day(campaign.finished_at, language)})
        return links.pages.render("archive", language, title=links.pages.words[language]["archive_title"],
                                  switch_url=switch_url(ARCHIVE_PREFIX, language), issues=issues)

    @router.get(ARCHIVE_PREFIX + "{campaign_id}", summary="A sent newsletter's public version",
                responses=html_responses(404))
    def archived(campaign_id: CampaignId, lang: Lang = None) -> Response:
        language = page_language("", lang)
        with links.sessions() as session:
            campaign = session.get(Campaign, campaign_id)
        if (campaign is None or campaign.state != "sent" or campaign.message != "newsletter"
                or campaign.segment not in public_segments(settings.content_dir)):
            return links.refused("missing")
        try:
            edition = compiled(campaign.id, campaign.item, campaign.message, language)
        except ContentInvalid:
            return links.refused("missing")
        # Nobody's links and nobody's address: the self-management links invite to subscribe instead.
        subscribe = f"{settings.base_url}/subscribe?lang={language}"
        public = Recipient(email=links.pages.words[language]["archive_recipient"],
                           links={purpose: subscribe for purpose in edition.link_purposes}
                           | {"view": f"{settings.base_url}{ARCHIVE_PREFIX}{campaign.id}?lang={language}"})
        return HTMLResponse(as_page(edition.personalise(public).html))

    return router
