"""/metrics against the ledger: a real campaign through a real worker, scraped while it sends, while it is paused
and once it is sent, through the real web app; the text read back by prometheus-client's own parser."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from engine import NEWSLETTER, running_engine, seed
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from promtool import promtool
from sqlalchemy import func, select

from web.app import create_app
from worker.campaigns.models import DELIVERY_STATES, Campaign, Delivery

TOKEN = "metrics-token-for-the-tests"
BATCH = 50  # running_engine's HERALD_BATCH_SIZE


@pytest.fixture
def engine(db_settings, redis_server, tmp_path):
    with running_engine(db_settings, redis_server.url, tmp_path, HERALD_RATE_LIMIT="40") as running:
        yield running


@pytest.fixture
def web(engine, redis_server) -> TestClient:
    settings = replace(engine.settings, redis_url=redis_server.url, metrics_token=TOKEN)
    return TestClient(create_app(settings))


def scrape(web: TestClient) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The text, and every sample by (name, labels) as prometheus-client's parser reads it."""
    answer = web.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(answer.text) for sample in family.samples}
    return answer.text, samples


def deliveries(samples: dict) -> dict[tuple[str, str], int]:
    """herald_deliveries by (kind, state)."""
    return {(dict(labels)["kind"], dict(labels)["state"]): int(value) for (name, labels), value in samples.items()
            if name == "herald_deliveries"}


def ledger(engine) -> dict[tuple[str, str], int]:
    """The ledger's rows by (the campaign's message, state), every state of every kind present."""
    with engine.sessions() as session:
        counted = {(kind, state): count for kind, state, count in session.execute(
            select(Campaign.message, Delivery.state, func.count()).join(Campaign).group_by(Campaign.message,
                                                                                           Delivery.state))}
    kinds = {kind for kind, _ in counted}
    return {(kind, state): counted.get((kind, state), 0) for kind in kinds for state in DELIVERY_STATES}


def total(counts: dict[tuple[str, str], int], *states: str) -> int:
    return sum(count for (_, state), count in counts.items() if state in states)


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def test_metrics_match_the_ledger_while_sending_paused_and_after(engine, web):
    seed(engine.settings, 300, seed_value=31)
    expected = engine.mailable()
    unknown = set(sorted(expected)[::25])  # twelve addresses the server does not know: bounces
    engine.sink.handler.unknown |= unknown
    engine.start_worker()
    engine.start_beat()
    campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")

    engine.wait_for("some sent", lambda: engine.received_count(campaign_id) >= 60)
    before = ledger(engine)
    _, sending = scrape(web)
    after = ledger(engine)
    for state in ("sent", "bounced"):  # rows only ever move into these while a campaign sends
        key = ("newsletter", state)
        assert before[key] <= deliveries(sending)[key] <= after[key]
    assert value(sending, "herald_campaigns", state="sending") >= 1

    engine.herald("pause", str(campaign_id))
    engine.wait_for("the batches to stop", lambda: engine.counts(campaign_id)["sending"] == 0, seconds=30)
    engine.wait_for("the confirmations to go", lambda: engine.campaign(2) and engine.campaign(2).state == "sent")
    _, paused = scrape(web)
    assert deliveries(paused) == ledger(engine), "the ledger stands still: exactly what it says"
    assert value(paused, "herald_campaigns", state="paused") == 1
    assert 0 < deliveries(paused)["newsletter", "sent"] < len(expected) - len(unknown)

    engine.herald("resume", str(campaign_id))
    engine.wait_state(campaign_id, "sent", seconds=120)
    counts = ledger(engine)
    handed_over = total(counts, "sent", "bounced")
    # The last batch adds its figures to Redis as it ends, which may be just after the ledger says sent.
    engine.wait_for("the last batch's figures",
                    lambda: scrape(web)[1]["herald_smtp_send_seconds_count", ()] == handed_over, seconds=10)
    text, done = scrape(web)
    assert deliveries(done) == counts
    assert (counts["newsletter", "sent"], counts["newsletter", "bounced"]) == (len(expected) - len(unknown),
                                                                               len(unknown))
    assert value(done, "herald_campaigns", state="sent") == 2 and value(done, "herald_campaigns", state="paused") == 0

    # What the workers observed, added up in Redis: one SMTP reply per message handed over, by code.
    assert value(done, "herald_smtp_replies_total", code="250") == total(counts, "sent") == engine.sink.handler.accepted
    assert value(done, "herald_smtp_replies_total", code="550") == total(counts, "bounced")
    assert done["herald_smtp_send_seconds_count", ()] == handed_over
    assert done["herald_smtp_send_seconds_bucket", (("le", "+Inf"),)] == done["herald_smtp_send_seconds_count", ()]
    assert done["herald_smtp_send_seconds_sum", ()] > 0
    assert done["herald_batch_seconds_count", ()] >= math.ceil(len(expected) / BATCH)
    assert done["herald_fanout_seconds_count", ()] == 2, "the newsletter's and the confirmation's"
    assert done["herald_rate_limit_waits_total", ()] > 0 and done["herald_rate_limit_wait_seconds_total", ()] > 0
    assert value(done, "herald_queue_depth", queue="herald") >= 0
    assert value(done, "herald_dependency_up", dependency="database") == 1
    assert value(done, "herald_dependency_up", dependency="redis") == 1
    assert done["herald_sweep_interval_seconds", ()] == engine.settings.sweep_seconds
    assert "herald_beat_last_sweep_timestamp_seconds" in {name for name, _ in done}
    assert any(name == "herald_build_info" for name, _ in done)
    assert value(done, "herald_subscribers", status="bounced") == len(unknown)
    promtool_accepts(text)


def promtool_accepts(text: str) -> None:
    """Prometheus's own linter on the exposition (names, units, help): it prints nothing when all is well."""
    linted = promtool("check", "metrics", stdin=text)
    assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_metrics_need_their_own_token(settings, header):
    web = TestClient(create_app(replace(settings, metrics_token=TOKEN, api_token=TOKEN + "-api")))
    answer = web.get("/metrics", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401 and "herald_" not in answer.text


def test_without_a_token_metrics_refuse_everyone(settings):
    web = TestClient(create_app(replace(settings, metrics_token="")))
    assert web.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
