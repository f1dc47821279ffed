"""What the API's trigger refuses about the item and the settings, on SQLite and PostgreSQL, through the real app:
each a 422 with a sentence, never a 500, and no campaign left behind."""

from __future__ import annotations

from dataclasses import replace

import pytest
from broker import enqueued
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from web.app import create_app
from worker.campaigns.models import Campaign

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ITEM = "newsletters/2027-01-uia-transfer-networks"


def campaign_rows(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Campaign))


@pytest.mark.parametrize("item", ["a/" * 3000, "x" * 6000, "newsletters/" + "ț/" * 2000])
def test_an_item_path_too_long_for_the_file_system_is_a_422(db_settings, broker, sessions, item):
    """Seen: a 6,000-character item path was a 500 (ENAMETOOLONG)."""
    with TestClient(create_app(replace(db_settings, api_token=TOKEN))) as client:
        answer = client.post("/api/campaigns", json={"item": item}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert campaign_rows(sessions) == 0 and enqueued(broker) == []


def test_a_public_plain_http_base_url_is_refused_with_the_fix(db_settings, broker, sessions):
    """RFC 8058: the one-click unsubscribe link in List-Unsubscribe must be https."""
    settings = replace(db_settings, api_token=TOKEN, base_url="http://news.example.org")
    with TestClient(create_app(settings)) as client:
        answer = client.post("/api/campaigns", json={"item": ITEM}, headers=AUTH)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "HERALD_BASE_URL=http://news.example.org is not https" in detail and "Set HERALD_BASE_URL" in detail
    assert campaign_rows(sessions) == 0 and enqueued(broker) == []


def test_the_item_path_is_capped_at_its_documented_length(db_settings, broker, sessions):
    """500 characters, declared in the OpenAPI schema: even a long spelling of a real item is refused past it."""
    with TestClient(create_app(replace(db_settings, api_token=TOKEN))) as client:
        declared = client.get("/openapi.json").json()["components"]["schemas"]["CampaignIn"]["properties"]["item"]
        answer = client.post("/api/campaigns", json={"item": "./" * 250 + ITEM}, headers=AUTH)
    assert declared["maxLength"] == 500
    assert answer.status_code == 422 and campaign_rows(sessions) == 0
