"""Logs: one line per event, JSON with HERALD_LOG_FORMAT=json, the campaign's and the delivery's ids on every line
about a send, and no address but at DEBUG: the formatters alone, then a real worker's and beat's whole logs."""

from __future__ import annotations

import json
import logging
import re

import pytest
from engine import NEWSLETTER, running_engine, seed
from sqlalchemy import select

from foundation.logs import JsonFormatter, TextFormatter, about
from subscribers.models import Subscriber

ADDRESS = "ana.popescu@primaria.example.org"


def record(level: int, message: str, *args: object, exc_info: tuple | None = None, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("herald.delivery", level, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


def test_a_json_line_carries_the_ids_and_no_address_above_debug():
    line = JsonFormatter().format(record(logging.INFO, "bounced: RCPT 550 5.1.1 <%s> unknown", ADDRESS,
                                         **about(3, 17, 42)))
    parsed = json.loads(line)
    assert "\n" not in line
    assert {key: parsed[key] for key in ("level", "logger", "campaign_id", "delivery_id", "subscriber_id")} == {
        "level": "INFO", "logger": "herald.delivery", "campaign_id": 3, "delivery_id": 17, "subscriber_id": 42}
    assert parsed["message"] == "bounced: RCPT 550 5.1.1 <address> unknown"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", parsed["time"])
    url = "Connected to redis://:**@127.0.0.1:6399/0"
    assert json.loads(JsonFormatter().format(record(logging.INFO, url)))["message"] == url, "a host is no address"
    debug = json.loads(JsonFormatter().format(record(logging.DEBUG, "delivery 17 was to %s", ADDRESS)))
    assert debug["message"] == f"delivery 17 was to {ADDRESS}", "an address only at DEBUG"


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_a_traceback_stays_in_its_line(formatter: logging.Formatter):
    try:
        raise RuntimeError(f"could not reach {ADDRESS}")
    except RuntimeError as error:
        line = formatter.format(record(logging.ERROR, "batch failed", exc_info=(type(error), error, None),
                                       **about(3)))
    assert "\n" not in line and "RuntimeError: could not reach address" in line and ADDRESS not in line
    assert "campaign" in line


def test_a_text_line_names_the_ids():
    line = TextFormatter().format(record(logging.WARNING, "refused by the server, failed", **about(3, 17, 42)))
    assert line.endswith("WARNING herald.delivery: refused by the server, failed [campaign=3 delivery=17 subscriber=42]")


def test_a_worker_and_beat_write_json_lines_with_ids_and_no_address_above_debug(settings, redis_server, tmp_path):
    """SQLite only: what is logged does not depend on the database."""
    with running_engine(settings, redis_server.url, tmp_path, HERALD_LOG_FORMAT="json",
                        HERALD_LOG_LEVEL="DEBUG") as engine:
        seed(settings, 120, seed_value=41)
        expected = engine.mailable()
        unknown = set(sorted(expected)[::20])
        engine.sink.handler.unknown |= unknown
        engine.sink.handler.fail_next(3, 451, at="RCPT")
        engine.start_worker()
        engine.start_beat()
        campaign_id = engine.send(NEWSLETTER, "--segment", "all-subscribers")
        engine.wait_state(campaign_id, "sent")
        engine.stop_all()

    with engine.sessions() as session:
        addresses = {email.lower() for email in session.scalars(select(Subscriber.email))}
    lines = [line for name in ("worker.log", "beat.log")
             for line in (tmp_path / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {event["level"] for event in events} >= {"DEBUG", "INFO"}

    deliveries = [event for event in events if "delivery_id" in event]
    assert all(event["campaign_id"] and event["subscriber_id"] for event in deliveries)
    assert {event["campaign_id"] for event in deliveries} == {campaign_id, campaign_id + 1}, "and the confirmations"
    said = {event["message"].split(":")[0] for event in deliveries if event["level"] != "DEBUG"}
    assert {"bounced", "not sent for now, to be retried"} <= said
    bounces = [event for event in deliveries if event["message"].startswith("bounced")]
    assert len(bounces) == len(unknown) and all("RCPT 550" in event["message"] for event in bounces)
    assert any(event["message"].startswith("batch of subscribers") and event["campaign_id"] == campaign_id
               for event in events)

    above_debug = " ".join(event["message"] for event in events if event["level"] != "DEBUG").lower()
    assert not [address for address in addresses if address in above_debug], "no address above DEBUG"
    at_debug = " ".join(event["message"] for event in events if event["level"] == "DEBUG").lower()
    assert all(address in at_debug for address in unknown), "at DEBUG, the address a line is about"
