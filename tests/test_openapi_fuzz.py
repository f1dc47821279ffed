"""Schemathesis over the web app's own OpenAPI schema, in-process (ASGI), for every operation.

Each operation gets a bounded number of generated requests, valid ones and invalid ones, and every
answer must be no 5xx, a status code the schema declares, and a content type, headers and body that
match it. The operators' API is called with the bearer token. Random link tokens only ever meet the
link check, so half the time a hook swaps in a genuine one for a seeded person (and then, half the
time, the form's CSRF proof), a seeded campaign's number, the subscribe form's proof and consent, or
a real content item, and the fuzzer reaches the code behind them. A real Redis serves the subscribe
rate limit and the Celery broker, as in production.

Runs on SQLite and PostgreSQL, like the other web tests: about 35 s for both on two cores.

Schemathesis' own pytest integration (`schemathesis.pytest.from_fixture`) does not run on pytest 9.2
(it sets `Function._nodeid`, which is gone), so the test drives one Hypothesis test per operation
itself and reports each as a subtest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from engine import seed
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select, update

from foundation.db import open_store
from foundation.settings import Settings
from subscribers.models import Subscriber
from subscribers.tokens import Signer
from web.app import create_app
from web.pages.pages import csrf_token
from worker.campaigns.models import Campaign

TOKEN = "fuzz-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ITEM = "newsletters/2027-01-uia-transfer-networks"
EXAMPLES = 15  # generated requests per operation and generation mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# The link purpose each page's {token} is signed for.
PURPOSES = {"/u/": "unsubscribe", "/p/": "preferences", "/c/": "confirm", "/m/": "view"}


@dataclass
class Seeded:
    app: FastAPI
    settings: Settings
    campaign_ids: list[int]
    genuine: dict[str, list[str]]  # link tokens by purpose, for seeded people
    forms: dict[str, dict[str, str]]  # the subscribe form's csrf and consent, by page language


@pytest.fixture
def seeded(db_settings, redis_server, broker) -> Seeded:
    """The app on a few subscribers and three campaigns (sending, scheduled, sent), with genuine links to them."""
    broker.flushdb()  # rate-limit counters of earlier tests
    app_settings = replace(db_settings, redis_url=redis_server.url, api_token=TOKEN)
    seed(app_settings, 6, seed_value=10)
    app = create_app(app_settings)
    with TestClient(app) as client:
        later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        made = [client.post("/api/campaigns", json={"item": ITEM, **extra}, headers=AUTH)  # one item, on purpose
                for extra in ({}, {"send_at": later, "again": "fuzz: scheduled"}, {"edition": "both", "again": "fuzz"})]
        assert [answer.status_code for answer in made] == [201] * 3, [answer.text for answer in made]
        forms = {lang: _form_fields(client.get(f"/subscribe?lang={lang}").text) for lang in ("ro", "en")}
    campaign_ids = [answer.json()["id"] for answer in made]
    sessions = open_store(app_settings)
    with sessions() as session:
        session.execute(update(Campaign).where(Campaign.id == campaign_ids[-1])  # a sent newsletter, for the archive
                        .values(state="sent", finished_at=datetime.now(UTC)))
        session.commit()
        people = session.execute(select(Subscriber.id, Subscriber.link_key).order_by(Subscriber.id).limit(3)).all()
    sessions.kw["bind"].dispose()
    signer = Signer.from_settings(app_settings)
    genuine = {purpose: [signer.sign(purpose, *person, campaign_ids[0]) for person in people]
               for purpose in PURPOSES.values()}
    genuine["confirm"].append(signer.sign("confirm", *people[0], campaign_ids[0],
                                          issued_at=datetime.now(UTC) - timedelta(days=30)))  # expired: 410, renew
    return Seeded(app, app_settings, campaign_ids, genuine, forms)


def _form_fields(page: str) -> dict[str, str]:
    """The subscribe form's proof and consent version, as a browser posts them back."""
    return {field: re.search(rf'name="{field}" value="([^"]+)"', page).group(1) for field in ("csrf", "consent")}


