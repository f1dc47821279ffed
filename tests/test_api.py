"""The HTTP API on SQLite and PostgreSQL, with the Celery app publishing into a real Redis.

No worker consumes here: a test reads what the API enqueued straight from the broker's Redis list.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from broker import enqueued
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from web.app import create_app
from worker.campaigns.models import Campaign

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ITEM = "newsletters/2027-01-uia-transfer-networks"
ZERO_COUNTS = {"targeted": 0, "pending": 0, "sending": 0, "sent": 0, "retry": 0, "failed": 0, "bounced": 0,
               "suppressed": 0}


@pytest.fixture
def api_settings(db_settings):
    return replace(db_settings, api_token=TOKEN)


@pytest.fixture
def client(api_settings, broker):
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


def campaign_rows(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Campaign))


def post(client: TestClient, **body) -> dict:
    response = client.post("/api/campaigns", json={"item": ITEM, "segment": "all-subscribers", **body}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


# ---- creating ------------------------------------------------------------------------------------------

def test_a_campaign_without_a_time_starts_now_and_its_start_task_is_in_redis(client, broker, sessions):
    before = datetime.now(UTC)
    created = post(client)
    assert {key: created[key] for key in ("item", "message", "segment", "edition", "state", "reason", "origin",
                                          "send_at", "finished_at")} == {
        "item": ITEM, "message": "newsletter", "segment": "all-subscribers", "edition": None, "state": "sending",
        "reason": "", "origin": "api", "send_at": None, "finished_at": None}
    assert created["counts"] == ZERO_COUNTS  # the fan-out is the worker's, and no worker runs here
    assert datetime.fromisoformat(created["started_at"]) >= before - timedelta(seconds=1)
    assert enqueued(broker) == [("herald.start", [created["id"]], {})]
    with sessions() as session:
        stored = session.get(Campaign, created["id"])
        assert (stored.state, stored.origin, stored.item, stored.segment) == ("sending", "api", ITEM, "all-subscribers")


def test_a_campaign_with_a_future_time_is_scheduled_and_nothing_is_enqueued(client, broker, sessions):
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    created = post(client, send_at=at.isoformat(), edition="both")
    assert (created["state"], created["edition"], created["started_at"]) == ("scheduled", "both", None)
    assert datetime.fromisoformat(created["send_at"]) == at
    assert enqueued(broker) == []
    with sessions() as session:
        assert session.get(Campaign, created["id"]).send_at == at


def test_the_item_audience_is_the_default_segment_and_send_at_keeps_its_instant(client, broker, sessions):
    response = client.post("/api/campaigns", json={"item": ITEM, "send_at": "2099-01-14T10:00:00+02:00"},
                           headers=AUTH)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["segment"] == "all-subscribers"  # the item's audience
    assert datetime.fromisoformat(created["send_at"]) == datetime(2099, 1, 14, 8, 0, tzinfo=UTC)
    with sessions() as session:
        assert session.get(Campaign, created["id"]).send_at == datetime(2099, 1, 14, 8, 0, tzinfo=UTC)
    assert enqueued(broker) == []


@pytest.mark.parametrize(("body", "detail"), [
    ({"segment": "nobody"}, "no segment 'nobody'; add it here or use one of all-subscribers, "),
    ({"item": "newsletters/2027-13-no-such-issue"}, "no such item: 'newsletters/2027-13-no-such-issue'; "),
    ({"item": "../.."}, "item must be a folder inside the content directory"),
    ({"item": "newsletters/../../worker"}, "item must be a folder inside the content directory"),
    ({"item": "/etc"}, "item must be a folder inside the content directory"),
    ({"message": "invitation"}, "a newsletter has no 'invitation' message; use newsletter"),
])
def test_a_bad_request_is_422_with_a_clear_detail_and_leaves_no_campaign(client, broker, sessions, body, detail):
    response = client.post("/api/campaigns", json={"item": ITEM, "segment": "all-subscribers", **body}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    assert campaign_rows(sessions) == 0
    assert enqueued(broker) == []


def test_a_send_at_without_a_time_zone_is_refused(client, broker, sessions):
    response = client.post("/api/campaigns", json={"item": ITEM, "send_at": "2099-01-14T10:00:00"}, headers=AUTH)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "send_at"] and "timezone" in problem["msg"]
    assert campaign_rows(sessions) == 0
    assert enqueued(broker) == []


# ---- reading ----------------------------------------------------------------------------------------

def test_list_is_newest_first_and_one_campaign_reads_by_id(client, broker):
    first = post(client, send_at=(datetime.now(UTC) + timedelta(days=3)).isoformat())
    second = post(client, segment="partners-abroad")  # another audience: not a second campaign of the first's
    listed = client.get("/api/campaigns", headers=AUTH)
    assert listed.status_code == 200
    assert listed.json() == [second, first]
    assert client.get("/api/campaigns", params={"limit": 1}, headers=AUTH).json() == [second]
    one = client.get(f"/api/campaigns/{first['id']}", headers=AUTH)
    assert (one.status_code, one.json()) == (200, first)
    missing = client.get("/api/campaigns/9999", headers=AUTH)
    assert (missing.status_code, missing.json()) == (404, {"detail": "no campaign 9999"})


# ---- pause, resume, cancel -----------------------------------------------------------------------------

def test_pause_resume_and_cancel_follow_the_state_machine(client, broker, sessions):
    created = post(client)
    number = created["id"]
    assert enqueued(broker) == [("herald.start", [number], {})]

    paused = client.post(f"/api/campaigns/{number}/pause", headers=AUTH)
    assert paused.status_code == 200, paused.text
    assert (paused.json()["state"], paused.json()["reason"]) == ("paused", "paused by the operator")

    again = client.post(f"/api/campaigns/{number}/pause", headers=AUTH)
    assert again.status_code == 409
    assert again.json() == {"detail": f"campaign {number} is paused; it can move to cancelled, sending, not paused"}

    resumed = client.post(f"/api/campaigns/{number}/resume", headers=AUTH)
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["state"], resumed.json()["reason"]) == ("sending", "")
    assert resumed.json()["started_at"] == created["started_at"]
    assert enqueued(broker) == [("herald.start", [number], {}), ("herald.start", [number], {})]

    cancelled = client.post(f"/api/campaigns/{number}/cancel", headers=AUTH)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["state"], cancelled.json()["reason"]) == ("cancelled", "cancelled by the operator")
    assert cancelled.json()["finished_at"] is not None

    for verb in ("pause", "resume", "cancel"):
        over = client.post(f"/api/campaigns/{number}/{verb}", headers=AUTH)
        assert over.status_code == 409
        expected = (f"campaign {number} is cancelled; only a paused campaign resumes" if verb == "resume" else
                    f"campaign {number} is cancelled, so it is over; there is nothing to {verb}")
        assert over.json() == {"detail": expected}
        missing = client.post(f"/api/campaigns/9999/{verb}", headers=AUTH)
        assert missing.status_code == 404 and "no campaign 9999" in missing.json()["detail"]
    assert len(enqueued(broker)) == 2  # nothing refused was enqueued
    with sessions() as session:
        assert session.get(Campaign, number).state == "cancelled"


def test_a_scheduled_campaign_cannot_be_paused(client, broker):
    created = post(client, send_at=(datetime.now(UTC) + timedelta(days=3)).isoformat())
    response = client.post(f"/api/campaigns/{created['id']}/pause", headers=AUTH)
    assert response.status_code == 409
    assert response.json()["detail"] == (f"campaign {created['id']} is scheduled; it can move to cancelled, missed, "
                                          "sending, not paused")


# ---- authorisation ---------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/api/campaigns", {"item": ITEM, "segment": "all-subscribers"}),
    ("GET", "/api/campaigns", None),
    ("GET", "/api/campaigns/{id}", None),
    ("POST", "/api/campaigns/{id}/pause", None),
    ("POST", "/api/campaigns/{id}/resume", None),
    ("POST", "/api/campaigns/{id}/cancel", None),
]
BAD_HEADERS = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
]


def refused(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "a valid bearer token is required"}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_needs_the_token(client, broker, sessions, method, path, body):
    now = datetime.now(UTC)
    with sessions.begin() as session:  # a campaign that a refused read, pause, resume or cancel must not touch
        campaign = Campaign(item=ITEM, message="newsletter", segment="partners-abroad", state="paused",
                            origin="api", created_at=now, updated_at=now, started_at=now)
        session.add(campaign)
        session.flush()
        path = path.format(id=campaign.id)
    for headers in BAD_HEADERS:
        refused(client.request(method, path, json=body, headers=headers))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 1
        assert session.get(Campaign, campaign.id).state == "paused"
    assert enqueued(broker) == []
    allowed = client.request(method, path, json=body, headers=AUTH)
    assert allowed.status_code == (409 if path.endswith("/pause") else 201 if method == "POST" and body else 200), (
        allowed.text)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_without_a_configured_token_the_api_refuses_everyone(db_settings, broker, sessions, method, path, body):
    with TestClient(create_app(replace(db_settings, api_token=""))) as client:
        for headers in [*BAD_HEADERS, AUTH, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}]:
            refused(client.request(method, path.format(id=1), json=body, headers=headers))
    assert campaign_rows(sessions) == 0
    assert enqueued(broker) == []


def test_openapi_lists_the_routes_with_bearer_security(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"] == {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
    operations = {(method.upper(), path): operation for path, methods in schema["paths"].items()
                  for method, operation in methods.items() if path.startswith("/api/")}  # the rest: subscribers' pages
    assert set(operations) == {
        ("POST", "/api/campaigns"), ("GET", "/api/campaigns"), ("GET", "/api/campaigns/{campaign_id}"),
        ("POST", "/api/campaigns/{campaign_id}/pause"), ("POST", "/api/campaigns/{campaign_id}/resume"),
        ("POST", "/api/campaigns/{campaign_id}/cancel"),
    }
    for key, operation in operations.items():
        assert operation["security"] == [{"HTTPBearer": []}], key
        assert "401" in operation["responses"], key
    assert {"201", "422"} <= set(operations["POST", "/api/campaigns"]["responses"])
    assert "409" in operations["POST", "/api/campaigns/{campaign_id}/pause"]["responses"]
    assert set(schema["components"]["schemas"]["CampaignIn"]["properties"]) == {
        "item", "segment", "message", "edition", "send_at", "now", "again"}
    assert {"409", "503"} <= set(operations["POST", "/api/campaigns"]["responses"])