@pytest.fixture
def api_schema(seeded: Seeded) -> schemathesis.BaseSchema:
    """The app's schema from /openapi.json, the bearer token for the operations that declare it, and the hook."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", seeded.app, config=schemathesis.Config.from_dict(
        {"auth": {"openapi": {"HTTPBearer": {"bearer": TOKEN}}}}))

    def swap(case: schemathesis.Case, chosen: tuple) -> schemathesis.Case:
        token, campaign_id, with_form, body = chosen
        if token is not None:
            case.path_parameters = {**case.path_parameters, "token": token}
        if campaign_id is not None:
            case.path_parameters = {**case.path_parameters, "campaign_id": campaign_id}
        if isinstance(case.body, dict):
            if with_form and token is not None and "csrf" in case.body:
                case.body = {**case.body, "csrf": csrf_token(seeded.settings.secret_key, token)}
            if with_form and case.path == "/subscribe":
                lang = case.query.get("lang")
                case.body = {**case.body, **seeded.forms[lang if isinstance(lang, str) and lang in seeded.forms else "ro"]}
            case.body = {**case.body, **body}
        return case

    @schema.hook
    def flatmap_case(context, case):  # schemathesis finds the hook by its name and signature
        """Half the time, a genuine link, campaign, form proof or content item instead of a random one."""
        purpose = next((purpose for prefix, purpose in PURPOSES.items() if case.path.startswith(prefix)), None)
        tokens = seeded.genuine[purpose] if purpose and "token" in case.path_parameters else []
        ids = seeded.campaign_ids if "campaign_id" in case.path_parameters else []
        body = st.just({})
        if case.path == "/api/campaigns":
            body = st.fixed_dictionaries({}, optional={"item": st.just(ITEM), "segment": st.just("all-subscribers")})
        elif case.path == "/subscribe":
            body = st.fixed_dictionaries({}, optional={"email": st.sampled_from(["new@example.org", "Ana@Example.ORG"]),
                                                       "website": st.just("")})
        return st.tuples(st.none() | st.sampled_from(tokens) if tokens else st.none(),
                         st.none() | st.sampled_from(ids) if ids else st.none(), st.booleans(),
                         body).map(lambda chosen: swap(case, chosen))

    return schema


def _always_valid(operation: schemathesis.APIOperation) -> bool:
    """No body and only path parameters that may be any string: no request to it can be invalid."""
    return not list(operation.body) and all(
        parameter.location == "path" and parameter.definition["schema"].get("type") == "string"
        and not {"pattern", "enum", "format", "minLength", "maxLength"} & parameter.definition["schema"].keys()
        for parameter in operation.iter_parameters())


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda mode: mode.value)
def test_every_operation_answers_within_its_schema(api_schema, mode, subtests):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        with subtests.test(operation.label):
            if mode is schemathesis.GenerationMode.NEGATIVE and _always_valid(operation):
                pytest.skip(f"no invalid request exists for {operation.label}")

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
            def answers_within_schema(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=CHECKS)

            answers_within_schema()


# ---- what the fuzzer (and a look around each find) turned up: each was a 500 ---------------------------

def _post_json(client: TestClient, raw: str):
    """A JSON body as written: `\\ud800` stays a lone surrogate, which httpx's json= would not send."""
    return client.post("/api/campaigns", content=raw.encode(), headers={**AUTH, "Content-Type": "application/json"})


IMPOSSIBLE_CAMPAIGNS = {
    "NUL in the item": '{"item": "newsletters/\\u0000"}',
    "a name longer than 255 bytes": f'{{"item": "newsletters/{"ă" * 128}"}}',  # 256 bytes in UTF-8
    "a lone surrogate in the item": '{"item": "\\ud800"}',
    "a lone surrogate in the segment": f'{{"item": "{ITEM}", "segment": "\\ud800"}}',
    "a lone surrogate echoed by the validation error": f'{{"item": "{ITEM}", "message": "\\ud800"}}',
    "a time before year 1 in UTC": f'{{"item": "{ITEM}", "send_at": "0001-01-01T00:00:00+05:00"}}',
    "a time after year 9999 in UTC": f'{{"item": "{ITEM}", "send_at": "9999-12-31T23:59:59-05:00"}}',
}


def test_an_impossible_campaign_is_a_422(seeded):
    with TestClient(seeded.app) as client:
        answers = {name: _post_json(client, raw) for name, raw in IMPOSSIBLE_CAMPAIGNS.items()}
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(IMPOSSIBLE_CAMPAIGNS, 422)
    assert all(answer.json()["detail"] for answer in answers.values())


def test_impossible_ids_form_proofs_and_topics_are_not_a_500(seeded):
    unsubscribe, preferences = seeded.genuine["unsubscribe"][0], seeded.genuine["preferences"][0]
    with TestClient(seeded.app) as client:
        too_big = 2**63  # past SQLite's integers
        assert client.get(f"/archive/{too_big}").status_code == 422
        assert client.get(f"/api/campaigns/{too_big}", headers=AUTH).status_code == 422
        assert client.post(f"/api/campaigns/{too_big}/pause", headers=AUTH).status_code == 422
        # A non-ASCII CSRF proof: hmac.compare_digest refuses such a str.
        assert client.post(f"/u/{unsubscribe}/undo", data={"csrf": "\x80", "undo": "é"}).status_code == 403
        assert client.post(f"/p/{preferences}", data={"csrf": "é"}).status_code == 403
        # A form token whose "digits" int() cannot read.
        page = client.post("/subscribe", data={"csrf": "²³.proof", "email": "a@example.org"})
        assert page.status_code == 403
        # An undo proof Herald never made, or one that is not ASCII: refused, never a 500.
        for proof in ("topics:0:null.0", "é.é"):
            undone = client.post(f"/u/{unsubscribe}/undo", data={
                "csrf": csrf_token(seeded.settings.secret_key, unsubscribe), "undo": proof})
            assert undone.status_code == 403, undone.text
